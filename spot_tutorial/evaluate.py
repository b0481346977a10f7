"""Evaluation (paper, section 4 "Evaluation"): metrics of slot masks and decoder masks on a dataset,
and `segment()` for images of any size.

Both kinds of masks are scored: the slot-attention masks (what the encoder sees) and the
decoder's cross-attention masks (what SPOT's teacher hands to self-training). With
`permutations="all"` the decoder runs all nine patch orders and the masks are averaged, as
in the paper's final numbers.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .config import OrderSpec
from .metrics import SegmentationMetrics
from .model import SPOT
from .viz import IMAGENET_MEAN, IMAGENET_STD

MASK_KINDS = ("slot", "decoder")


def autocast_for(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA; a no-op context elsewhere."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


@torch.no_grad()
def evaluate_model(model: SPOT, loader: Iterable[dict], device: str | torch.device = "cpu",
                   permutations: OrderSpec = "standard", max_batches: int | None = None,
                   progress: bool = True, amp: bool = True) -> dict[str, dict[str, float]]:
    """FG-ARI, mBO^i, mBO^c, mIoU (x100) of slot masks and decoder masks over `loader`.

    Batches are dicts with "image" and "instance_mask" (+ optional "class_mask",
    "ignore_mask"), as the datasets in `spot_tutorial.data` return them.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    meters = {kind: SegmentationMetrics() for kind in MASK_KINDS}
    total = len(loader) if hasattr(loader, "__len__") else None
    if max_batches is not None and total is not None:
        total = min(total, max_batches)
    bar = tqdm(loader, total=total, desc=f"evaluate ({permutations})", disable=not progress, leave=False)
    for index, batch in enumerate(bar):
        if max_batches is not None and index >= max_batches:
            break
        with autocast_for(device, amp):
            output = model(batch["image"].to(device, non_blocking=True), permutations=permutations)
        targets = {name: batch[name].to(device) if name in batch else None
                   for name in ("instance_mask", "class_mask", "ignore_mask")}
        for kind, masks in (("slot", output.slot_masks), ("decoder", output.decoder_masks)):
            meters[kind].update(masks.float(), targets["instance_mask"], targets["class_mask"],
                                targets["ignore_mask"])
    model.train(was_training)
    return {kind: meter.compute() for kind, meter in meters.items()}


def results_table(results: dict[str, dict[str, float]], title: str = "") -> str:
    """A plain-text table: one row per mask kind (or per model), one column per metric."""
    columns = ("fg_ari", "mbo_i", "mbo_c", "miou")
    lines = [title] if title else []
    lines.append(f"{'masks':<22}" + "".join(f"{c:>9}" for c in ("FG-ARI", "mBO^i", "mBO^c", "mIoU")))
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
        writer.writerow(["masks", "fg_ari", "mbo_i", "mbo_c", "miou", "num_images"])
        for kind, metrics in results.items():
            writer.writerow([kind] + [metrics.get(k) for k in ("fg_ari", "mbo_i", "mbo_c", "miou", "num_images")])
    return json_path, csv_path


# ------------------------------------------------------------------------------------------
@dataclass
class Segmentation:
    slot_masks: list[torch.Tensor]     # per image [K, H, W], soft, at the image's own size
    decoder_masks: list[torch.Tensor]  # per image [K, H, W]
    slot_labels: list[torch.Tensor]    # per image [H, W] argmax
    decoder_labels: list[torch.Tensor]  # per image [H, W]


def _as_image_tensor(image: Any) -> torch.Tensor:
    """PIL image, HxWx3 uint8 array or [3,H,W] float tensor in [0,1] -> [3,H,W] float."""
    if isinstance(image, torch.Tensor):
        tensor = image.float()
        if tensor.ndim != 3 or tensor.shape[0] != 3:
            raise ValueError(f"image tensors must be [3, H, W] in [0, 1]; got {tuple(tensor.shape)}")
        return tensor
    import numpy as np
    array = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"images must be RGB (H x W x 3); got an array of shape {array.shape}")
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255.0


@torch.no_grad()
def segment(model: SPOT, images: Sequence[Any] | torch.Tensor, permutations: OrderSpec = "standard",
            device: str | torch.device | None = None) -> Segmentation:
    """Masks for images of any size: resize to the model's input, run, upsample back.

    `images`: a list of PIL images / HxWx3 uint8 arrays / [3,H,W] tensors in [0, 1], or one
    [B,3,H,W] tensor in [0, 1] (not normalised; this function normalises).
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.eval()
    size = model.encoder.image_size
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(3, 1, 1)
    result = Segmentation([], [], [], [])
    for image in images:
        pixels = _as_image_tensor(image).to(device)                       # [3, H, W]
        height, width = pixels.shape[-2:]
        resized = F.interpolate(pixels[None], size=(size, size), mode="bilinear", align_corners=False,
                                antialias=True)
        output = model(((resized[0] - mean) / std)[None], permutations=permutations)
        for masks, soft_list, label_list in ((output.slot_masks, result.slot_masks, result.slot_labels),
                                             (output.decoder_masks, result.decoder_masks, result.decoder_labels)):
            up = F.interpolate(masks.float(), size=(height, width), mode="bilinear", align_corners=False)[0]
            soft_list.append(up.cpu())
            label_list.append(up.argmax(0).cpu())
    return result


def plot_segmentation(images: Sequence[Any], segmentation: Segmentation, alpha: float = 0.5):
    """Images with slot and decoder masks drawn over them (one row per image)."""
    import matplotlib.pyplot as plt
    from .viz import overlay

    fig, axes = plt.subplots(len(images), 3, figsize=(9, 3 * len(images)), squeeze=False)
    for row, image in enumerate(images):
        rgb = _as_image_tensor(image).permute(1, 2, 0).numpy()
        panels = (rgb, overlay(rgb, segmentation.slot_labels[row].numpy(), alpha),
                  overlay(rgb, segmentation.decoder_labels[row].numpy(), alpha))
        for col, (panel, title) in enumerate(zip(panels, ("image", "slot masks", "decoder masks"))):
            axes[row, col].imshow(panel)
            axes[row, col].set_title(title if row == 0 else "")
            axes[row, col].axis("off")
    fig.tight_layout()
    return fig


def load_any_checkpoint(path: str | os.PathLike, encoder: str | nn.Module = "vit_base_patch16_224.dino",
                        config=None) -> SPOT:
    """Our checkpoint (format tag) or one of the authors' (anything else with slot_attn.*)."""
    from .checkpoints import FORMAT, load_model, load_official_checkpoint, safe_load

    payload = safe_load(path)
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        return load_model(path)
    return load_official_checkpoint(payload, encoder, config)


# ------------------------------------------------------------------------------------------
@dataclass
class EvaluationReport:
    results: dict[str, dict[str, float]]  # {"slot": {...}, "decoder": {...}}
    table: str
    json_path: Path
    csv_path: Path
    figure_path: Path | None


def run_evaluation(checkpoint: str | os.PathLike, dataset: str | None = None, data_path: str | None = None,
                   permutations: OrderSpec = "all", batch_size: int = 32, device: str = "auto",
                   num_workers: int = 4, output_dir: str | os.PathLike = "outputs/evaluate",
                   encoder: str = "vit_base_patch16_224.dino", max_images: int = 0,
                   figure_images: int = 8, progress: bool = True) -> EvaluationReport:
    """What `spot evaluate` does: load a checkpoint (ours or the authors'), score a dataset,
    print/write the table (JSON + CSV) and optionally a figure of predicted masks."""
    from torch.utils.data import DataLoader, Subset

    from .data import build_datasets

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    model = load_any_checkpoint(checkpoint, encoder).to(device)
    config = model.config.replace(dataset=dataset) if dataset else model.config
    _, eval_set = build_datasets(config, data_path)
    if max_images:
        eval_set = Subset(eval_set, range(min(max_images, len(eval_set))))
    loader = DataLoader(eval_set, batch_size=batch_size, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    results = evaluate_model(model, loader, device, permutations, progress=progress)
    title = f"{Path(checkpoint).name} on {config.dataset} ({len(eval_set)} images, orders: {permutations})"
    table = results_table({f"{kind} masks": metrics for kind, metrics in results.items()}, title)
    info = {"checkpoint": str(checkpoint), "dataset": config.dataset, "data_path": data_path,
            "permutations": permutations, "num_images": len(eval_set), "config": config.to_dict()}
    json_path, csv_path = write_results(results, output_dir, info)
    figure_path = None
    if figure_images:
        figure_path = Path(output_dir) / "masks.png"
        save_mask_figure(model, eval_set, figure_images, permutations, device, figure_path)
    return EvaluationReport(results, table, json_path, csv_path, figure_path)


@torch.no_grad()
def save_mask_figure(model: SPOT, dataset, count: int, permutations: OrderSpec, device: torch.device,
                     path: Path) -> None:
    """Ground truth, slot masks and decoder masks over the first `count` images."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .viz import mask_figure

    items = [dataset[i] for i in range(min(count, len(dataset)))]
    images = torch.stack([item["image"] for item in items])
    output = model.eval()(images.to(device), permutations=permutations)
    masks = {"ground truth": torch.stack([item["instance_mask"] for item in items]),
             "slot masks": output.slot_masks.float().cpu(), "decoder masks": output.decoder_masks.float().cpu()}
    fig = mask_figure(images, masks, max_images=count)
    fig.savefig(path, dpi=100)
    plt.close(fig)
