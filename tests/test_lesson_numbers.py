"""The numbers that the lessons' prose quotes agree with what they quote.

Each row of ``QUOTES`` is one number in a markdown cell of a lesson: the lesson, a regex that finds
the quote (``{n}`` is the quoted number, ``{x}`` any other number of the context) and where the true
value comes from:

* ``Table`` / ``Output``: what a code cell of a lesson prints (its stored text outputs), the cell
  named by a snippet of its source, not by its index; ``Table`` reads a ``results_table`` by row and
  column, ``Output`` takes the one group of a regex;
* ``Stored``: a key path in a stored results file of ``benchmarks/results``;
* ``Min`` / ``Max`` over several of those (a quoted range);
* ``External``: a published number that a lesson cites (the authors' README, the FT-DINOSAUR
  paper): it must stay as it is.

A quote agrees when it equals its source rounded to the quote's decimals (one decimal: within
0.051). The table holds no measured number, only where each quote stands and where its value comes
from: after the lessons are re-executed (or a benchmark is re-run), run this file and edit the prose
where a row fails; the failure names the lesson, the quote and the value of its source now. A new
mBO / FG-ARI-like number in the prose must get a row here (``test_every_quoted_result_has_a_row``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
LESSONS = {path.name[:2]: path for path in sorted(NOTEBOOK_DIR.glob("0*.ipynb"))}

NUMBER = r"\d+(?:\.\d+)?"
ABLATION = "benchmarks/results/ablation.json"
QUICKSTART = "benchmarks/results/quickstart_quality.json"
THREE_ITERATIONS = ("earlier recipe: teacher 6 min lr 5e-4 with 3 slot-attention iterations;"
                    " student 2.5 min lr 2e-3")
FIVE_ITERATIONS = "rejected: teacher and student with 5 slot-attention iterations"
TEACHER_SLOT = "teacher slot masks"
STD = "mbo_i_std"

# Published numbers the lessons cite (lesson 5), one constant each; not measured here.
AUTHORS_README = {  # github.com/gkakogeorgiou/spot: the released COCO checkpoint, decoder masks, 9 orders
    "SPOT mBO^i": 34.9,
    "SPOT mBO^c": 44.8,
}
FT_DINOSAUR = {  # the FT-DINOSAUR paper (ICLR 2025), its own protocol
    "SPOT FG-ARI": 37.0,
    "SPOT mBO": 34.8,
    "SPOT P-ARI": 52.4,
    "SPOT PQ": 21.3,
    "DINOSAUR FG-ARI": 40.5,
    "DINOSAUR mBO": 27.7,
}


# ---------------------------------------------------------------------------------------------
# Reading the notebooks


@cache
def notebook(lesson: str) -> dict:
    return json.loads(LESSONS[lesson].read_text(encoding="utf-8"))


def joined(text: str | list[str]) -> str:
    """A notebook's multi-line string: stored as one string or as a list of lines."""
    return text if isinstance(text, str) else "".join(text)


def text_of(cell: dict) -> str:
    return joined(cell["source"])


def markdown_cells(lesson: str) -> list[tuple[int, str]]:
    return [(i, text_of(cell)) for i, cell in enumerate(notebook(lesson)["cells"])
            if cell["cell_type"] == "markdown"]


def code_cell(lesson: str, snippet: str) -> tuple[int, dict]:
    found = [(i, cell) for i, cell in enumerate(notebook(lesson)["cells"])
             if cell["cell_type"] == "code" and snippet in text_of(cell)]
    assert len(found) == 1, f"lesson {lesson}: {len(found)} code cells contain {snippet!r}, not one"
    return found[0]


def printed(lesson: str, snippet: str) -> str:
    """The text outputs of one code cell, concatenated (streams and text/plain results)."""
    parts = []
    for output in code_cell(lesson, snippet)[1].get("outputs", []):
        if output["output_type"] == "stream":
            parts.append(joined(output["text"]))
        elif "text/plain" in output.get("data", {}):
            parts.append(joined(output["data"]["text/plain"]) + "\n")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# Where a value comes from


@dataclass(frozen=True)
class Output:
    """The one group of `pattern` (``{n}``: the number) in the text a code cell printed."""

    lesson: str
    cell: str
    pattern: str

    def value(self) -> float:
        text = printed(self.lesson, self.cell)
        matches = re.findall(expand(self.pattern), text)
        assert len(matches) == 1, f"{self}: {len(matches)} matches in {text!r}"
        return float(matches[0])

    def __str__(self) -> str:
        return f"lesson {self.lesson}, the output of the cell with {self.cell!r}, {self.pattern!r}"


@dataclass(frozen=True)
class Table:
    """A number of a printed ``results_table``: its row (mask kind) and column (metric); `title`
    picks one of several tables the cell prints."""

    lesson: str
    cell: str
    row: str
    column: str
    title: str = ""

    def value(self) -> float:
        blocks = [b for b in printed(self.lesson, self.cell).split("\n\n") if b.startswith(self.title)]
        blocks = [b for b in blocks if re.search(r"^masks\s", b, re.M)]
        assert len(blocks) == 1, f"{self}: {len(blocks)} tables titled {self.title!r}"
        lines = blocks[0].splitlines()
        header = next(line for line in lines if line.startswith("masks "))
        columns = header.split()[1:]
        rows = [line[len(self.row):].split() for line in lines if line.startswith(self.row + "  ")]
        assert len(rows) == 1, f"{self}: {len(rows)} rows named {self.row!r} in {blocks[0]!r}"
        return float(rows[0][columns.index(self.column)])

    def __str__(self) -> str:
        title = f" {self.title!r}," if self.title else ""
        return (f"lesson {self.lesson}, the table printed by the cell with {self.cell!r},{title}"
                f" row {self.row!r}, column {self.column}")


@dataclass(frozen=True)
class Stored:
    """A value of a results file. Path items: a key, a list index, a dict (the list element whose
    fields have these values) or "*" (every element; `reduce` makes one number of them)."""

    file: str
    path: tuple
    reduce: Any = None

    def value(self) -> float:
        found = walk(json.loads((ROOT / self.file).read_text()), self.path)
        return float(self.reduce(found) if self.reduce else found)

    def __str__(self) -> str:
        how = f"{self.reduce.__name__} of " if self.reduce else ""
        return f"{how}{self.file} {list(self.path)}"


def walk(data: Any, path: tuple) -> Any:
    if not path:
        return data
    key, rest = path[0], path[1:]
    if key == "*":
        return [walk(item, rest) for item in data]
    if isinstance(key, dict):
        items = [item for item in data if all(item.get(k) == v for k, v in key.items())]
        assert len(items) == 1, f"{len(items)} elements match {key}"
        return walk(items[0], rest)
    return walk(data[key], rest)


@dataclass(frozen=True)
class Extreme:
    """The smallest or largest of several sources (the ends of a quoted range)."""

    function: Any
    sources: tuple

    def value(self) -> float:
        return self.function(source.value() for source in self.sources)

    def __str__(self) -> str:
        values = [source.value() for source in self.sources]
        reached = self.sources[values.index(self.value())]
        return f"the {self.function.__name__} of {len(values)} values, reached by {reached},"


def Min(*sources) -> Extreme:  # capitalised like the other sources of the table
    return Extreme(min, sources)


def Max(*sources) -> Extreme:
    return Extreme(max, sources)


@dataclass(frozen=True)
class External:
    """A published number, quoted from its source."""

    source: str
    name: str
    number: float

    def value(self) -> float:
        return self.number

    def __str__(self) -> str:
        return f"{self.source}: {self.name} {self.number}"


def readme(name: str) -> External:
    return External("the authors' README", name, AUTHORS_README[name])


def ft_dinosaur(name: str) -> External:
    return External("the FT-DINOSAUR paper", name, FT_DINOSAUR[name])


def ablation(dataset: str, variant: str, masks: str, stat: str = "mbo_i_mean",
             orders: str = "standard") -> Stored:
    """A cell of the ablation chapter's tables (book/_static/ablation_table.md is made from these)."""
    row = {"dataset": dataset, "variant": variant, "masks": masks, "orders": orders}
    return Stored(ABLATION, ("rows", row, stat))


def quickstart(recipe: str, seed: int | str, masks: str, reduce=None, metric: str = "mbo_i") -> Stored:
    """One run (seed) of benchmarks/quickstart_quality.py, or all its runs (seed "*") reduced."""
    run = seed if seed == "*" else {"seed": seed}
    return Stored(QUICKSTART, (recipe, "runs", run, "results", masks, metric), reduce)


# The cells that print the numbers, by a snippet of their source.
L2_TABLE = ("02", 'better = "decoder" if decoder > slot')
L3_SWAP = ("03", "def slot_reliance(model)")
L3_TABLE = ("03", "decoder mBO^i: random orders")
L4_TABLE = ("04", 'models = {"teacher": teacher, "student": trained}')
L5_GRID = ("05", "grid = grid_baseline(eval_set")
L5_MODELS = ("05", 'title = f"decoder orders: {orders}')
L5_ORDERS = ("decoder orders: standard", "decoder orders: all")
L5_MODEL_ROWS = ("teacher: slot", "teacher: decoder", "student: slot", "student: decoder")


@dataclass(frozen=True)
class Quote:
    lesson: str
    pattern: str  # {n}: the quoted number; {x}: another number of the context
    source: Any


def expand(pattern: str) -> str:
    return pattern.replace("{n}", f"({NUMBER})").replace("{x}", NUMBER)


QUOTES = [
    # Lesson 1: the quickstart teacher with 3 and with 5 slot-attention iterations, seeds 0-3.
    Quote("01", r"slot-mask mBO\^i {n} and {x}", quickstart(THREE_ITERATIONS, 2, TEACHER_SLOT)),
    Quote("01", r"slot-mask mBO\^i {x} and {n}", quickstart(THREE_ITERATIONS, 3, TEACHER_SLOT)),
    Quote("01", r"against {n} and {x}\s+on the other two", quickstart(THREE_ITERATIONS, 1, TEACHER_SLOT)),
    Quote("01", r"against {x} and {n}\s+on the other two", quickstart(THREE_ITERATIONS, 0, TEACHER_SLOT)),
    Quote("01", r"the same seeds reached {n}-{x}", quickstart(FIVE_ITERATIONS, "*", TEACHER_SLOT, min)),
    Quote("01", r"the same seeds reached {x}-{n}", quickstart(FIVE_ITERATIONS, "*", TEACHER_SLOT, max)),
    # Lesson 2: its own table, the ablation's raster model, lesson 3's raster model.
    Quote("02", r"\(mBO\^i {n} against {x}, FG-ARI", Table(*L2_TABLE, "slot masks", "mBO^i")),
    Quote("02", r"\(mBO\^i {x} against {n}, FG-ARI", Table(*L2_TABLE, "decoder masks", "mBO^i")),
    Quote("02", r"FG-ARI {n} against {x}\)", Table(*L2_TABLE, "slot masks", "FG-ARI")),
    Quote("02", r"FG-ARI {x} against {n}\)", Table(*L2_TABLE, "decoder masks", "FG-ARI")),
    Quote("02", r"decoder masks reach {n} mBO\^i against", ablation("shapes", "b_raster", "decoder")),
    Quote("02", r"mBO\^i against {n} for\s+its slot masks", ablation("shapes", "b_raster", "slot")),
    Quote("02", r"\(decoder masks {n} against {x} for its slot masks\)",
          Table(*L3_TABLE, "raster: decoder", "mBO^i")),
    Quote("02", r"\(decoder masks {x} against {n} for its slot masks\)",
          Table(*L3_TABLE, "raster: slot", "mBO^i")),
    # Lesson 3: the slot-swap test, its table, the ablation.
    Quote("03", r"\({n} with random orders, {x} with", Output(*L3_SWAP, r"random orders\s+{x}\s+{x}\s+{n}")),
    Quote("03", r"\({x} with random orders, {n} with", Output(*L3_SWAP, r"raster orders\s+{x}\s+{x}\s+{n}")),
    Quote("03", r"\({n} against {x} mBO\^i\)", Table(*L3_TABLE, "raster: decoder", "mBO^i")),
    Quote("03", r"\({x} against {n} mBO\^i\)", Table(*L3_TABLE, "random: decoder", "mBO^i")),
    Quote("03", r"\({n} with random orders, {x} raster\)", Table(*L3_TABLE, "random: slot", "mBO^i")),
    Quote("03", r"\({x} with random orders, {n} raster\)", Table(*L3_TABLE, "raster: slot", "mBO^i")),
    Quote("03", r"from {n} ± {x} to {x} ± {x} mBO\^i", ablation("shapes", "b_raster", "slot")),
    Quote("03", r"from {x} ± {n} to {x} ± {x} mBO\^i", ablation("shapes", "b_raster", "slot", STD)),
    Quote("03", r"from {x} ± {x} to {n} ± {x} mBO\^i", ablation("shapes", "c_random", "slot")),
    Quote("03", r"from {x} ± {x} to {x} ± {n} mBO\^i", ablation("shapes", "c_random", "slot", STD)),
    Quote("03", r"from {n} ± {x} to {x} ± {x} on", ablation("occluded", "b_raster", "slot")),
    Quote("03", r"from {x} ± {n} to {x} ± {x} on", ablation("occluded", "b_raster", "slot", STD)),
    Quote("03", r"from {x} ± {x} to {n} ± {x} on", ablation("occluded", "c_random", "slot")),
    Quote("03", r"from {x} ± {x} to {x} ± {n} on", ablation("occluded", "c_random", "slot", STD)),
    Quote("03", r"its masks are good \({n}\)", ablation("shapes", "b_raster", "decoder")),
    Quote("03", r"they collapse \({n}\)", ablation("shapes", "b_raster", "decoder", orders="all")),
    # Lesson 4: its own table and the ablation's raster teacher and its students.
    Quote("04", r"slot masks reach {n} mBO\^i against", Table(*L4_TABLE, "student: slot", "mBO^i")),
    Quote("04", r"against the\s+teacher's {n}, and", Table(*L4_TABLE, "teacher: slot", "mBO^i")),
    Quote("04", r"decoder masks {n} against {x}\.", Table(*L4_TABLE, "student: decoder", "mBO^i")),
    Quote("04", r"decoder masks {x} against {n}\.", Table(*L4_TABLE, "teacher: decoder", "mBO^i")),
    Quote("04", r"the teacher's decoder masks \({n}\)", Table(*L4_TABLE, "teacher: decoder", "mBO^i")),
    Quote("04", r"\(decoder masks {n} mBO\^i, slot masks {x}\)", ablation("shapes", "b_raster", "decoder")),
    Quote("04", r"\(decoder masks {x} mBO\^i, slot masks {n}\)", ablation("shapes", "b_raster", "slot")),
    Quote("04", r"from about {n} to about", ablation("shapes", "b_raster", "slot")),
    Quote("04", r"to about {n} \(", ablation("shapes", "d_raster_st", "slot")),
    Quote("04", r"to about {x} \({n} ± {x}\)", ablation("shapes", "d_raster_st", "slot")),
    Quote("04", r"to about {x} \({x} ± {n}\)", ablation("shapes", "d_raster_st", "slot", STD)),
    Quote("04", r"without distillation \({n} ± {x}\)", ablation("shapes", "g_student_no_ce", "slot")),
    Quote("04", r"without distillation \({x} ± {n}\)", ablation("shapes", "g_student_no_ce", "slot", STD)),
    # Lesson 4, exercise 3.
    Quote("04", r"the teacher's {n} mBO\^i on \*shapes\*", ablation("shapes", "b_raster", "slot")),
    Quote("04", r"to {n} with \$w = 0\.5\$", ablation("shapes", "d_raster_st", "slot")),
    Quote("04", r"and to {n}, the\s+best slot masks", ablation("shapes", "i_raster_st_paper_w", "slot")),
    # Lesson 5: the grid and the tutorial models it prints.
    Quote("05", r"\({n} FG-ARI, {x} mBO\^i, {x} mIoU\)", Table(*L5_GRID, "fixed grid", "FG-ARI")),
    Quote("05", r"\({x} FG-ARI, {n} mBO\^i, {x} mIoU\)", Table(*L5_GRID, "fixed grid", "mBO^i")),
    Quote("05", r"\({x} FG-ARI, {x} mBO\^i, {n} mIoU\)", Table(*L5_GRID, "fixed grid", "mIoU")),
    Quote("05", r"\({n} to {x} against {x}\)", Min(*(Table(*L5_MODELS, row, column, title)
                                                    for title in L5_ORDERS for row in L5_MODEL_ROWS
                                                    for column in ("mBO^i", "mIoU")))),
    Quote("05", r"\({x} to {n} against {x}\)", Max(*(Table(*L5_MODELS, row, column, title)
                                                    for title in L5_ORDERS for row in L5_MODEL_ROWS
                                                    for column in ("mBO^i", "mIoU")))),
    Quote("05", r"\({x} to {x} against {n}\)", Max(Table(*L5_GRID, "fixed grid", "mBO^i"),
                                                   Table(*L5_GRID, "fixed grid", "mIoU"))),
    Quote("05", r"slot\s+masks do\*\* \({n}\)", Table(*L5_MODELS, "teacher: slot", "FG-ARI", L5_ORDERS[0])),
    Quote("05", r"student's slot masks \({n}\)", Table(*L5_MODELS, "student: slot", "FG-ARI", L5_ORDERS[0])),
    Quote("05", r"every decoder mask \({n} to {x}\)", Min(*(Table(*L5_MODELS, row, "FG-ARI", title)
                                                           for title in L5_ORDERS
                                                           for row in L5_MODEL_ROWS if "decoder" in row))),
    Quote("05", r"every decoder mask \({x} to {n}\)", Max(*(Table(*L5_MODELS, row, "FG-ARI", title)
                                                           for title in L5_ORDERS
                                                           for row in L5_MODEL_ROWS if "decoder" in row))),
    Quote("05", r"grid score {n} FG-ARI", Table(*L5_GRID, "fixed grid", "FG-ARI")),
    Quote("05", r"only {n} mBO\^i\?", Table(*L5_GRID, "fixed grid", "mBO^i")),
    # Lesson 5: published numbers, quoted (the introduction, then the comparison after the table).
    Quote("05", r"\*\*mBO\^i {n}\*\* and", readme("SPOT mBO^i")),
    Quote("05", r"\*\*mBO\^c {n}\*\*, the numbers of the authors' README", readme("SPOT mBO^c")),
    Quote("05", r"protocol and reports FG-ARI {n}, mBO", ft_dinosaur("SPOT FG-ARI")),
    Quote("05", r"FG-ARI {x}, mBO {n}, P-ARI", ft_dinosaur("SPOT mBO")),
    Quote("05", r"P-ARI {n} and\s+PQ", ft_dinosaur("SPOT P-ARI")),
    Quote("05", r"P-ARI {x} and\s+PQ {n}", ft_dinosaur("SPOT PQ")),
    Quote("05", r"\*\*mBO\^i {n}, mBO\^c {x}\*\* in the authors' README", readme("SPOT mBO^i")),
    Quote("05", r"\*\*mBO\^i {x}, mBO\^c {n}\*\* in the authors' README", readme("SPOT mBO^c")),
    Quote("05", r"\*\*FG-ARI {n}, mBO {x}\*\*", ft_dinosaur("SPOT FG-ARI")),
    Quote("05", r"\*\*FG-ARI {x}, mBO {n}\*\*", ft_dinosaur("SPOT mBO")),
    Quote("05", r"\(and P-ARI {n}, PQ", ft_dinosaur("SPOT P-ARI")),
    Quote("05", r"\(and P-ARI {x}, PQ {n}\)", ft_dinosaur("SPOT PQ")),
    Quote("05", r"FG-ARI {n}, mBO {x} for DINOSAUR", ft_dinosaur("DINOSAUR FG-ARI")),
    Quote("05", r"FG-ARI {x}, mBO {n} for DINOSAUR", ft_dinosaur("DINOSAUR mBO")),
]


# ---------------------------------------------------------------------------------------------
# The checks


def find_quote(quote: Quote) -> list[tuple[int, re.Match]]:
    """Every match of the row's pattern in the lesson's markdown: (cell index, match)."""
    pattern = re.compile(expand(quote.pattern))
    return [(i, match) for i, text in markdown_cells(quote.lesson) for match in pattern.finditer(text)]


def tolerance(quoted: str) -> float:
    """Half a unit of the quote's last digit, and a little for the binary floats (54.15 printed
    as 54.1): 0.051 for one decimal, 0.51 for a whole number."""
    return 0.51 * 10.0 ** -len(quoted.partition(".")[2])


def row_id(quote: Quote) -> str:
    return f"{quote.lesson}:{quote.pattern}"


@pytest.mark.parametrize("quote", QUOTES, ids=row_id)
def test_quote_agrees_with_its_source(quote):
    found = find_quote(quote)
    assert len(found) == 1, (f"lesson {quote.lesson}: the pattern {quote.pattern!r} finds {len(found)} "
                             "quotes in the markdown, not one: update the row to the prose")
    cell, match = found[0]
    quoted = match.group(1)
    true = quote.source.value()
    assert abs(float(quoted) - true) <= tolerance(quoted), (
        f"lesson {quote.lesson}, markdown cell {cell}: the prose quotes {quoted} in {match.group(0)!r}, "
        f"but {quote.source} is {true}: fix the prose (or the row, if the source moved)")


# A result-like number: two digits, a point, one digit (mBO^i 58.8, FG-ARI 87.6, 29.8 ± 2.4),
# in a paragraph that speaks of a metric or of masks.
RESULT_NUMBER = re.compile(r"(?<![\d.])\d{2}\.\d(?![\d.])")
METRIC_WORDS = re.compile(r"mBO|FG-ARI|mIoU|P-ARI|\bPQ\b|\bmasks?\b|\bratio\b")


def unregistered(cells: list[tuple[int, str]], covered: set[tuple[int, int]]) -> list[str]:
    """The result-like numbers of these markdown cells whose (cell, start) no row covers."""
    missing = []
    for i, text in cells:
        start = 0
        for paragraph in re.split(r"\n\s*\n", text):
            start = text.index(paragraph, start)
            if METRIC_WORDS.search(paragraph):
                for number in RESULT_NUMBER.finditer(paragraph):
                    if (i, start + number.start()) not in covered:
                        context = paragraph[max(0, number.start() - 40):number.end() + 20]
                        missing.append(f"cell {i}: {number.group()} in {context!r}")
            start += len(paragraph)
    return missing


@pytest.mark.parametrize("lesson", sorted(LESSONS))
def test_every_quoted_result_has_a_row(lesson):
    covered = {(cell, match.start(1)) for quote in QUOTES if quote.lesson == lesson
               for cell, match in find_quote(quote)}
    missing = unregistered(markdown_cells(lesson), covered)
    assert not missing, (f"lesson {lesson} quotes numbers that no row of QUOTES checks; add a row each "
                         "(the quote's pattern and where its value comes from):\n" + "\n".join(missing))


def test_every_lesson_quotes_something_and_every_row_names_a_lesson():
    assert set(LESSONS) == {"01", "02", "03", "04", "05"}
    assert {quote.lesson for quote in QUOTES} == set(LESSONS)


def test_an_unregistered_quote_is_caught():
    cells = [(0, "The slot masks reach 61.3 mBO^i.\n\nTraining took 12.5 s."), (1, "mBO^i 47.0")]
    assert unregistered(cells, covered=set()) == ["cell 0: 61.3 in 'The slot masks reach 61.3 mBO^i.'",
                                                  "cell 1: 47.0 in 'mBO^i 47.0'"]
    assert unregistered(cells, covered={(0, 21), (1, 6)}) == []


def test_the_published_numbers_are_the_readmes():
    """The constants the lesson-5 rows check against are the table of published numbers in the
    README (the book's chapters quote the same table)."""
    readme_text = (ROOT / "README.md").read_text(encoding="utf-8")
    spot, dino = FT_DINOSAUR, FT_DINOSAUR
    rows = [
        f"| SPOT, authors' checkpoint | the authors' README (github.com/gkakogeorgiou/spot) | "
        f"| {AUTHORS_README['SPOT mBO^i']} | {AUTHORS_README['SPOT mBO^c']} | | |",
        f"| SPOT, same checkpoint | re-evaluation in the FT-DINOSAUR paper (ICLR 2025) "
        f"| {spot['SPOT FG-ARI']} | {spot['SPOT mBO']} | | {spot['SPOT P-ARI']} | {spot['SPOT PQ']} |",
        f"| DINOSAUR | the FT-DINOSAUR paper (ICLR 2025) "
        f"| {dino['DINOSAUR FG-ARI']} | {dino['DINOSAUR mBO']} |",
    ]
    for row in rows:
        assert row in readme_text, f"README.md lacks the row {row!r}"


def test_lesson_1_worked_softmax_example():
    """The two softmaxes of lesson 1's worked example ("Two softmaxes, two axes"), computed."""
    text = next(text for _, text in markdown_cells("01") if "## Two softmaxes, two axes" in text)
    logits = torch.tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 1.0]])   # [N, K]
    over_slots = logits.softmax(dim=1)
    weights = over_slots / over_slots.sum(dim=0)          # the weighted mean: columns over tokens
    over_tokens = logits.softmax(dim=0)

    def pairs(m):
        return r" \\ ".join(f"{a:.2f} & {b:.2f}" for a, b in m.tolist())

    def column(m, j):
        return "$(" + ", ".join(f"{v:.2f}" for v in m[:, j].tolist()) + ")$"

    assert pairs(over_slots) in text
    assert f"slot 1\naverages the values with weights {column(weights, 0)}" in text
    assert f"slot 2 with {column(weights, 1)}" in text
    assert f"would give slot 1\n{column(over_tokens, 0)} and slot 2 {column(over_tokens, 1)}" in text
    shared = over_tokens[:2, 1].sum().item()             # slot 2's attention on tokens 1 and 2
    assert f"keep {100 * shared:.0f} % of its attention" in text
    assert math.isclose(over_slots.sum(dim=1).sum().item(), 3.0)
