"""The book's reference page of the `spot` command, book/cli.md, generated from the CLI's option tables.

The options of `spot train | quickstart | evaluate | segment` are declared once, in
spot_tutorial/apps/options.py; the parser (and so ``spot COMMAND --help``) and this page are both
built from it. At the start of every build this extension rewrites book/cli.md when the tables
changed (tests/test_cli_options.py checks that the stored page is current), so the reference can
never drift from the command.
"""

from __future__ import annotations

from pathlib import Path

PAGE = "cli.md"


def write_reference(book_dir: str | Path) -> bool:
    """Write <book_dir>/cli.md from the option tables; True when the page changed."""
    from spot_tutorial.apps.options import reference_markdown

    path = Path(book_dir) / PAGE
    text = reference_markdown()
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


def _on_builder_inited(app) -> None:
    write_reference(app.srcdir)


def setup(app):
    app.connect("builder-inited", _on_builder_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
