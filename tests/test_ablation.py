"""Tests for benchmarks/ablation.py: the --quick path end to end, --plot-only and resumability
(its metrics are the library's: tests/test_metrics.py). No timings and no metric values are
asserted (only structure)."""

import csv
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ablation():
    spec = importlib.util.spec_from_file_location("ablation", ROOT / "benchmarks" / "ablation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["ablation"] = module  # spawned workers (not used here) import it by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def quick_run(ablation, tmp_path_factory):
    out = tmp_path_factory.mktemp("ablation")
    argv = ["--quick", "--workers", "1", "--results-dir", str(out / "results"),
            "--static-dir", str(out / "static"), "--work-dir", str(out / "work")]
    paths = ablation.main(argv)
    return out, argv, paths


def expected_variants(ablation):
    return {dataset: [ablation.GRID, *info["variants"]] for dataset, info in ablation.DATASETS.items()}


@pytest.mark.slow
def test_quick_run_writes_every_output_with_rows_for_every_variant(ablation, quick_run):
    out, _, paths = quick_run
    for key in ("json", "csv", "png", "table", "book_png"):
        assert paths[key].exists() and paths[key].stat().st_size > 0, key
    data = json.loads(paths["json"].read_text())
    for key in ("command", "seeds", "budget", "environment", "total_wall_seconds", "rows", "runs"):
        assert key in data, key
    for key in ("torch", "python", "platform", "cpu_count"):
        assert key in data["environment"], key
    assert data["command"].startswith("python benchmarks/ablation.py") and "--quick" in data["command"]
    assert data["seeds"] == [0]

    rows = data["rows"]
    for dataset, variants in expected_variants(ablation).items():
        for variant in variants:
            mine = [r for r in rows if r["dataset"] == dataset and r["variant"] == variant]
            assert mine, (dataset, variant)
            orders = {r["orders"] for r in mine}
            masks = {r["masks"] for r in mine}
            if variant == ablation.GRID:
                assert masks == {"grid"} and orders == {"standard"}
            elif ablation.VARIANTS[variant].get("overrides", {}).get("dec_type") == "mlp":
                assert orders == {"standard"}  # no patch orders for the MLP decoder
                assert masks == {"slot", "decoder"}
            else:
                assert orders == {"standard", "all"} and masks == {"slot", "decoder"}
    for row in rows:
        for metric in ablation.METRICS:
            assert isinstance(row[f"{metric}_mean"], float) and isinstance(row[f"{metric}_std"], float)

    with open(paths["csv"]) as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == len(rows)
    assert {"mbo_i_mean", "mbo_i_std", "fg_ari_mean", "fg_ari_std"} <= set(table[0])

    markdown = paths["table"].read_text()
    for variant in ablation.VARIANTS:
        assert ablation.VARIANTS[variant]["label"] in markdown

    runs_dir = out / "results" / "ablation_runs"
    run_files = sorted(p.name for p in runs_dir.glob("*.json"))
    assert len(run_files) == len(data["run_files"])
    one = json.loads((runs_dir / "shapes-e_spot-s0.json").read_text())
    assert one["teacher"] == "shapes-c_random-s0" and one["stage"] == 2
    assert one["config"]["ce_weight"] == ablation.PAPER_CE_WEIGHT
    assert one["config"]["train_orders"] == "random" and one["config"]["init_method"] == "embedding"
    raster_student = json.loads((runs_dir / "shapes-d_raster_st-s0.json").read_text())
    assert raster_student["teacher"] == "shapes-b_raster-s0"
    assert not list(out.glob("results/**/*.pt")), "checkpoints must stay out of the results folder"


@pytest.mark.slow
def test_plot_only_regenerates_from_the_stored_json(ablation, quick_run):
    out, argv, paths = quick_run
    before = json.loads(paths["json"].read_text())
    for key in ("csv", "png", "table", "book_png"):
        paths[key].unlink()
    ablation.main([*argv, "--plot-only"])
    for key in ("csv", "png", "table", "book_png"):
        assert paths[key].exists(), key
    after = json.loads(paths["json"].read_text())
    assert after["rows"] == before["rows"]
    assert after["command"] == before["command"]  # the command that produced the runs is kept


def test_rerun_skips_finished_runs(ablation, quick_run, capsys):
    out, argv, _ = quick_run
    runs_dir = out / "results" / "ablation_runs"
    stamps = {p.name: p.stat().st_mtime_ns for p in runs_dir.glob("*-s0.json")}
    ablation.main(argv)
    assert "already finished" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in runs_dir.glob("*-s0.json")} == stamps


def test_plan_puts_teachers_before_their_students(ablation):
    budget = dict(ablation.QUICK_BUDGET)
    budget.pop("seeds")
    specs = ablation.plan_runs(list(ablation.DATASETS), [0, 1], budget)
    position = {spec["run"]: i for i, spec in enumerate(specs)}
    for spec in specs:
        if spec["teacher"]:
            assert position[spec["teacher"]] < position[spec["run"]]
            assert spec["teacher"].endswith(f"-s{spec['seed']}")


@pytest.mark.slow
def test_runs_are_scored_on_validation_and_test_scenes_and_the_validation_table_stays_out_of_the_book(
        ablation, quick_run):
    out, argv, paths = quick_run
    run = json.loads((out / "results" / "ablation_runs" / "camouflage-c_random-s0.json").read_text())
    assert run["config"]["which_encoder"] == "tiny-dino" and run["config"]["cache_features"]
    assert run["results"] != run["validation_results"]  # two different sets of scenes
    validation = ablation.main([*argv, "--plot-only", "--split", "validation"])
    assert validation["table"] == out / "results" / "validation_ablation_table.md"
    assert validation["table"].read_text() != paths["table"].read_text()
    assert not (out / "static" / "validation_ablation_table.md").exists()


# ---------------------------------------------------------------------------------------------
# the paired test over seeds (the chapter quotes its p-values)
def fake_record(variant: str, seed: int, slot: float, dataset: str = "shapes") -> dict:
    scores = {"slot": {"mbo_i": slot}, "decoder": {"mbo_i": slot - 1.0}}
    return {"run": f"{dataset}-{variant}-s{seed}", "dataset": dataset, "variant": variant, "seed": seed,
            "results": {"standard": scores, "all": scores}}


def test_seed_pairs_pair_the_runs_of_the_same_seed(ablation):
    records = [fake_record("c_random", 0, 40.0), fake_record("c_random", 1, 44.0),
               fake_record("c_random", 2, 46.0), fake_record("b_raster", 2, 30.0),
               fake_record("b_raster", 0, 31.0), fake_record("b_raster", 5, 20.0),
               fake_record("b_raster", 1, 29.0, dataset="occluded")]
    pairs = ablation.seed_pairs(records, "shapes", "c_random", "b_raster")
    assert pairs == [(0, 40.0, 31.0), (2, 46.0, 30.0)]   # seeds run by both, on this dataset only
    decoder = ablation.seed_pairs(records, "shapes", "c_random", "b_raster", masks="decoder")
    assert decoder[0] == (0, 39.0, 30.0)


def test_paired_test_is_the_t_test_of_the_differences(ablation):
    pairs = [(0, 42.3, 30.1), (1, 47.4, 32.0), (2, 44.0, 27.2)]
    test = ablation.paired_test(pairs)
    differences = [a - b for _, a, b in pairs]
    mean = sum(differences) / 3
    std = (sum((d - mean) ** 2 for d in differences) / 2) ** 0.5
    assert test["n"] == 3 and test["df"] == 2 and test["seeds"] == [0, 1, 2]
    assert test["mean_difference"] == pytest.approx(mean)
    assert test["t"] == pytest.approx(mean / (std / 3 ** 0.5))
    # two-sided p of Student's t with 2 degrees of freedom, in closed form: 1 - t / sqrt(t^2 + 2)
    assert test["p"] == pytest.approx(1 - test["t"] / (test["t"] ** 2 + 2) ** 0.5)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        ablation.paired_test(pairs[:1])


def test_findings_are_paired_tests_of_the_stated_sides_and_hold_only_when_significant(ablation):
    def run(variant, seed, slot, decoder_all, decoder_raster=None):
        raster = decoder_all if decoder_raster is None else decoder_raster
        results = {"standard": {"slot": {"mbo_i": slot}, "decoder": {"mbo_i": raster}},
                   "all": {"slot": {"mbo_i": slot}, "decoder": {"mbo_i": decoder_all}}}
        return {"run": f"camouflage-{variant}-s{seed}", "dataset": "camouflage", "variant": variant,
                "seed": seed, "results": results}

    grid = {"run": "camouflage-grid", "dataset": "camouflage", "variant": "grid", "seed": None,
            "results": {"standard": {"slot": {"mbo_i": 17.5}, "decoder": {"mbo_i": 17.5}}}}
    records = [grid]
    for seed, noise in enumerate((0.3, -0.4, 0.1)):
        records += [run("c_random", seed, 26 + noise, 30 + 2 * noise, decoder_raster=5.0),
                    run("b_raster", seed, 24 - noise, 8.0, decoder_raster=21 + noise),
                    run("a_mlp", seed, 22, 90.0, decoder_raster=23 + noise)]
    records.append(run("e_spot", 0, 33, 31))  # one seed only: F3 cannot be tested yet
    tests = {(t["finding"], t["claim"]): t for t in ablation.finding_tests(records, "camouflage")}
    assert {finding for finding, _ in tests} == {"F1", "F2", "F4"}
    f1 = tests["F1", "random orders beat raster: decoder masks"]
    # the random-order teacher read over nine orders, the raster one in its own order
    assert f1["first"] == pytest.approx([30.6, 29.2, 30.2])
    assert f1["second"] == pytest.approx([21.3, 20.6, 21.1])
    assert f1["held"] and f1["p"] < 0.05
    f2 = tests["F2", "the teacher's decoder masks beat its slot masks"]
    assert f2["mean_difference"] == pytest.approx(4 + sum((0.3, -0.4, 0.1)) / 3) and f2["held"]
    # the MLP decoder is read in the raster order, and the grid repeats its one score per seed
    grid_test = tests["F4", "the MLP decoder beats the grid"]
    assert grid_test["second"] == [17.5] * 3 and grid_test["first"] == pytest.approx([23.3, 22.6, 23.1])
    mlp = tests["F4", "the AR decoder beats the MLP decoder"]
    assert mlp["held"]
    # a difference that changes sign across seeds is not a finding that held
    records += [run("c_random", 3, 20, 15, decoder_raster=5.0), run("b_raster", 3, 30, 8, decoder_raster=30)]
    retested = {(t["finding"], t["claim"]): t for t in ablation.finding_tests(records, "camouflage")}
    assert not retested["F1", "random orders beat raster: decoder masks"]["held"]
    table = ablation.findings_table(records)
    assert "| **F1** random orders beat raster: decoder masks | " in table and "not held" in table


def test_paired_option_reads_the_stored_runs_and_trains_nothing(ablation, capsys):
    assert ablation.main(["--paired", "c_random", "b_raster"]) == {}
    out = capsys.readouterr().out
    assert "c_random - b_raster" in out
    assert "shapes: s0:" in out and "occluded: s0:" in out and "t(2) = " in out and "p = " in out


def test_the_chapters_paired_tests_are_the_stored_runs(ablation):
    """Every row of book/ablation.md's table of paired tests is recomputed from the run files."""
    chapter = (ROOT / "book" / "ablation.md").read_text()
    rows = re.findall(r"^\| \((\w)\) − \((\w)\)[^|]*\|([^|]+)\|([^|]+)\|([^|]+)\|([^|]+)\|$", chapter, re.M)
    assert len(rows) >= 6, "the chapter's table of paired tests is missing"
    variant = {key[0]: key for key in ablation.VARIANTS}
    records = ablation.load_records(ROOT / "benchmarks" / "results" / "ablation_runs",
                                    ablation.FULL_BUDGET, ablation.FULL_BUDGET["seeds"])
    for first, second, *cells in rows:
        for dataset, (differences, p) in zip(("shapes", "occluded"), (cells[:2], cells[2:]), strict=True):
            pairs = ablation.seed_pairs(records, dataset, variant[first], variant[second])
            test = ablation.paired_test(pairs)
            quoted = [float(d.replace("−", "-")) for d in differences.split(",")]
            assert quoted == pytest.approx(test["differences"], abs=0.051), (first, second, dataset)
            assert float(p) == pytest.approx(test["p"], abs=0.0005), (first, second, dataset)


def test_interrupting_the_ablation_stops_its_worker_processes(ablation):
    """A killed scheduler must not leave workers that keep training into the runs' folders."""
    import multiprocessing
    import time
    from concurrent.futures import ProcessPoolExecutor

    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        with pytest.raises(KeyboardInterrupt):
            with ablation.workers_stopped_with(pool):
                pool.submit(time.sleep, 60)
                time.sleep(1.0)  # the worker is up and sleeping in its job
                pids = [process.pid for process in pool._processes.values()]
                raise KeyboardInterrupt
    assert pids and time.perf_counter() - started < 30  # the pool did not wait for the job
    for pid in pids:  # gone, or a zombie waiting to be reaped
        status = Path(f"/proc/{pid}/status")
        assert not status.exists() or "zombie" in status.read_text()


def test_the_books_regime_findings_are_those_of_the_stored_runs(ablation):
    """book/_static/regime_ablation_table.md (the chapter's camouflage section) is up to date with
    the run files in benchmarks/results/regime/ablation_runs, its findings recomputed here."""
    table = (ROOT / "book" / "_static" / "regime_ablation_table.md").read_text()
    records = ablation.load_records(ROOT / "benchmarks" / "results" / "regime" / "ablation_runs",
                                    ablation.FULL_BUDGET, [0, 1, 2, 3, 4])
    findings = ablation.findings_table(records)
    assert findings and findings in table
    assert table.count("| **F") == len(ablation.finding_tests(records, "camouflage")) >= 6


def test_a_learning_rate_and_batch_size_of_their_own_make_another_budget(ablation):
    budget = {k: v for k, v in ablation.FULL_BUDGET.items() if k != "seeds"}
    default = ablation.budget_signature(budget)
    assert ablation.budget_signature(dict(budget, lr_main=ablation.LR_MAIN)) == default  # stored runs hold
    assert ablation.budget_signature(dict(budget, lr_main=1e-3)) != default
    assert ablation.budget_signature(dict(budget, batch_size=16)) != default
    spec = dict(run="camouflage-e_spot-s0", dataset="camouflage", variant="e_spot", seed=0, stage=2,
                teacher="camouflage-c_random-s0", budget=dict(budget, lr_main=1e-3, batch_size=16))
    student = ablation.run_config(spec)
    teacher = ablation.run_config(dict(spec, variant="c_random", stage=1, teacher=None))
    for config in (teacher, student):  # both stages
        assert config.lr_main == 1e-3 and config.batch_size == 16
    assert ablation.run_config(dict(spec, budget=budget)).lr_main == ablation.LR_MAIN
