"""Quality of the quickstart recipe over several seeds (a benchmark script, not a test).

Runs `spot quickstart` (teacher, then self-trained student, on synthetic shapes, CPU) once per
seed, one after the other (each run wants the whole CPU), and prints and stores mBO^i, FG-ARI,
mIoU of the slot and decoder masks with the wall times and images/s of both stages.

    python benchmarks/quickstart_quality.py --seeds 0 1 2          # the default budgets
    python benchmarks/quickstart_quality.py --seeds 0 --minutes 5 --student-minutes 3
    python benchmarks/quickstart_quality.py --jobs 2 --data-workers 0  # two seeds at a time, a core each
    python benchmarks/quickstart_quality.py --seeds 0 1 2 --label L --resume  # only the seeds not stored

Wall times depend on what else the machine runs: the load average (1 minute) before and after
each run is stored next to it. The training stages are time-budgeted, so a loaded machine gives
fewer steps (and usually lower scores), not longer runs.

Results: benchmarks/results/quickstart_quality.json (appended per invocation under a label).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from spot_tutorial.apps.cli import thread_count
from spot_tutorial.apps.quickstart import (
    QUICKSTART_SCENES,
    default_student_minutes,
    run_quickstart,
)

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "quickstart_quality.json"
ROWS = ("teacher slot masks", "teacher decoder masks", "student slot masks", "student decoder masks")
METRICS = ("mbo_i", "fg_ari", "miou")


def run_seed(seed: int, args: argparse.Namespace) -> dict:
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    result = run_quickstart(output_dir=Path(args.output_dir) / f"seed_{seed}", minutes=args.minutes,
                            student_minutes=args.student_minutes, seed=seed, device="cpu",
                            threads=args.threads, data_workers=args.data_workers, progress=False,
                            verbose=False, prerender=args.prerender, scenes=args.scenes, **args.overrides)
    report = result.report
    baseline = next(name for name in report["results"] if name.startswith("grid"))
    return {
        "seed": seed,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # before, after
        "teacher": {k: report["teacher"][k] for k in ("steps", "train_seconds", "images_per_second")},
        "student": {k: report["student"][k] for k in ("steps", "train_seconds", "images_per_second")},
        "decoder_orders": report["config"]["teacher"]["eval_orders"],
        "data_workers": report["environment"]["data_workers"],
        "prerendered": report["environment"]["prerendered"],
        "threads": report["environment"]["threads"],
        "thread_step_ms": report["environment"]["thread_step_ms"],
        "num_slots": report["config"]["teacher"]["num_slots"],
        "scenes": report["scenes"],
        "findings": {f["finding"]: f["held"] for f in report["findings"]},
        "batch_size": {stage: report["config"][stage]["batch_size"] for stage in ("teacher", "student")},
        "results": {name: {m: round(report["results"][name][m], 2) for m in METRICS}
                    for name in (baseline, *ROWS)},
    }


def summary_table(runs: list[dict]) -> str:
    names = list(runs[0]["results"])
    lines = [f"{'masks':<24}" + "".join(f"{m:>16}" for m in ("mBO^i", "FG-ARI", "mIoU"))]
    for name in names:
        cells = []
        for metric in METRICS:
            values = [run["results"][name][metric] for run in runs]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):>9.1f} ± {spread:<4.1f}")
        lines.append(f"{name:<24}" + "".join(f"{c:>16}" for c in cells))
    walls = [run["wall_seconds"] for run in runs]
    loads = [load for run in runs for load in run["load_average_1min"]]
    lines.append(f"wall time per run: {statistics.mean(walls):.0f} s (max {max(walls):.0f} s), load average "
                 f"{min(loads):.1f}-{max(loads):.1f}; "
                 f"teacher {statistics.mean(r['teacher']['steps'] for r in runs):.0f} steps, "
                 f"{statistics.mean(r['teacher']['images_per_second'] for r in runs):.0f} images/s; "
                 f"student {statistics.mean(r['student']['steps'] for r in runs):.0f} steps, "
                 f"{statistics.mean(r['student']['images_per_second'] for r in runs):.0f} images/s")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--minutes", type=float, default=None,
                        help="teacher minutes (default: the quickstart's for --scenes)")
    parser.add_argument("--student-minutes", type=float, default=None,
                        help="default: the quickstart's for --scenes (in proportion to --minutes if given)")
    parser.add_argument("--threads", type=thread_count, default="auto",
                        help="torch threads per run: the quickstart's default 'auto', or a number")
    parser.add_argument("--prerender", action=argparse.BooleanOptionalAction, default=True,
                        help="the quickstart's default; --no-prerender renders in data-loading processes")
    parser.add_argument("--data-workers", type=int, default=None,
                        help="with --no-prerender: data-loading processes per run (default: the "
                             "quickstart's, 1 on 2+ cores)")
    parser.add_argument("--scenes", choices=sorted(QUICKSTART_SCENES), default="shapes",
                        help="the quickstart's scenes (default: shapes)")
    parser.add_argument("--overrides", type=json.loads, default={},
                        help='teacher settings on top of the recipe, as JSON, e.g. \'{"lr_main": 4e-4}\'')
    parser.add_argument("--output-dir", default="outputs/quickstart_quality")
    parser.add_argument("--label", default=None, help="key of this invocation in the results file")
    parser.add_argument("--resume", action="store_true",
                        help="keep the seeds already stored under --label and run only the others")
    parser.add_argument("--jobs", type=int, default=1,
                        help="seeds run at a time, each in its own process (keep jobs x threads <= cores)")
    args = parser.parse_args()

    if args.minutes is None:
        args.minutes = QUICKSTART_SCENES[args.scenes].minutes
    student_minutes = (default_student_minutes(args.minutes, args.scenes) if args.student_minutes is None
                       else args.student_minutes)
    label = args.label or f"minutes={args.minutes:g}/{student_minutes:g}"
    runs = stored_runs(label, args.seeds) if args.resume else []
    todo = [seed for seed in args.seeds if seed not in {run["seed"] for run in runs}]
    table = summary_table(runs) if runs else ""
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run_seed, seed, args) for seed in todo]
        for future in futures:
            runs.append(future.result())
            run = runs[-1]
            print(f"seed {run['seed']}: {run['wall_seconds']:.0f} s (load {run['load_average_1min']}); "
                  + "; ".join(f"{name} mBO {values['mbo_i']:.1f} FG-ARI {values['fg_ari']:.1f}"
                              for name, values in run["results"].items()), flush=True)
            table = summary_table(runs)
            store(label, runs, table, args, student_minutes)  # after every seed: a kill loses none
    print("\n" + table)
    print(f"\nstored under {label!r} in {RESULTS}")


def stored_runs(label: str, seeds: list[int]) -> list[dict]:
    """The runs of `seeds` already stored under `label` (for --resume)."""
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    return [run for run in stored.get(label, {}).get("runs", []) if run["seed"] in seeds]


def store(label: str, runs: list[dict], table: str, args: argparse.Namespace, student_minutes: float) -> None:
    """Write (or update) this invocation's entry of the results file, atomically."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    stored[label] = {"runs": runs, "table": table, "threads": args.threads, "jobs": args.jobs,
                     "prerender": args.prerender, "scenes": args.scenes, "overrides": args.overrides,
                     "data_workers": runs[0]["data_workers"],
                     "minutes": {"teacher": args.minutes, "student": student_minutes},
                     "metrics": "mBO/mIoU in the authors' convention (predicted segments keep their "
                                "background pixels), FG-ARI on foreground pixels; x100",
                     "machine": {"cpus": torch.get_num_threads(), "platform": platform.platform(),
                                 "processor": platform.processor(), "torch": torch.__version__}}
    partial = RESULTS.with_suffix(".json.partial")
    partial.write_text(json.dumps(stored, indent=2) + "\n")
    os.replace(partial, RESULTS)


if __name__ == "__main__":
    main()
