"""A training run's files and exact resumption: what last.pt and best.pt hold beyond the model.

`spot_tutorial.io.checkpoint_file` is the file format of a *model* (weights + configuration, written
atomically, loaded safely; also the authors' checkpoints). This module is the *run* on top of
it: a run folder holds::

    last.pt      the model, the optimiser, the fp16 gradient scaler, the run's `Progress` (step,
                 epoch, batch within the epoch, schedule length), every process's random states,
                 the stage and its teacher: everything needed to continue bit for bit after a
                 crash or a kill
    best.pt      with model selection only: the model that scored best on held-out training
                 images (`check_selection`), with its scores
    config.json, log.jsonl, eval.csv, summary.json, tensorboard/, figures/   (`training.logs`)

The position in the data is part of `Progress`: a resumed run restarts the same epoch order
(`distributed.EpochSampler`) after the batches already trained on.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from spot_tutorial.config import RUNTIME_FIELDS, SPOTConfig
from spot_tutorial.errors import ConfigError
from spot_tutorial.io.checkpoint_file import checkpoint_config, config_payload, load_state_strict, safe_load
from spot_tutorial.runtime import restore_rng_state

LAST, BEST = "last.pt", "best.pt"
RUN_FILES = (LAST, BEST, "config.json", "log.jsonl", "eval.csv", "summary.json", "tensorboard", "figures")
# What may change when a run is resumed: the runtime settings (how long and how it goes), never
# the architecture or the training math (see spot_tutorial.config).
RESUMABLE_CHANGES = RUNTIME_FIELDS
SELECTION_METRICS = ("fg_ari", "mbo_i", "mbo_c", "miou")


@dataclass
class Progress:
    """Where the run is; saved in every checkpoint."""
    step: int = 0               # optimisation steps done
    epoch: int = 0              # current epoch
    batch_in_epoch: int = 0     # batches of the current epoch already trained on
    total_steps: float = 0.0    # schedule length T (may be fit to a time budget)
    train_seconds: float = 0.0  # wall time spent in training steps so far
    best_score: float = -1.0    # best value of the selection metric so far
    best_step: int = -1
    last_eval_step: int = -1


def checkpoint_due(step: int, every: int) -> bool:
    """A resumable checkpoint every `every` steps (0: only at the end of each epoch)."""
    return bool(every) and step % every == 0


def prepare_output_dir(output_dir: Path, resume: bool, overwrite: bool, is_main: bool,
                       barrier: Callable[[], None]) -> None:
    """A fresh run may not silently replace another: it needs `overwrite`, and then only the
    previous run's files are removed (by the main process; `barrier` makes the others wait)."""
    if resume or not (output_dir / LAST).exists():
        return
    if not overwrite:
        raise FileExistsError(f"{output_dir} already holds a run ({LAST}); pass resume=True "
                              "(--resume) to continue it, or choose another output folder")
    if is_main:
        clear_previous_run(output_dir)
    barrier()


def clear_previous_run(output_dir: Path) -> None:
    """Remove the files of a previous run from `output_dir` (and nothing else)."""
    for name in RUN_FILES:
        path = output_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def run_state(stage: int, config: SPOTConfig, model: nn.Module, optimizer: torch.optim.Optimizer,
              progress: Progress, rng_states: list[dict[str, Any]], teacher: str | None,
              init_from: str | None, scaler: "torch.amp.GradScaler | None" = None) -> dict[str, Any]:
    """The payload of last.pt: everything a resumed run needs (with fp16, the loss scale too)."""
    return {**config_payload(config), "stage": stage, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "progress": asdict(progress),
            "scaler": {} if scaler is None else scaler.state_dict(),  # {} unless fp16
            "rng": rng_states, "teacher": teacher, "init_from": init_from}


def check_resumable(payload: dict[str, Any], config: SPOTConfig, stage: int, path: Path) -> None:
    """A run resumes with its architecture, its training settings and its stage; only the
    runtime settings (`RUNTIME_FIELDS`) may differ."""
    saved = checkpoint_config(payload, str(path)).to_dict()
    ours = config.to_dict()
    changed = [f"{k}: checkpoint {saved[k]!r} vs now {ours[k]!r}" for k in ours
               if saved[k] != ours[k] and k not in RUNTIME_FIELDS]
    if changed:
        raise ConfigError(f"cannot resume {path} with a different configuration:\n  " + "\n  ".join(changed)
                          + "\nresume with the same preset and overrides (see config.json there)")
    if payload.get("stage") != stage:
        raise ConfigError(f"{path} is a stage-{payload.get('stage')} run; resume it with --stage "
                          f"{payload.get('stage')}")


def restore_run_state(payload: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
                      source: str, scaler: "torch.amp.GradScaler | None" = None) -> Progress:
    """Load the weights, the optimiser and (fp16) the gradient scaler of a last.pt; returns its `Progress`.

    The scaler's state (loss scale, steps since it last grew) continues where it was; a
    checkpoint without one (fp32 or bf16 runs, files written before it was saved) leaves the
    scaler at its initial scale.
    """
    load_state_strict(model, payload["model"], source=source)
    optimizer.load_state_dict(payload["optimizer"])
    if scaler is not None and scaler.is_enabled() and payload.get("scaler"):
        scaler.load_state_dict(payload["scaler"])
    return Progress(**payload["progress"])


# ----------------------------------------------------------------------------------------------
# best.pt: model selection on held-out training images, only when asked for
def check_selection(select_by: str | None, config: SPOTConfig) -> str | None:
    """The model-selection metric, or None: selection needs held-out training images."""
    if select_by is None and config.selection_images > 0:
        select_by = "decoder/mbo_i"
    if select_by is None:
        return None
    masks, _, metric = select_by.partition("/")
    if masks not in ("slot", "decoder") or metric not in SELECTION_METRICS:
        raise ConfigError(f"select_by={select_by!r}; use '<slot|decoder>/<fg_ari|mbo_i|mbo_c|miou>'")
    if config.selection_images <= 0:
        raise ConfigError(f"select_by={select_by!r} needs held-out training images to choose on: pass "
                          "selection_images=N (--selection-images N). Choosing on the evaluation split "
                          "would select on the numbers that are reported; the paper reports the last "
                          "checkpoint (last.pt).")
    return select_by


def selection_improves(results: dict[str, dict[str, float]], select_by: str, progress: Progress) -> bool:
    """Whether `results` beat the best score so far on `select_by` ('<masks>/<metric>'); the first
    of equal scores is kept. Records the new best in `progress`."""
    masks, _, metric = select_by.partition("/")
    score = results[masks][metric]
    if math.isnan(score) or score <= progress.best_score:
        return False
    progress.best_score, progress.best_step = score, progress.step
    return True


def best_state(stage: int, config: SPOTConfig, model: nn.Module, step: int,
               results: dict[str, dict[str, float]], select_by: str, selected_on: str) -> dict[str, Any]:
    """The payload of best.pt: the selected model and the scores that chose it."""
    return {**config_payload(config), "stage": stage, "model": model.state_dict(), "step": step,
            "metrics": results, "select_by": select_by, "selected_on": selected_on}


def resume_run(path: Path, config: SPOTConfig, stage: int, model: nn.Module, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler | None, rank: int, world_size: int,
               verbose: bool) -> Progress | None:
    """Load last.pt at `path` into the model, optimiser, scaler and this process's random state.

    Returns the run's `Progress`, or None when there is no checkpoint (a new run starts). A run
    written by another number of processes continues, re-seeded, but not bit for bit.
    """
    if not path.exists():
        if verbose:
            print(f"[spot] no checkpoint at {path}; starting a new run")
        return None
    payload = safe_load(path, map_location="cpu")
    check_resumable(payload, config, stage, path)
    progress = restore_run_state(payload, model, optimizer, str(path), scaler)
    rng_states = payload["rng"]
    if len(rng_states) == world_size:
        restore_rng_state(rng_states[rank])
    elif verbose:
        print(f"[spot] {path} was written by {len(rng_states)} process(es), now {world_size}: "
              "random states are re-seeded, so the run continues but not bit for bit")
    if verbose:
        print(f"[spot] resumed {path} at step {progress.step} (epoch {progress.epoch}, "
              f"batch {progress.batch_in_epoch})")
    return progress
