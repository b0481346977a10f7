"""Training curves read from a run's log.jsonl: loss and evaluation metrics against steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spot_tutorial.viz.masks import PALETTE


@dataclass
class TrainingLog:
    """A run's log.jsonl, as the `Trainer` writes it (`spot_tutorial.training.logs`): the train records'
    values by step (`train[key]` is a list aligned with `train_steps`) and the periodic
    evaluations (`evaluations[masks][metric]`, aligned with `eval_steps`)."""

    train_steps: list[int]
    train: dict[str, list[float]]
    eval_steps: list[int]
    evaluations: dict[str, dict[str, list[float]]]


def read_training_log(run: str | Path) -> TrainingLog:
    """Read the log.jsonl of a run folder (or the file itself). A resumed run may log a step
    twice; the later record wins, as it belongs to the run that went on."""
    import json

    from spot_tutorial.errors import InputError

    path = Path(run)
    path = path / "log.jsonl" if path.is_dir() else path
    if not path.is_file():
        raise InputError(f"no training log at {path}: pass a run folder written by `spot train` "
                         "(it holds log.jsonl) or the path of a log.jsonl")
    train_records: dict[int, dict] = {}
    eval_records: dict[int, dict] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}, line {number}: not JSON ({error}); is this a log.jsonl of "
                             "`spot train`?") from error
        kind = record.get("kind")
        if kind == "train":
            train_records[record["step"]] = record
        elif kind == "eval":
            eval_records[record["step"]] = record
    if not train_records:
        raise InputError(f"{path} holds no training records (lines with \"kind\": \"train\")")
    train_steps = sorted(train_records)
    keys = [key for key in train_records[train_steps[-1]] if key not in ("kind", "step", "epoch")]
    train = {key: [train_records[step].get(key, float("nan")) for step in train_steps] for key in keys}
    eval_steps = sorted(eval_records)
    evaluations: dict[str, dict[str, list[float]]] = {}
    for step in eval_steps:
        for masks, metrics in eval_records[step].items():
            if isinstance(metrics, dict):
                for metric, value in metrics.items():
                    evaluations.setdefault(masks, {}).setdefault(metric, []).append(value)
    return TrainingLog(train_steps, train, eval_steps, evaluations)


def training_curves(runs: dict[str, str | Path | TrainingLog], metric: str = "mbo_i",
                    loss_key: str = "mse"):
    """Training curves of one or more runs (name -> run folder, log.jsonl or TrainingLog).

    Left: `loss_key` against the step ('mse': the reconstruction loss, the same quantity in both
    stages; 'loss' adds the weighted distillation term of stage 2). Right, when the runs
    evaluated during training: `metric` of the slot masks (solid) and decoder masks (dashed) at
    each evaluation. One colour per run."""
    import matplotlib.pyplot as plt

    from spot_tutorial.errors import InputError

    logs = {name: run if isinstance(run, TrainingLog) else read_training_log(run)
            for name, run in runs.items()}
    evaluated = any(log.eval_steps for log in logs.values())
    fig, axes = plt.subplots(1, 2 if evaluated else 1, figsize=(11 if evaluated else 6, 3.8), squeeze=False)
    loss_axis = axes[0, 0]
    for index, (name, log) in enumerate(logs.items()):
        colour = PALETTE[[3, 0, 1, 4, 5, 10][index % 6]]
        if loss_key not in log.train:
            raise InputError(f"run {name!r} logged no {loss_key!r}; "
                             f"choose loss_key among {sorted(log.train)}")
        loss_axis.plot(log.train_steps, log.train[loss_key], color=colour, label=name, linewidth=1.6)
        if not evaluated:
            continue
        for masks, style in (("slot", "-"), ("decoder", "--")):
            values = log.evaluations.get(masks, {}).get(metric)
            if values:
                axes[0, 1].plot(log.eval_steps, values, style, marker="o", markersize=4, color=colour,
                                label=f"{name}, {masks} masks", linewidth=1.6)
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel(f"training {loss_key}")
    loss_axis.set_yscale("log")
    loss_axis.legend(fontsize=9)
    loss_axis.grid(alpha=0.3)
    if evaluated:
        axes[0, 1].set_xlabel("step")
        axes[0, 1].set_ylabel(f"{metric} (x100), held-out images")
        axes[0, 1].legend(fontsize=9)
        axes[0, 1].grid(alpha=0.3)
    fig.tight_layout()
    return fig
