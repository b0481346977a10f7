"""What a training run writes for people to read: logs, learning curves, a progress bar::

    config.json     the run's configuration
    log.jsonl       one JSON record a line: "train" (loss, mse, ce, lr, grad_norm, images/s),
                    "eval" (metrics on the evaluation split), "selection" (on held-out images)
    eval.csv        the evaluation records as a table (one row per step and kind of masks)
    tensorboard/    the same numbers as TensorBoard scalars
    summary.json    the run's `TrainResult`
    figures/        masks of the first evaluation images at each evaluation (`viz.save_mask_figure`)

Only the main process writes (`RunLog(..., enabled=False)` elsewhere makes every call a no-op).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

METRIC_KEYS = ("fg_ari", "mbo_i", "mbo_c", "miou")
CSV_COLUMNS = ("step", "epoch", "masks", *METRIC_KEYS, "num_images")


class RunLog:
    """The log files of one run folder: JSONL, CSV and TensorBoard."""

    def __init__(self, output_dir: Path, enabled: bool = True):
        self.output_dir, self.enabled = Path(output_dir), enabled
        self.writer = None  # the TensorBoard SummaryWriter, once opened

    def open(self, config_json: str, step: int) -> None:
        """Write config.json and open TensorBoard (dropping events after `step` of a resumed run)."""
        if not self.enabled or self.writer is not None:
            return
        from torch.utils.tensorboard import SummaryWriter

        self.output_dir.mkdir(parents=True, exist_ok=True)
        (self.output_dir / "config.json").write_text(config_json + "\n")
        self.writer = SummaryWriter(str(self.output_dir / "tensorboard"), purge_step=step)

    def record(self, record: dict[str, Any]) -> None:
        """One line of log.jsonl; "train" records also go to TensorBoard."""
        if not self.enabled:
            return
        with open(self.output_dir / "log.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if record.get("kind") == "train":
            for key, value in record.items():
                if key not in ("kind", "step", "epoch"):
                    self.writer.add_scalar(f"train/{key}", value, record["step"])

    def train(self, step: int, epoch: int, values: dict[str, float]) -> None:
        self.record({"kind": "train", "step": step, "epoch": epoch, **values})

    def evaluation(self, kind: str, step: int, epoch: int, results: dict[str, dict[str, float]]) -> None:
        """Metrics of slot and decoder masks: kind "eval" (evaluation split, also in eval.csv) or
        "selection" (the held-out training images that choose best.pt)."""
        if not self.enabled:
            return
        self.record({"kind": kind, "step": step, "epoch": epoch, **results})
        if kind == "eval":
            self._append_csv(step, epoch, results)
        prefix = "eval" if kind == "eval" else kind
        for masks, metrics in results.items():
            for key in METRIC_KEYS:
                self.writer.add_scalar(f"{prefix}_{masks}/{key}", metrics[key], step)

    def _append_csv(self, step: int, epoch: int, results: dict[str, dict[str, float]]) -> None:
        csv_path = self.output_dir / "eval.csv"
        new_file = not csv_path.exists()
        with open(csv_path, "a", newline="") as handle:
            writer = csv.writer(handle)
            if new_file:
                writer.writerow(CSV_COLUMNS)
            for masks, metrics in results.items():
                writer.writerow([step, epoch, masks] + [metrics[k] for k in (*METRIC_KEYS, "num_images")])

    def figure_path(self, step: int) -> Path:
        path = self.output_dir / "figures" / f"step_{step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def summary(self, summary: dict[str, Any]) -> None:
        """summary.json, then close TensorBoard."""
        if not self.enabled:
            return
        (self.output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class ProgressBar:
    """A tqdm bar of optimisation steps with loss, lr and images/s (nothing when not enabled)."""

    def __init__(self, total: float, initial: int, description: str, enabled: bool = True):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=int(total), initial=initial, desc=description, dynamic_ncols=True)

    def show(self, values: dict[str, float], total: float) -> None:
        """New values; `total` may have changed (a time budget re-estimates it)."""
        if self.bar is None:
            return
        if self.bar.total != int(total):
            self.bar.total = int(total)
        self.bar.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{values['lr']:.2e}",
                             img_s=f"{values['images_per_s']:.0f}", refresh=False)

    def update(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
