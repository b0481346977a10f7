"""Running the lessons in Colab: the repository setting, and what the notebooks' first cell prints.

The repository URL has one home, ``repository.url`` in ``book/_config.yml`` (the book's launch
buttons come from it). `REPOSITORY_URL` below, the Colab badges and install cells of the
notebooks, the README and the book's install lines are copies that tests/test_colab.py checks
against it. To point everything at a fork, edit ``repository.url`` and run::

    python -m spot_tutorial.tutorial.colab --sync      # rewrites every copy, from the repository root

The first code cell of every notebook is written by `install_cell` (``--sync`` rewrites it in
every notebook, within 88 columns like every notebook line): it installs the library in Colab and
calls ``ENV = start(MODE)``, which chooses the mode (``auto``: full on a GPU, tutorial otherwise), prints
the device, the GPU, its bf16 support and the precision, and returns them; the notebook then
hands the mode on explicitly: ``T = tutorial.setup(mode=ENV.mode)``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from spot_tutorial.runtime import choose_precision, cuda_has_native_bf16, in_colab

REPOSITORY_URL = "https://github.com/spot-tutorial/spot-tutorial"  # = book/_config.yml repository.url
BRANCH = "main"  # = book/_config.yml repository.branch
MODE_CHOICES = ("auto", "tutorial", "full")
# files (relative to the repository root) holding copies of the repository URL
COPIES = ("README.md", "book/reproduce.md", "spot_tutorial/tutorial/colab.py", "notebooks/*.ipynb")


def colab_url(notebook: str, repository: str = REPOSITORY_URL, branch: str = BRANCH) -> str:
    """The Colab address of notebooks/<notebook>.ipynb on GitHub."""
    path = repository.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{path}/blob/{branch}/notebooks/{notebook}.ipynb"


def pip_source(repository: str = REPOSITORY_URL) -> str:
    """What pip installs the library from: ``pip install "git+<repository>"``."""
    return f"git+{repository}"


def read_repository_setting(root: str | os.PathLike) -> tuple[str, str]:
    """(url, branch) of the ``repository:`` block of <root>/book/_config.yml."""
    text = (Path(root) / "book" / "_config.yml").read_text()
    block = re.search(r"^repository:\n((?:[ \t]+.*\n|\s*\n)+)", text, re.M)
    if block is None:
        raise ValueError("book/_config.yml has no 'repository:' block; add one with url: and branch:")
    values = dict(re.findall(r"^[ \t]+(url|branch):\s*(\S+)", block.group(1), re.M))
    return values["url"].rstrip("/"), values.get("branch", "main")


def install_cell(repository: str = REPOSITORY_URL) -> str:
    """The source of every notebook's first code cell: MODE, the Colab install, the environment."""
    return "\n".join([
        'MODE = "auto"  # "auto": full on a GPU, tutorial on a CPU; or "tutorial" / "full"',
        f'REPOSITORY = "{repository}"  # = book/_config.yml',
        "import subprocess",
        "import sys",
        "",
        'if "google.colab" in sys.modules:  # Colab: clone the repository, install the library',
        '    clone = ("test -d spot-tutorial || "',
        '             f"git clone -q --depth 1 {REPOSITORY} spot-tutorial")',
        "    install = \"pip install -q -e 'spot-tutorial[colab]'\"",
        '    subprocess.run(f"{clone}; {install}", shell=True, check=True, cwd="/content")',
        '    sys.path.insert(0, "/content/spot-tutorial")',
        "from spot_tutorial.tutorial import colab",
        "",
        "ENV = colab.start(MODE)  # device, GPU, bf16 support, precision, mode",
    ])


def sync_install_cells(root: str | os.PathLike, repository: str = REPOSITORY_URL) -> list[Path]:
    """Rewrite the first code cell of every notebook in <root>/notebooks with `install_cell`; the
    notebooks changed (their outputs are left as they are: the cell prints the same)."""
    changed = []
    for path in sorted((Path(root) / "notebooks").glob("*.ipynb")):
        text = path.read_text(encoding="utf-8")
        notebook = json.loads(text)
        cell = next((c for c in notebook["cells"] if c["cell_type"] == "code"), None)
        if cell is None:
            raise ValueError(f"{path} has no code cell: its first code cell must be the install cell")
        cell["source"] = install_cell(repository).splitlines(keepends=True)
        new = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"  # the layout Jupyter writes
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def sync_repository(root: str | os.PathLike) -> list[Path]:
    """Rewrite every copy of the repository URL and branch from book/_config.yml, and every notebook's
    install cell (`install_cell`); the files changed."""
    root = Path(root)
    url, branch = read_repository_setting(root)
    old_url, old_branch = REPOSITORY_URL, BRANCH
    changed = []
    for pattern in COPIES:
        for path in sorted(root.glob(pattern)):
            text = path.read_text(encoding="utf-8")
            new = text.replace(f"{old_url.removeprefix('https://github.com/')}/blob/{old_branch}/",
                               f"{url.removeprefix('https://github.com/')}/blob/{branch}/")
            new = new.replace(old_url, url)
            if path.name == "colab.py":
                new = new.replace(f'BRANCH = "{old_branch}"', f'BRANCH = "{branch}"')
            if new != text:
                path.write_text(new, encoding="utf-8")
                changed.append(path)
    changed += [path for path in sync_install_cells(root, url) if path not in changed]
    return changed


# ----------------------------------------------------------------------------------------------
# the first cell
@dataclass
class Environment:
    """What the first cell found and chose."""

    in_colab: bool
    mode: str          # 'tutorial' | 'full'
    device: str        # 'cpu' | 'cuda'
    gpu: Optional[str]  # the GPU's name, None without one
    bf16: Optional[bool]  # native bf16 on the GPU, None without one
    precision: str     # training precision: 'bf16' | 'fp16' | 'fp32'

    def lines(self) -> list[str]:
        where = "full: DINO ViT-B/16, COCO val2017, the authors' model" if self.mode == "full" else (
            "tutorial: CPU, built-in scenes, tiny stored models")
        gpu = self.gpu or "none"
        bf16 = "n/a (no GPU)" if self.bf16 is None else ("yes" if self.bf16 else "no (fp16 instead)")
        precision = {"bf16": "bf16 autocast for training, fp32 for evaluation",
                     "fp16": "fp16 autocast with gradient scaling for training, fp32 for evaluation",
                     "fp32": "fp32"}[self.precision]
        return [f"Colab      {'yes: library installed from ' + REPOSITORY_URL if self.in_colab else 'no'}",
                f"device     {self.device}", f"GPU        {gpu}", f"bf16       {bf16}",
                f"precision  {precision}", f"mode       {where}"]

    def __str__(self) -> str:
        return "\n".join(self.lines())


def resolve_mode(mode: str = "auto") -> str:
    """'tutorial' or 'full' for the first cell's MODE ('auto': $SPOT_TUTORIAL_MODE, else full on a GPU)."""
    from spot_tutorial.tutorial.session import detect_mode

    mode = (mode or "auto").strip().lower()
    if mode not in MODE_CHOICES:
        raise ValueError(f"MODE = {mode!r}; set it to one of {MODE_CHOICES} in the first cell")
    return detect_mode() if mode == "auto" else mode


def environment(mode: str = "auto") -> Environment:
    """The device, GPU, bf16 support, precision and resolved mode of this runtime."""
    cuda = torch.cuda.is_available()
    return Environment(in_colab=in_colab(), mode=resolve_mode(mode),
                       device="cuda" if cuda else "cpu",
                       gpu=torch.cuda.get_device_name(0) if cuda else None,
                       bf16=cuda_has_native_bf16() if cuda else None,
                       precision=choose_precision("cuda" if cuda else "cpu"))


def start(mode: str = "auto") -> Environment:
    """The first cell: resolve MODE, print the environment and return it.

    The notebook passes the chosen mode on: ``ENV = start(MODE)``, then
    ``tutorial.setup(mode=ENV.mode)``; nothing is left behind in the process's environment.
    """
    env = environment(mode)
    print(env)
    if env.mode == "full" and env.device == "cpu":
        print("note       full mode without a GPU is very slow; MODE = 'tutorial' is meant for CPUs")
    return env


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spot_tutorial.tutorial.colab",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--sync", action="store_true",
                        help="rewrite every copy of the repository URL from book/_config.yml")
    parser.add_argument("--root", default=".", help="repository root (default: the current folder)")
    args = parser.parse_args(argv)
    if not args.sync:
        print(environment())
        return 0
    changed = sync_repository(args.root)
    print("\n".join(str(p) for p in changed) or "every copy already agrees with book/_config.yml")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
