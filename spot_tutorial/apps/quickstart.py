"""`spot quickstart`: the whole SPOT method on a laptop CPU in minutes, with no downloads.

It runs both stages of the paper on built-in synthetic scenes with a tiny model (64 px images):
by default flat-coloured shapes seen through a frozen depth-0 ViT (pixels, 5 slots); with
``scenes="camouflage"`` (``spot quickstart --scenes camouflage``) textured scenes that colour
cannot segment, seen through the project's own self-supervised 4-block ViT (7 slots), SPOT's
regime in miniature:

1. stage 1: a teacher (shared Gaussian slots, random patch orders) for a wall-time budget;
2. stage 2: a new student distilled from the teacher's decoder masks (self-training);
3. evaluation of both (slot masks and decoder masks: FG-ARI, mBO^i, mBO^c, mIoU) next to a
   trivial baseline (a fixed grid of masks), a table on the terminal, a figure of the masks
   (masks.png) and a JSON report (report.json) in the output folder.

What to look for: the student's slot masks learn what the teacher's decoder masks show (the
distillation of stage 2), and the fixed grid, which knows nothing about the image, gives the
scale of the numbers. Judge by mBO^i: FG-ARI is high even for the fixed grid on these scenes.
"""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from spot_tutorial.config import NO_LIMIT, SPOTConfig
from spot_tutorial.data import RenderedScenes, build_datasets
from spot_tutorial.errors import ConfigError
from spot_tutorial.evaluation.baselines import grid_baseline
from spot_tutorial.evaluation.evaluate import results_table
from spot_tutorial.recipes import get_preset, student_config
from spot_tutorial.runtime import available_cpus
from spot_tutorial.training.loop import Trainer, TrainResult

DEFAULT_OUTPUT_DIR = "outputs/quickstart"
# Training minutes of the teacher and of the student: with evaluation, figure and start-up the
# whole run stays under 10 minutes on 2 CPU cores. The teacher gets most of the time: its masks
# keep improving with more steps, and they are what the student learns from.
DEFAULT_MINUTES = 6.0
DEFAULT_STUDENT_MINUTES = 2.5


def default_data_workers() -> int:
    """Data-loading processes for the quickstart with ``prerender=False``: 1 when a second core is
    free for it, else 0 (prerendered scenes, the default, need none).

    Measured with batches of 32 on a 2-core AMD EPYC: rendering a batch of synthetic scenes takes
    about 18 ms and a training step of the tiny model about 66 ms on one core. In one process they
    add up (87 ms a step); with the rendering in a worker on the second core the step takes 67 ms:
    1.3x the steps in the same minutes. The images are the same either way (item i is seeded by i).
    """
    return 1 if available_cpus() >= 2 else 0


def fastest_thread_count(config: SPOTConfig, images: torch.Tensor, candidates: tuple[int, ...] = (1, 2),
                         steps: int = 10, rounds: int = 2) -> tuple[int, dict[int, float]]:
    """The torch thread count that trains this model fastest on this machine, right now
    (`choose_thread_count` of the timings: more threads win a near-tie).

    Times teacher steps of a throw-away copy of the model (same configuration, its own weights and
    optimiser, so the real run is untouched): `rounds` rounds that try each candidate in turn, each
    try `steps` steps after two warm-up steps (`step_time`); a candidate's time is its best round's.
    About two seconds in all. Two threads win on an idle machine with two free cores; one wins
    where the second "core" is a hyper-thread of the first (a Colab CPU runtime) or is busy with
    other work, because every small operation of a two-thread step waits for its slower thread.
    A try stops once it has taken 3x what the fastest candidate's steps take: on a machine whose
    cores were busy, a two-thread step took 4.2 s against 0.11 s, and timing it in full took 100 s.
    """
    from spot_tutorial.training.loop import build_model
    from spot_tutorial.training.optimizers import adam, apply_gradients

    candidates = tuple(n for n in candidates if n <= available_cpus()) or (1,)
    timings = {n: float("inf") for n in candidates}
    with torch.random.fork_rng(devices=[]):  # the real run's random numbers stay untouched
        torch.manual_seed(config.seed)
        model = build_model(config, pretrained=False).train()
        optimizer = adam([p for p in model.parameters() if p.requires_grad], config.lr_main)

        def train_step():
            apply_gradients(model, optimizer, model(images).loss, clip=config.clip)

        for _ in range(rounds):
            for threads in candidates:
                torch.set_num_threads(threads)
                give_up_s = 3 * (steps + 2) * min(timings.values()) / 1e3
                timings[threads] = min(timings[threads], step_time(train_step, steps, give_up_s))
    chosen = choose_thread_count(timings)
    torch.set_num_threads(chosen)
    return chosen, timings


def step_time(step: Callable[[], None], steps: int, give_up_s: float = math.inf) -> float:
    """Milliseconds a call of `step` takes: the median of `steps` calls after two warm-up calls. Once
    the calls have taken `give_up_s` seconds in all it stops early and returns their mean, warm-up
    included (the candidate is far slower than another: a rough figure is enough)."""
    durations = []
    for _ in range(steps + 2):
        start = time.perf_counter()
        step()
        durations.append(time.perf_counter() - start)
        if sum(durations) > give_up_s:
            return 1e3 * sum(durations) / len(durations)
    timed = sorted(durations[2:])
    return 1e3 * timed[len(timed) // 2]


# A smaller thread count must be this much faster to win (share of the fastest time).
THREAD_MARGIN = 0.15


def choose_thread_count(timings: dict[int, float], margin: float = THREAD_MARGIN) -> int:
    """The most threads whose step time (ms) is within `margin` of the fastest candidate's.

    Two seconds of timing cannot split a near-tie: on a 2-core machine a timing of 45 ms (1 thread)
    against 46 ms (2 threads) picked one thread, and the run then made 7472 teacher steps in its
    6 minutes where runs on 2 threads make about 13,600. So fewer threads win only when clearly
    faster (a hyper-threaded or busy second core: 1.3x and more).
    """
    fastest = min(timings.values())
    return max(n for n, ms in timings.items() if ms <= (1 + margin) * fastest)


def default_student_minutes(minutes: float, scenes: str | None = None) -> float:
    """The student's minutes when only the teacher's are given: the default split of `scenes`
    (`QUICKSTART_SCENES`; default `DEFAULT_SCENES`), in proportion."""
    kind = quickstart_scenes(DEFAULT_SCENES if scenes is None else scenes)
    return minutes * kind.student_minutes / kind.minutes


@dataclass
class QuickstartResult:
    report: dict[str, Any]  # everything in report.json
    table: str              # the printed table
    report_path: Path
    figure_path: Path


# The quickstart recipe on top of the synthetic preset; the measurements behind each setting are
# in benchmarks/RESULTS.md, "How the quickstart recipe was chosen". The teacher: lr 5e-4, five
# slot-attention iterations, batches of 16, one evaluation at the end over all nine patch orders.
QUICKSTART_SETTINGS = dict(lr_main=5e-4, num_iterations=5, batch_size=16, eval_orders="all",
                           epochs=NO_LIMIT, eval_every=NO_LIMIT, checkpoint_every=0, log_every=50)
# The student: lr 2e-3, the paper's three iterations, batches of 32.
QUICKSTART_STUDENT_SETTINGS = dict(lr_main=2e-3, num_iterations=3, batch_size=32)
# Both stages on the camouflage scenes (the `camouflage` preset: the project's DINO + iBOT ViT,
# 7 slots): lr 1e-3, the paper's three iterations, batches of 16. Chosen on validation scenes
# (benchmarks/RESULTS.md, "Cheaper teacher steps"): batches of 16 make 1.7x the steps in the
# same minutes, and at lr 1e-3 the teacher's slot masks keep improving where at the ablation's
# 2e-3 they fall in long runs.
CAMOUFLAGE_SETTINGS = dict(QUICKSTART_SETTINGS, lr_main=1e-3, num_iterations=3, batch_size=16)
CAMOUFLAGE_STUDENT_SETTINGS = dict(lr_main=1e-3, num_iterations=3, batch_size=16)
CAMOUFLAGE_MINUTES = 4.5
CAMOUFLAGE_STUDENT_MINUTES = 3.8


@dataclass(frozen=True)
class QuickstartScenes:
    """One kind of quickstart scenes: the preset, each stage's settings and training minutes."""
    preset: str
    teacher_settings: dict[str, Any]
    student_settings: dict[str, Any]
    minutes: float          # the teacher's training minutes
    student_minutes: float  # the student's
    words: str              # for the table's title


QUICKSTART_SCENES: dict[str, QuickstartScenes] = {
    "shapes": QuickstartScenes("synthetic", QUICKSTART_SETTINGS, QUICKSTART_STUDENT_SETTINGS,
                               DEFAULT_MINUTES, DEFAULT_STUDENT_MINUTES, "synthetic shapes"),
    "camouflage": QuickstartScenes("camouflage", CAMOUFLAGE_SETTINGS, CAMOUFLAGE_STUDENT_SETTINGS,
                                   CAMOUFLAGE_MINUTES, CAMOUFLAGE_STUDENT_MINUTES, "camouflage scenes"),
}
DEFAULT_SCENES = "shapes"


def quickstart_scenes(scenes: str) -> QuickstartScenes:
    if scenes not in QUICKSTART_SCENES:
        raise ConfigError(f"unknown quickstart scenes {scenes!r}; choose one of {sorted(QUICKSTART_SCENES)}")
    return QUICKSTART_SCENES[scenes]


def quickstart_config(minutes: float, seed: int = 0, train_images: int = 0, eval_images: int = 0,
                      scenes: str = DEFAULT_SCENES, **overrides: Any) -> SPOTConfig:
    """The teacher's configuration: the preset of `scenes` (`QUICKSTART_SCENES`) with its
    quickstart settings, trained for `minutes` of wall time."""
    kind = quickstart_scenes(scenes)
    settings = dict(kind.teacher_settings, seed=seed, max_minutes=minutes, train_images=train_images,
                    eval_images=eval_images)
    return get_preset(kind.preset, **{**settings, **overrides})


# ----------------------------------------------------------------------------------------------
def save_teacher_student_figure(path: Path, teacher_checkpoint: Path, student_checkpoint: Path, eval_set,
                                count: int = 6, seed: int = 0) -> Path:
    """Ground truth and the four kinds of masks for the first `count` evaluation images, written
    by `viz.save_mask_figure`; each model draws its slot noise from `seed`."""
    from spot_tutorial.io.checkpoint_file import load_model
    from spot_tutorial.viz.masks import figure_images, save_mask_figure

    images, masks = figure_images(eval_set, count)
    with torch.no_grad():
        for name, checkpoint in (("teacher", teacher_checkpoint), ("student", student_checkpoint)):
            torch.manual_seed(seed)
            output = load_model(checkpoint)(images)  # eval mode, the config's eval orders
            masks[f"{name} slot"] = output.slot_masks
            masks[f"{name} decoder"] = output.decoder_masks
    return save_mask_figure(path, images, masks, max_images=count, dpi=100)


def describe_orders(spec) -> str:
    """Which patch orders the decoder masks were averaged over, in words (for the table)."""
    if spec == "all":
        return "all 9 patch orders averaged"
    if spec == "standard":
        return "raster order only"
    if spec == "random":
        return "one random patch order per batch"
    return f"patch orders {list(spec)} averaged"


def stage_summary(result: TrainResult, seconds: float) -> dict[str, Any]:
    return {"steps": result.steps, "train_seconds": round(result.train_seconds, 1),
            "wall_seconds": round(seconds, 1), "images_per_second": round(result.images_per_second, 1),
            "stopped_by": result.stopped_by, "checkpoint": str(result.last_checkpoint),
            "metrics": result.final_metrics}


# The paper's findings that one quickstart run can check, on mBO^i: (id, claim, better, worse).
# F1 (random orders beat raster) and F4's AR-versus-MLP part need other models: benchmarks/ablation.py.
FINDINGS = (
    ("F2", "the teacher's decoder masks beat its slot masks", "teacher decoder masks", "teacher slot masks"),
    ("F3", "the student's slot masks beat the teacher's", "student slot masks", "teacher slot masks"),
)


def quickstart_findings(rows: dict[str, dict[str, float]], baseline: str,
                        metric: str = "mbo_i") -> list[dict[str, Any]]:
    """Whether this run shows each finding of `FINDINGS`, and F4's second half (every set of masks
    beats the fixed grid): [{"finding", "claim", "held", "values"}], from the report's rows."""
    findings = [{"finding": name, "claim": claim, "held": rows[better][metric] > rows[worse][metric],
                 "values": {better: rows[better][metric], worse: rows[worse][metric]}}
                for name, claim, better, worse in FINDINGS]
    models = [name for name in rows if name != baseline]
    worst = min(models, key=lambda name: rows[name][metric])
    findings.append({"finding": "F4", "claim": "every set of masks beats the fixed grid",
                     "held": rows[worst][metric] > rows[baseline][metric],
                     "values": {worst: rows[worst][metric], baseline: rows[baseline][metric]}})
    return findings


def finding_line(finding: dict[str, Any]) -> str:
    """``F2 held: the teacher's decoder masks beat its slot masks (mBO^i 52.3 vs 49.1)``."""
    first, second = finding["values"].values()
    verdict = "held" if finding["held"] else "did not hold"
    return f"{finding['finding']} {verdict}: {finding['claim']} (mBO^i {first:.1f} vs {second:.1f})"


def set_threads(threads: int | str, config: SPOTConfig, datasets: tuple | None,
                say: Callable[..., None]) -> dict[int, float]:
    """Set torch's CPU threads: `threads`, or for "auto" the faster of 1 and 2 (2 on a near-tie)
    with prerendered scenes on the CPU (`datasets`, timed here; returns the timings), otherwise 1."""
    timings: dict[int, float] = {}
    if threads == "auto" and datasets is not None:
        images = torch.stack([datasets[0][i]["image"] for i in range(config.batch_size)])
        threads, timings = fastest_thread_count(config, images)
        say(f"[quickstart] {threads} torch thread(s): a teacher step took "
            + ", ".join(f"{ms:.0f} ms with {n}" for n, ms in timings.items()))
    elif threads == "auto":
        threads = 1
    if threads > 0:
        torch.set_num_threads(threads)
    return timings


def check_quickstart_arguments(minutes: float, student_minutes: float, data_workers: int,
                               threads: int | str = 1) -> None:
    """Both stages are time-budgeted, so each needs minutes > 0 (0 would mean no budget at all)."""
    for name, value in (("minutes", minutes), ("student minutes", student_minutes)):
        if not value > 0:
            raise ConfigError(f"the quickstart needs {name} > 0 (each stage trains for a wall-time "
                             f"budget), got {value}; the defaults are {DEFAULT_MINUTES:g} and "
                             f"{DEFAULT_STUDENT_MINUTES:g} on shapes, {CAMOUFLAGE_MINUTES:g} and "
                             f"{CAMOUFLAGE_STUDENT_MINUTES:g} on camouflage")
    if not (isinstance(data_workers, int) and data_workers >= 0):
        raise ConfigError(f"data_workers must be an integer >= 0 (0 renders the images in the training "
                         f"process), got {data_workers!r}")
    if threads != "auto" and not (isinstance(threads, int) and threads >= 0):
        raise ConfigError(f"threads must be 'auto' or an integer >= 0 (0: PyTorch's default), "
                          f"got {threads!r}")


def run_quickstart(output_dir: str | Path = DEFAULT_OUTPUT_DIR, minutes: float | None = None,
                   student_minutes: float | None = None, seed: int = 0, train_images: int = 0,
                   eval_images: int = 0, device: str = "cpu", threads: int | str = "auto",
                   data_workers: int | None = None, progress: bool = True, verbose: bool = True,
                   prerender: bool = True, scenes: str = DEFAULT_SCENES,
                   **config_overrides: Any) -> QuickstartResult:
    """Teacher, then student, then the comparison; returns (and writes) the report.

    `minutes`: training wall time of the teacher (default: the scenes' own, `QUICKSTART_SCENES`:
    6 on shapes, 4.5 on camouflage); `student_minutes`: of the student (default: the scenes' own,
    2.5 and 3.8, in proportion when `minutes` is given). `prerender` (default): render the
    training scenes once, before training (`data.RenderedScenes`, in two processes: about 5 s for
    shapes, 25 s for camouflage, and 120 MB), so that no
    data-loading process re-renders them every epoch and the model can use the freed core;
    ``prerender=False`` renders them in `data_workers` processes (default `default_data_workers()`:
    1 on a machine with two or more cores). `threads`: torch CPU threads, or "auto": with
    prerendered scenes on the CPU, the faster of 1 and 2 on this machine, 2 on a near-tie
    (`fastest_thread_count`), otherwise 1; 0 keeps PyTorch's default.
    `scenes`: "shapes" (flat-coloured shapes, the pixel encoder `tiny`; the default) or
    "camouflage" (textured scenes that colour cannot segment, the project's self-supervised ViT
    `tiny-dino`, its features computed once for both stages). `config_overrides`: any SPOTConfig
    field, e.g. ``num_slots=6``.
    """
    started = time.perf_counter()
    kind = quickstart_scenes(scenes)
    minutes = kind.minutes if minutes is None else minutes
    student_minutes = default_student_minutes(minutes, scenes) if student_minutes is None else student_minutes
    workers_asked = data_workers
    data_workers = default_data_workers() if data_workers is None else data_workers
    check_quickstart_arguments(minutes, student_minutes, data_workers, threads)
    if prerender and workers_asked:
        raise ConfigError(f"data_workers={workers_asked} renders scenes every epoch, but the scenes are "
                          "prerendered (the default): pass prerender=False (--no-prerender) to use data "
                          "workers")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    config_overrides.setdefault("num_workers", 0 if prerender else data_workers)
    teacher_config = quickstart_config(minutes, seed, train_images, eval_images, scenes, **config_overrides)
    scene_words = kind.words
    datasets = None
    if prerender:  # the same scenes, rendered once; both stages read them
        train_set, eval_set = build_datasets(teacher_config)
        # a second rendering process pays off from about 2 s of rendering
        workers = min(2, available_cpus()) if len(train_set) >= 2000 else 1
        datasets = (RenderedScenes(train_set, workers=workers), eval_set)
    say = print if verbose else (lambda *args, **kwargs: None)
    thread_timings = set_threads(threads, teacher_config, datasets if device == "cpu" else None, say)

    say(f"[quickstart] stage 1: training the teacher for {minutes:g} min on {scene_words} ...")
    stage_start = time.perf_counter()
    teacher_trainer = Trainer(teacher_config, stage=1, output_dir=output_dir / "teacher", device=device,
                              overwrite=True, progress=progress, datasets=datasets)
    teacher = teacher_trainer.fit()
    teacher_seconds = time.perf_counter() - stage_start

    say(f"[quickstart] stage 2: self-training the student for {student_minutes:g} min ...")
    stage_start = time.perf_counter()
    student_cfg = student_config(teacher_config).replace(max_minutes=student_minutes,
                                                        **kind.student_settings)
    if datasets is not None:  # the teacher's cached features, if any: the same frozen encoder reads them
        datasets = (teacher_trainer.train_set, eval_set)
    student = Trainer(student_cfg, stage=2, output_dir=output_dir / "student",
                      teacher=teacher.last_checkpoint, device=device, overwrite=True, progress=progress,
                      datasets=datasets).fit()
    student_seconds = time.perf_counter() - stage_start

    eval_set = teacher_trainer.eval_set
    side = math.isqrt(teacher_config.num_slots)
    baseline_name = f"grid {side}x{side} (baseline)"
    rows = {
        baseline_name: grid_baseline(eval_set, teacher_config.num_slots),
        "teacher slot masks": teacher.final_metrics["slot"],
        "teacher decoder masks": teacher.final_metrics["decoder"],
        "student slot masks": student.final_metrics["slot"],
        "student decoder masks": student.final_metrics["decoder"],
    }
    orders = describe_orders(teacher_config.eval_orders)
    table = results_table(rows, title=f"Quickstart: {scene_words}, {rows[baseline_name]['num_images']} "
                                      f"held-out images (x100; judge by mBO^i)\ndecoder masks: {orders}")
    figure_path = save_teacher_student_figure(output_dir / "masks.png", teacher.last_checkpoint,
                                              student.last_checkpoint, eval_set, seed=seed)
    report = {
        "results": rows,
        "decoder_orders": orders,
        "scenes": scenes,
        "teacher": stage_summary(teacher, teacher_seconds),
        "student": stage_summary(student, student_seconds),
        "findings": quickstart_findings(rows, baseline_name),
        "total_seconds": round(time.perf_counter() - started, 1),
        "config": {"teacher": teacher_config.to_dict(), "student": student_cfg.to_dict()},
        "environment": {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": device,
                        "thread_step_ms": {str(n): round(ms, 1) for n, ms in thread_timings.items()},
                        "data_workers": teacher_config.num_workers, "prerendered": prerender,
                        "cpus": available_cpus(),
                        "python": platform.python_version(), "machine": platform.machine()},
        "table": table,
    }
    report_path = output_dir / "report.json"
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    say("\n" + table + "\n" + "\n".join(finding_line(finding) for finding in report["findings"]))
    say(f"\nteacher: {teacher.steps} steps, {teacher.images_per_second:.0f} images/s; "
        f"student: {student.steps} steps, {student.images_per_second:.0f} images/s; "
        f"total {report['total_seconds']:.0f} s")
    say(f"report: {report_path}\nfigure: {figure_path}")
    return QuickstartResult(report, table, report_path, figure_path)
