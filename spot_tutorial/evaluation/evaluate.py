"""Evaluation (paper, section 4 "Evaluation"): metrics of slot masks and decoder masks on a dataset,
and what `spot evaluate` does with a checkpoint.

Both kinds of masks are scored: the slot-attention masks (what the encoder sees) and the
decoder's cross-attention masks (what SPOT's teacher hands to self-training). With
`orders="all"` the decoder runs all nine patch orders and the masks are averaged, as
in the paper's final numbers.

Evaluation runs in fp32 by default, as the authors evaluate; bf16 autocast is an opt-in
(`precision="bf16"`, `spot evaluate --bf16`): faster on a GPU, and it moves a small share of
the argmax labels. The precision policy is `runtime.evaluation_precision` and
`runtime.evaluation_autocast`.

Beside the paper's protocol, COCO can be scored against its panoptic ground truth (P-ARI and
class-agnostic PQ, the protocol of FT-DINOSAUR, ICLR 2025), and at another ground-truth mask
size (320 in the paper, 224 in later papers); results.json records the protocol of each run.
"""

from __future__ import annotations

import csv
import json
import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn
from tqdm.auto import tqdm

from spot_tutorial import viz
from spot_tutorial.config import OrderSpec
from spot_tutorial.errors import ConfigError, DatasetError, InputError
from spot_tutorial.evaluation.metrics import SegmentationMetrics
from spot_tutorial.model.spot import SPOT, refuse_nan
from spot_tutorial.runtime import (
    data_workers,
    evaluation_autocast,
    evaluation_precision,
    isolated_rng,
    resolve_device,
)

MASK_KINDS = ("slot", "decoder")
TARGET_KEYS = ("instance_mask", "class_mask", "ignore_mask", "panoptic_mask", "panoptic_crowd")


@torch.no_grad()
def predict(model: SPOT, images: torch.Tensor, orders: OrderSpec = "standard",
            precision: str = "fp32"):
    """One evaluation forward pass of normalised images [B, 3, H, W] -> SPOTOutput.

    fp32 is a plain forward pass; bf16 runs it under bf16 autocast on the images' device.
    """
    with evaluation_autocast(images.device, precision):
        return model(images, orders=orders)


@torch.no_grad()
def evaluate_model(model: SPOT, loader: Iterable[dict], device: str | torch.device = "cpu",
                   orders: OrderSpec = "standard", max_batches: int | None = None,
                   progress: bool = True, amp: bool = False,
                   precision: str = "fp32", seed: int | None = None) -> dict[str, dict[str, float]]:
    """FG-ARI, mBO^i, mBO^c, mIoU (x100) of slot masks and decoder masks over `loader`.

    The slots' random start (and random decoder orders) draw from torch's generator: with `seed`
    they start from it, the caller's generators left as they were (`runtime.isolated_rng`), so the
    same model and images give the same numbers on every call; None (the default, used during
    training) draws from the caller's generator.

    Batches are dicts with "image" and "instance_mask" (+ optional "class_mask", "ignore_mask",
    and "panoptic_mask" / "panoptic_crowd" for P-ARI and PQ), as the datasets in
    `spot_tutorial.data` return them. Runs in fp32 (the authors' protocol) unless
    `precision="bf16"` (bf16 autocast on CUDA or the CPU) or `amp`, the older switch: bf16
    autocast on a CUDA GPU with native bf16 only (`runtime.evaluation_precision`).
    """
    device = torch.device(device)
    precision = evaluation_precision(device, precision, amp)
    if seed is not None:
        with isolated_rng(device, seed):
            return evaluate_model(model, loader, device, orders, max_batches, progress,
                                  precision=precision)
    was_training = model.training
    model.eval()
    try:
        meters, images_seen = score_batches(model, loader, device, orders, max_batches, progress, precision)
    finally:
        model.train(was_training)  # the caller's mode, also when a batch is refused
    if images_seen == 0:
        raise InputError("the evaluation loader gave no images: an evaluation over zero images has "
                         "no result; check the dataset (its folder, --max-images) and max_batches")
    return {kind: meter.compute() for kind, meter in meters.items()}


def score_batches(model: SPOT, loader: Iterable[dict], device: torch.device, orders: OrderSpec,
                  max_batches: int | None, progress: bool,
                  precision: str) -> tuple[dict[str, SegmentationMetrics], int]:
    """The metrics of slot and decoder masks accumulated over the loader, and the images seen."""
    meters = {kind: SegmentationMetrics() for kind in MASK_KINDS}
    total = len(loader) if hasattr(loader, "__len__") else None
    if max_batches is not None and total is not None:
        total = min(total, max_batches)
    bar = tqdm(loader, total=total, desc=f"evaluate ({orders})", disable=not progress, leave=False)
    images_seen = 0
    for index, batch in enumerate(bar):
        if max_batches is not None and index >= max_batches:
            break
        check_evaluation_batch(batch, index)
        images_seen += batch["image"].shape[0]
        output = predict(model, batch["image"].to(device, non_blocking=True), orders, precision)
        targets = {name: batch[name].to(device) if name in batch else None for name in TARGET_KEYS}
        for kind, masks in (("slot", output.slot_masks), ("decoder", output.decoder_masks)):
            meters[kind].update(masks.float(), targets["instance_mask"], targets["class_mask"],
                                targets["ignore_mask"], targets["panoptic_mask"], targets["panoptic_crowd"])
    return meters, images_seen


def check_evaluation_batch(batch: Any, index: int) -> None:
    """A batch is a dict with a float "image" [B, 3, H, W] and an "instance_mask" [B, H, W]."""
    if not isinstance(batch, dict) or "image" not in batch or "instance_mask" not in batch:
        got = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise InputError(f"evaluation batch {index} must be a dict with 'image' [B, 3, H, W] and "
                         f"'instance_mask' [B, H, W] (as the datasets of spot_tutorial.data give), "
                         f"got {got}")
    refuse_nan(batch["image"], f"the images of evaluation batch {index}")


METRIC_NAMES = {"fg_ari": "FG-ARI", "mbo_i": "mBO^i", "mbo_c": "mBO^c", "miou": "mIoU", "p_ari": "P-ARI",
                "pq": "PQ"}
PANOPTIC_METRICS = ("p_ari", "pq")


def results_table(results: dict[str, dict[str, float]], title: str = "") -> str:
    """A plain-text table: one row per mask kind (or per model), one column per metric
    (P-ARI and PQ only when some row has them)."""
    columns = [c for c in METRIC_NAMES if c not in PANOPTIC_METRICS
               or any(c in metrics for metrics in results.values())]
    lines = [title] if title else []
    lines.append(f"{'masks':<22}" + "".join(f"{METRIC_NAMES[c]:>9}" for c in columns))
    for name, metrics in results.items():
        lines.append(f"{name:<22}" + "".join(f"{metrics.get(c, float('nan')):>9.1f}" for c in columns))
    return "\n".join(lines)


def write_results(results: dict[str, dict[str, float]], output_dir: str | os.PathLike,
                  info: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """results.json (numbers + run info) and results.csv (one row per mask kind)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = output_dir / "results.json", output_dir / "results.csv"
    json_path.write_text(json.dumps({"results": results, **(info or {})}, indent=2, default=str))
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        columns = ["fg_ari", "mbo_i", "mbo_c", "miou", "num_images"]
        columns += [c for c in PANOPTIC_METRICS if any(c in metrics for metrics in results.values())]
        writer.writerow(["masks", *columns])
        for kind, metrics in results.items():
            writer.writerow([kind] + [metrics.get(k) for k in columns])
    return json_path, csv_path


def load_any_checkpoint(path: str | os.PathLike, encoder: str | nn.Module = "vit_base_patch16_224.dino",
                        config=None, num_slots: int | None = None) -> SPOT:
    """Our checkpoint (format tag) or one of the authors' (anything else with slot_attn.*)."""
    return load_checkpoint_for_evaluation(path, encoder, config, num_slots)[0]


def load_checkpoint_for_evaluation(path: str | os.PathLike,
                                   encoder: str | nn.Module = "vit_base_patch16_224.dino", config=None,
                                   num_slots: int | None = None) -> tuple[SPOT, dict[str, Any]]:
    """(model, shape info): the info says where the slot count came from and which model
    shapes were assumed because the file does not store them (authors' checkpoints).

    `config` supplies what an authors' file does not store (default: the COCO preset);
    `num_slots` overrides the slot count where the weights allow it (see `load_model`).
    """
    from spot_tutorial.io.checkpoint_file import (
        FORMAT,
        checkpoint_config,
        checkpoint_dict,
        load_model,
        safe_load,
    )
    from spot_tutorial.io.official import load_official_checkpoint, official_assumptions

    payload = checkpoint_dict(safe_load(path), path)
    if payload.get("format") == FORMAT:
        model = load_model(path, num_slots=num_slots)
        stored = checkpoint_config(payload, str(path)).num_slots
        source = ("checkpoint config" if model.config.num_slots == stored
                  else f"--num-slots (checkpoint config: {stored})")
        return model, {"num_slots": model.config.num_slots, "num_slots_from": source, "assumed": {}}
    model = load_official_checkpoint(payload, encoder, config, num_slots=num_slots)
    state = payload.get("model", payload) if isinstance(payload, dict) else payload
    assumed = official_assumptions({k.removeprefix("module."): v for k, v in state.items()}, model.config)
    if "num_slots" not in assumed:
        source = "checkpoint weights (one learned vector per slot)"
    else:
        source = ("--num-slots" if num_slots
                  else f"preset {model.config.dataset!r} (the weights do not store it)")
    return model, {"num_slots": model.config.num_slots, "num_slots_from": source, "assumed": assumed}


def describe_shapes(info: dict[str, Any]) -> list[str]:
    """Lines to print: the slot count used and where it came from, and any assumed shapes."""
    lines = [f"num_slots = {info['num_slots']} (from {info['num_slots_from']})"]
    assumed = {k: v for k, v in info["assumed"].items() if k != "num_slots"}
    if assumed:
        lines.append("not stored in the checkpoint, assumed: "
                     + ", ".join(f"{name} = {value}" for name, value in assumed.items())
                     + " (change them with a config passed to load_official_checkpoint)")
    return lines


# ------------------------------------------------------------------------------------------
@dataclass
class EvaluationReport:
    results: dict[str, dict[str, float]]  # {"slot": {...}, "decoder": {...}}
    table: str
    json_path: Path
    csv_path: Path
    figure_path: Path | None
    info: dict[str, Any] = field(default_factory=dict)  # what results.json records besides the numbers
    notes: list[str] = field(default_factory=list)      # lines worth printing with the table


def check_evaluation_counts(batch_size: int, max_images: int, num_workers: int | None) -> None:
    """Counts that would give a DataLoader traceback or an evaluation over no images."""
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not (isinstance(max_images, int) and max_images >= 0):
        raise ConfigError(f"max_images must be 0 (every image) or a positive count, got {max_images!r}")
    if num_workers is not None and not (isinstance(num_workers, int) and num_workers >= 0):
        raise ConfigError(f"num_workers must be 0 (load in this process) or more, got {num_workers!r}")


def run_evaluation(checkpoint: str | os.PathLike, dataset: str | None = None, data_path: str | None = None,
                   orders: OrderSpec = "all", batch_size: int = 32, device: str = "auto",
                   num_workers: int | None = None, output_dir: str | os.PathLike = "outputs/evaluate",
                   encoder: str = "vit_base_patch16_224.dino", max_images: int = 0,
                   figure_images: int = 8, progress: bool = True, num_slots: int | None = None,
                   bf16: bool = False, mask_path: str | os.PathLike | None = None,
                   mask_size: int | None = None, panoptic: bool = False,
                   seed: int | None = 0) -> EvaluationReport:
    """What `spot evaluate` does: load a checkpoint (ours or the authors'), score a dataset,
    print/write the table (JSON + CSV) and optionally a figure of predicted masks.

    An authors' checkpoint takes what its weights do not store from the dataset's preset
    (e.g. 7 slots for COCO, 6 for VOC) unless `num_slots` is given. fp32 unless `bf16`.
    `num_workers` defaults to 4, at most one per available CPU core (`runtime.data_workers`);
    `max_images` 0 scores every image.
    `mask_size` overrides the preset's ground-truth size (COCO: 320, the paper's; 224 for
    later papers); `panoptic` adds P-ARI and PQ against COCO's panoptic ground truth;
    `mask_path` is the mask folder of ``dataset='folder'``. results.json gets a "protocol" block.
    `seed` (default 0, recorded in results.json) fixes the slots' random start, so a run repeats
    its numbers exactly; other seeds sample the same distribution (None: fresh randomness).
    """
    from torch.utils.data import DataLoader, Subset

    from spot_tutorial.data import build_datasets
    from spot_tutorial.recipes import PRESETS, get_preset

    device = resolve_device(device)
    precision = "bf16" if bf16 else "fp32"
    evaluation_autocast(device, precision)  # refuses an unsupported device before any work
    check_evaluation_counts(batch_size, max_images, num_workers)
    num_workers = data_workers(4 if num_workers is None else num_workers)
    preset = dataset if dataset in PRESETS else "coco"  # an image folder: the COCO recipe
    model, shapes = load_checkpoint_for_evaluation(checkpoint, encoder, get_preset(preset), num_slots)
    model = model.to(device)
    config = model.config.replace(dataset=dataset) if dataset else model.config
    if mask_size is not None:
        config = config.replace(gt_mask_size=mask_size)
    _, eval_set = build_datasets(config, data_path, mask_path=mask_path, panoptic=panoptic)
    if "instance_mask" not in eval_set[0]:
        raise DatasetError(f"the images under {data_path} have no ground truth to score against: pass "
                           "--mask-path (instance-mask PNGs parallel to the images), or use `spot segment` "
                           "to only look at the masks")
    if max_images:
        eval_set = Subset(eval_set, range(min(max_images, len(eval_set))))
    if len(eval_set) == 0:
        raise DatasetError(f"no images to evaluate in {config.dataset} ({data_path}): an evaluation "
                           "over zero images has no result; check the data path and split")
    loader = DataLoader(eval_set, batch_size=batch_size, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    results = evaluate_model(model, loader, device, orders, progress=progress, precision=precision,
                             seed=seed)
    order_ids = "random" if orders == "random" else model.order_ids(orders)
    title = (f"{Path(checkpoint).name} on {config.dataset} ({len(eval_set)} images, orders: {orders}, "
             f"{precision})")
    table = results_table({f"{kind} masks": metrics for kind, metrics in results.items()}, title)
    info = {"checkpoint": str(checkpoint), "dataset": config.dataset, "data_path": data_path,
            "orders": orders, "order_ids": order_ids, "precision": precision,
            "num_slots": shapes["num_slots"], "num_slots_from": shapes["num_slots_from"],
            "assumed_shapes": shapes["assumed"], "num_images": len(eval_set), "seed": seed,
            "config": config.to_dict(),
            "protocol": evaluation_protocol(config, checkpoint, orders, order_ids, precision,
                                            shapes["num_slots"], panoptic)}
    json_path, csv_path = write_results(results, output_dir, info)
    figure_path = None
    if figure_images:
        figure_path = Path(output_dir) / "masks.png"
        with nullcontext() if seed is None else isolated_rng(device, seed):
            save_evaluation_figure(model, eval_set, figure_images, orders, device, figure_path)
    notes = describe_shapes(shapes) + [f"precision: {precision}; decoder orders: {order_ids}; seed: {seed}"]
    return EvaluationReport(results, table, json_path, csv_path, figure_path, info, notes)


# How each dataset's ground truth treats background and overlapping annotations.
GROUND_TRUTH_RULES = {
    "coco": "instances_val2017.json, crowd annotations included; pixels of two or more annotations ignored",
    "voc": "SegmentationObject / SegmentationClass PNGs; border value 255 becomes background",
    "movi_c": "per-object mask PNGs; no overlaps", "movi_e": "per-object mask PNGs; no overlaps",
    "synthetic": "rendered instance masks; no overlaps",
    "folder": "instance-mask PNGs of the mask folder (0 = background); no overlaps, no classes",
}


def evaluation_protocol(config, checkpoint, orders: OrderSpec, order_ids, precision: str,
                        num_slots: int, panoptic: bool) -> dict[str, Any]:
    """The choices behind the numbers of one evaluation, for results.json."""
    protocol = {
        "mask_size": config.gt_mask_size,
        "image_size": config.image_size,
        "orders": orders if isinstance(orders, str) else list(orders),
        "order_ids": order_ids,
        "masks": {"slot": "slot-attention masks", "decoder": "decoder cross-attention masks"},
        "prediction": "soft masks on the encoder's token grid, bilinearly upsampled to the mask size, "
                      "argmax over slots",
        "background": "FG-ARI leaves ground-truth background out; mBO and mIoU do not score it as an object "
                      "but keep it in the predicted masks' areas",
        "ground_truth": GROUND_TRUTH_RULES.get(config.dataset, config.dataset),
        "ignored_pixels": "left out of every metric",
        "num_slots": num_slots,
        "precision": precision,
        "checkpoint": str(checkpoint),
    }
    if panoptic:
        protocol["panoptic"] = (
            "panoptic_val2017: every thing and stuff segment; unlabelled pixels (id 0) left out. P-ARI: "
            "ARI over every labelled pixel, mean over images. PQ: class-agnostic, prediction-segment match "
            "at IoU > 0.5 (void pixels removed from predictions), crowd segments neither matched nor missed, "
            "unmatched predictions more than half void or crowd not counted as false positives; TP, FP, FN "
            "and IoUs summed over the data set")
    return protocol


@torch.no_grad()
def save_evaluation_figure(model: SPOT, dataset, count: int, orders: OrderSpec, device: torch.device,
                           path: Path) -> None:
    """Ground truth, slot masks and decoder masks over the first `count` images, written by
    `viz.save_mask_figure` (in fp32; slot noise from torch's global generator)."""
    images, masks = viz.figure_images(dataset, count)
    output = model.eval()(images.to(device), orders=orders)
    masks.update({"slot masks": output.slot_masks.float().cpu(),
                  "decoder masks": output.decoder_masks.float().cpu()})
    viz.save_mask_figure(path, images, masks, max_images=count, dpi=100)
