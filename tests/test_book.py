"""The Jupyter Book builds offline with warnings as errors, and every chapter shows its figures.

The build renders the notebooks' stored outputs (``execute_notebooks: off``), so it takes well under
a minute. Set ``SPOT_SKIP_BOOK_TEST=1`` to skip it (it runs by default, and in CI).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from spot_tutorial.tutorial.colab import colab_url

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
PROSE = ["intro", "paper", "own_data", "reproduce", "ablation", "api"]
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))

pytestmark = pytest.mark.skipif(os.environ.get("SPOT_SKIP_BOOK_TEST") == "1",
                                reason="SPOT_SKIP_BOOK_TEST=1")


def jupyter_book() -> list[str]:
    """The jupyter-book command of this Python environment."""
    script = Path(sys.executable).with_name("jupyter-book")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from jupyter_book.cli.main import main; main()"]


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("book")
    command = jupyter_book() + ["build", str(BOOK), "--path-output", str(out), "-W", "--keep-going"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"book build failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    return out / "_build" / "html"


def png_outputs(name: str) -> int:
    notebook = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
    return sum("image/png" in output.get("data", {})
               for cell in notebook["cells"] if cell["cell_type"] == "code"
               for output in cell.get("outputs", []))


def local_images(page: Path) -> list[Path]:
    """Figures of a page stored in the build (not the Colab badge, not theme icons)."""
    sources = re.findall(r'<img[^>]*\ssrc="([^"]+)"', page.read_text(encoding="utf-8"))
    return [(page.parent / src).resolve() for src in sources
            if "_images/" in src and "colab-badge" not in src]


def test_every_chapter_is_built(html):
    for name in PROSE:
        assert (html / f"{name}.html").is_file(), f"{name}.html missing"
    for name in NOTEBOOKS:
        assert (html / "notebooks" / f"{name}.html").is_file(), f"notebooks/{name}.html missing"
    assert "SPOT, step by step" in (html / "index.html").read_text() + (html / "intro.html").read_text()


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_pages_show_every_figure(html, name):
    page = html / "notebooks" / f"{name}.html"
    images = local_images(page)
    expected = png_outputs(name)
    assert expected > 0, f"{name} has no figures"
    assert len(images) == expected, f"{name}.html shows {len(images)} images, the notebook has {expected}"
    for image in images:
        assert image.is_file() and image.stat().st_size > 1000, f"{image} missing or empty"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_pages_have_colab_launch_button(html, name):
    text = (html / "notebooks" / f"{name}.html").read_text()
    setting = yaml.safe_load((BOOK / "_config.yml").read_text())["repository"]   # the one repository setting
    url = colab_url(name, setting["url"], setting["branch"])
    assert url in text


def test_api_reference_is_generated_from_docstrings(html):
    text = (html / "api.html").read_text()
    for anchor in ("spot_tutorial.model.spot.SPOT", "spot_tutorial.model.slot_attention.SlotAttention",
                   "spot_tutorial.training.self_training.distillation_loss",
                   "spot_tutorial.evaluation.metrics.fg_ari",
                   "spot_tutorial.training.loop.Trainer", "spot_tutorial.tutorial.session.setup",
                   "spot_tutorial.config.Architecture", "spot_tutorial.training.schedules.learning_rate",
                   "spot_tutorial.training.run_state.run_state",
                   "spot_tutorial.training.objective.batch_loss"):
        assert f'id="{anchor}"' in text, f"{anchor} is not documented in api.html"
    # the field comments of SPOTConfig read as prose: napoleon turns "words: more" into a bogus "Type"
    assert 'Type<span class="colon">' not in text, "a docstring's 'X: y' was rendered as a type"


def test_ablation_chapter_shows_the_stored_results(html):
    """The chapter includes the table and the plot written by benchmarks/ablation.py."""
    page = html / "ablation.html"
    text = page.read_text(encoding="utf-8")
    table = (BOOK / "_static" / "ablation_table.md").read_text()
    assert table.count("\n| (") >= 7, "the stored ablation table lacks variant rows"
    for label in ("(a) DINOSAUR", "(c) AR + random orders", "(e) SPOT"):
        assert label in table and label in text, f"{label!r} missing from the table or the page"
    assert "<table" in text
    images = local_images(page)
    assert any(image.name.startswith("ablation") and image.stat().st_size > 10_000 for image in images)
    assert "RESULTS_DISCUSSION" not in text and "RUNTIME_NOTE" not in text, "placeholders left in the chapter"


def test_ablation_chapter_shows_the_regime_ablation_and_its_findings(html):
    """The camouflage section includes its generated table (findings held or not) and plot."""
    page = html / "ablation.html"
    text = page.read_text(encoding="utf-8")
    assert "paired t-test over the seeds" in text and "not held" in text
    assert re.search(r"<td[^>]*><p><strong>F2</strong> the teacher", text)
    assert any(image.name.startswith("regime_ablation") and image.stat().st_size > 10_000
               for image in local_images(page))


def test_equations_render_offline_with_mathjax_served_by_the_book(html):
    page = (html / "paper.html").read_text(encoding="utf-8")
    assert len(re.findall(r'class="math[ "]', page)) >= 10            # the equations, as math markup
    scripts = re.findall(r'<script[^>]*src="([^"]*mathjax[^"]*)"', page, flags=re.I)
    assert scripts and all(not src.startswith(("http:", "https:", "//")) for src in scripts), scripts
    assert all((html / src).is_file() for src in scripts)             # served with the book
    assert "References" in page and "Kakogeorgiou" in page            # the bibliography is built


# The lessons' animations play without a kernel: frames embedded in the page, no widget left empty.
ANIMATED = ["01_slot_attention", "02_decoder_attention_masks", "03_patch_order_permutations"]


@pytest.mark.parametrize("name", ANIMATED)
def test_former_explorer_pages_embed_their_animation_frames(html, name):
    text = (html / "notebooks" / f"{name}.html").read_text(encoding="utf-8")
    frames = re.findall(r'frames\[\d+\] = "data:image/png;base64,[A-Za-z0-9+/=]{200,}"', text)
    assert len(frames) >= 5, f"{name}.html embeds {len(frames)} animation frames"
    assert 'class="anim-slider"' in text and "new Animation(frames" in text
    assert "font-awesome" not in text, "the player's icons must not come from a CDN"


def test_no_page_has_an_empty_widget_output(html):
    pages = sorted(html.rglob("*.html"))
    assert len(pages) >= len(PROSE) + len(NOTEBOOKS)
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "application/vnd.jupyter.widget-view+json" not in text, f"{page.name}: a widget view"
        assert "widget-state+json" not in text and "embed-amd" not in text, f"{page.name}: widget state"


# Wide tables and long code lines scroll in their own box; the architecture figure is drawn by code;
# nothing on a page is fetched from the network.
def test_tables_scroll_and_keep_numbers_on_one_line(html):
    css = (html / "_static" / "tables.css").read_text()
    rules = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    number_cells = r"td\.text-right,\s*\.bd-article table th\.text-right\s*\{\s*white-space:\s*nowrap"
    assert re.search(number_cells, rules)
    assert re.search(r"pst-scrollable-table-container\s*\{[^}]*overflow-x:\s*auto", rules)
    assert re.search(r"\.bd-article pre\s*\{[^}]*overflow-x:\s*auto", rules)
    for page in [html / f"{name}.html" for name in PROSE] + [html / "notebooks" / f"{name}.html"
                                                             for name in NOTEBOOKS]:
        text = page.read_text(encoding="utf-8")
        assert '_static/tables.css' in text, f"{page.name} does not load tables.css"
        tables = text.count("<table")
        wrapped = len(re.findall(r'<div class="pst-scrollable-table-container">\s*<table', text))
        in_outputs = len(re.findall(r'class="output[^"]*"[^>]*>\s*(?:<div[^>]*>\s*)*<table', text))
        outside = tables - wrapped - in_outputs
        assert outside == 0, f"{page.name}: {outside} tables outside a scroll box"
    ablation = (html / "ablation.html").read_text(encoding="utf-8")
    assert ablation.count("pst-scrollable-table-container") >= 4
    assert re.search(r'<td class="text-right"><p>19\.9 ± 6\.7</p>', ablation)   # a number cell: nowrap


def test_the_architecture_figure_is_in_the_paper_chapter_and_lesson_1(html):
    page = html / "paper.html"
    images = [image for image in local_images(page) if image.name.startswith("architecture")]
    assert len(images) == 1 and images[0].stat().st_size > 50_000
    assert "architecture_figure" in page.read_text(encoding="utf-8")
    lesson = (html / "notebooks" / "01_slot_attention.html").read_text(encoding="utf-8")
    assert re.search(r"architecture_figure(</span>)?<span[^>]*>\(\)", lesson), "lesson 1 does not draw it"


def test_no_page_loads_an_image_from_the_network(html):
    for page in sorted(html.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        remote = re.findall(r'<img[^>]*\ssrc="((?:https?:)?//[^"]+)"', text)
        assert not remote, f"{page.name} loads {remote}"
    for name in NOTEBOOKS:
        text = (html / "notebooks" / f"{name}.html").read_text(encoding="utf-8")
        badge = re.search(r'<img alt="Open In Colab" src="([^"]+)"', text)
        assert badge, f"{name}: no Colab badge"
        source = badge.group(1)
        assert source.endswith("colab-badge.svg") and (html / "notebooks" / source).resolve().is_file()


# Boxes that scroll sideways show it, and the theme's layout has one search box.
def test_every_page_loads_the_scroll_cue(html):
    script = (html / "_static" / "scroll_cue.js").read_text()
    for selector in (".pst-scrollable-table-container", ".cell_output table", "div.highlight > pre",
                     "div.math"):
        assert selector in script, f"scroll_cue.js does not mark {selector}"
    rules = re.sub(r"/\*.*?\*/", "", (html / "_static" / "tables.css").read_text(), flags=re.S)
    assert re.search(r"\.scroll-cue--overflow\.scroll-cue--right \.scroll-cue__hint\s*\{\s*display:\s*block",
                     rules), "tables.css does not show the scroll hint"
    for page in built_pages(html):
        assert "_static/scroll_cue.js" in page.read_text(encoding="utf-8"), f"{page.name}: no scroll cue"


def test_one_search_box_and_no_header_bar(html):
    for page in built_pages(html):
        text = page.read_text(encoding="utf-8")
        assert text.count("search-button-field") == 1, f"{page.name}: more than one search box"
        header = re.search(r'<header id="pst-header"[^>]*>(.*?)</header>', text, re.S)
        assert header is None or not header.group(1).strip(), f"{page.name}: the theme's header bar is back"


def built_pages(html: Path) -> list[Path]:
    return [html / f"{name}.html" for name in PROSE] + [html / "notebooks" / f"{name}.html"
                                                        for name in NOTEBOOKS]


# Metric names as the paper writes them, and equations without Markdown in them.
VERBATIM_HTML = re.compile(r"<(pre|code|script|style|textarea)\b.*?</\1>", re.S)
MATH_HTML = re.compile(r'<(span|div) class="math[^"]*"[^>]*>(.*?)</\1>', re.S)


def prose_text(page: Path) -> str:
    """The text a reader sees on a page, without code, scripts and markup."""
    return re.sub(r"<[^>]+>", " ", VERBATIM_HTML.sub(" ", page.read_text(encoding="utf-8")))


def test_metric_names_are_typeset_with_a_superscript(html):
    for page in built_pages(html):
        text = prose_text(page)
        assert "mBO^" not in text, f"{page.name}: a literal caret: ...{text[text.find('mBO^') - 60:][:90]}..."
    assert "mBO<sup>i</sup>" in (html / "ablation.html").read_text(encoding="utf-8")   # tables too
    lesson = (html / "notebooks" / "05_coco_evaluation.html").read_text(encoding="utf-8")
    assert "mBO<sup>c</sup>" in lesson
    assert "mBO^i" in lesson, "the printed outputs (code) keep what the program prints"


def test_equations_hold_no_markdown_backticks(html):
    for page in built_pages(html):
        for _, body in MATH_HTML.findall(page.read_text(encoding="utf-8")):
            assert "`" not in body, f"{page.name}: a backtick inside an equation: {body[:120]}"


def test_metric_names_extension_leaves_code_alone():
    import importlib.util

    from docutils import nodes

    spec = importlib.util.spec_from_file_location("metric_names", BOOK / "_ext" / "metric_names.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    parts = module.typeset("mBO^i 34.9, mBO^c 44.8; not mBO^x")
    assert [p.astext() for p in parts] == ["mBO", "i", " 34.9, ", "mBO", "c", " 44.8; not mBO^x"]
    assert [type(p) for p in parts[:2]] == [nodes.Text, nodes.superscript]
    code = nodes.literal("mBO^i", "mBO^i")
    assert module.in_verbatim(code.children[0])
    assert not module.in_verbatim(nodes.paragraph("mBO^i", "mBO^i").children[0])


def test_the_intros_map_of_the_library_names_real_modules():
    intro = (BOOK / "intro.md").read_text()
    block = intro.split("## A map of the library", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    folders: list[str] = []
    named = 0
    lines = block.strip("\n").splitlines()
    assert lines[0] == "spot_tutorial/"
    for line in lines[1:]:
        name = line.strip().split(" ", 1)[0]
        if not name:
            continue
        depth = (len(line) - len(line.lstrip())) // 2   # two spaces per level below spot_tutorial/
        folders = folders[:depth - 1]
        path = ROOT / "spot_tutorial" / Path(*folders) / name
        assert path.exists(), f"the intro's map names {path.relative_to(ROOT)}, which does not exist"
        named += 1
        if name.endswith("/"):
            folders.append(name.rstrip("/"))
    assert named >= 20


# Computed in headless Chromium (skipped without one; `apt-get install chromium`): at the widths a
# reader uses, no box of a page cuts its content off without a way to scroll, every box that
# scrolls shows the cue, nothing runs out of the text column, and the contents column stays inside
# the window. The probe runs in the page after MathJax has typeset it and writes what it found
# into the DOM, which `chromium --dump-dom` prints.
CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)
LAYOUT_PROBE = """<script>
window.addEventListener("load", function () {
  function probe() {
    var article = document.querySelector(".bd-article");
    var edge = article.getBoundingClientRect().right + 2;
    var found = {cut: [], uncued: [], spill: [], toc: null};
    function name(e) { return (e.tagName + ": " + e.textContent).replace(/\\s+/g, " ").slice(0, 80); }
    function scrolls(e) {
      var x = getComputedStyle(e).overflowX;
      return x === "auto" || x === "scroll";
    }
    function inScrollBox(e) {
      for (var p = e.parentElement; p && p !== article; p = p.parentElement) {
        if (scrolls(p)) { return true; }
      }
      return false;
    }
    article.querySelectorAll("*").forEach(function (e) {
      // inline equations clip MathJax's hidden MathML copy: not content a reader misses
      var math = e.matches("span.math") || e.closest("mjx-container");
      var wide = e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 4 && !math;
      var x = getComputedStyle(e).overflowX;
      if (wide && (x === "hidden" || x === "clip")) { found.cut.push(name(e)); }
      if (wide && scrolls(e)) {
        var cue = e.closest(".scroll-cue");
        if (!cue || !cue.classList.contains("scroll-cue--overflow")) { found.uncued.push(name(e)); }
      }
      var box = e.getBoundingClientRect();
      if (box.width > 0 && box.right > edge && !inScrollBox(e)) { found.spill.push(name(e)); }
    });
    var toc = document.querySelector(".bd-sidebar-secondary");
    var rect = toc && toc.getBoundingClientRect();
    if (rect && rect.width > 0 && rect.left < window.innerWidth) {   // shown, not a closed drawer
      found.toc = {overflow: toc.scrollWidth - toc.clientWidth, right: rect.right,
                   window: document.documentElement.clientWidth};
    }
    var out = document.createElement("pre");
    out.id = "layout-probe";
    out.textContent = JSON.stringify(found);
    document.body.appendChild(out);
  }
  var startup = window.MathJax && window.MathJax.startup;
  var typeset = startup && startup.promise ? startup.promise : Promise.resolve();
  setTimeout(function () { typeset.then(function () { setTimeout(probe, 300); }); }, 200);
});
</script>"""


def layout(page: Path, width: int) -> dict:
    """What LAYOUT_PROBE finds on `page` in a window `width` pixels wide."""
    probed = page.with_name(page.stem + ".probe.html")      # next to the page: same relative links
    probed.write_text(page.read_text(encoding="utf-8").replace("</head>", LAYOUT_PROBE + "</head>", 1),
                      encoding="utf-8")
    try:
        result = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                                 f"--window-size={width},1200", "--virtual-time-budget=10000",
                                 "--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=120)
    finally:
        probed.unlink()
    found = re.search(r'<pre id="layout-probe">(.*?)</pre>', result.stdout, re.S)
    assert found, f"{page.name}: the layout probe did not run in Chromium:\n{result.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium to compute the layout (apt-get install chromium)")
@pytest.mark.parametrize("width", [1280, 800])
def test_nothing_is_cut_off_at_book_widths_in_chromium(html, width):
    for page in built_pages(html):
        found = layout(page, width)
        where = f"{page.name} at {width} px"
        assert not found["cut"], f"{where}: content cut off without a way to scroll: {found['cut'][:5]}"
        assert not found["uncued"], f"{where}: boxes that scroll without the cue: {found['uncued'][:5]}"
        assert not found["spill"], f"{where}: content out of the text column: {found['spill'][:5]}"
        if found["toc"]:
            toc = found["toc"]
            inside = toc["overflow"] <= 1 and toc["right"] <= toc["window"] + 1
            assert inside, f"{where}: the contents column runs out of the window: {toc}"
