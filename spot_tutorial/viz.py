"""Figures: images with predicted masks drawn over them (no training, no metrics here).

Every figure of the book is produced by these functions from a `SPOTOutput` or from masks.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# 24 well-separated colours (one per slot), RGB in [0, 1]
PALETTE = np.array([
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (67, 99, 216), (245, 130, 49), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (188, 246, 12), (250, 190, 190), (0, 128, 128), (230, 190, 255),
    (154, 99, 36), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
    (0, 0, 117), (128, 128, 128), (197, 105, 50), (183, 165, 140), (58, 98, 125), (154, 188, 21),
]) / 255.0


def to_rgb(images: torch.Tensor, normalized: bool = True) -> np.ndarray:
    """[B, 3, H, W] tensor -> [B, H, W, 3] float array in [0, 1] (undoing ImageNet normalisation)."""
    images = images.detach().float().cpu()
    if normalized:
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        images = images * std + mean
    return images.clamp(0, 1).permute(0, 2, 3, 1).numpy()


def label_maps(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Soft masks [B, K, h, w] -> bilinear upsample to `size` -> argmax: [B, H, W]."""
    masks = masks.detach().float()
    if tuple(masks.shape[-2:]) != tuple(size):
        masks = F.interpolate(masks, size=size, mode="bilinear", align_corners=False)
    return masks.argmax(dim=1).cpu()


def overlay(image_rgb: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend one colour per label over an [H, W, 3] image; [H, W] labels."""
    colours = PALETTE[np.asarray(labels) % len(PALETTE)]
    return (1 - alpha) * image_rgb + alpha * colours


def mask_figure(images: torch.Tensor, masks_by_name: dict[str, torch.Tensor], max_images: int = 8,
                normalized: bool = True, titles: list[str] | None = None):
    """Rows: images; columns: the image, then each set of masks (soft [B,K,h,w] or labels [B,H,W])."""
    import matplotlib.pyplot as plt

    count = min(max_images, images.shape[0])
    rgb = to_rgb(images[:count], normalized)
    size = rgb.shape[1:3]
    columns = ["image", *masks_by_name]
    fig, axes = plt.subplots(count, len(columns), figsize=(2.2 * len(columns), 2.2 * count), squeeze=False)
    for row in range(count):
        axes[row, 0].imshow(rgb[row])
        for col, name in enumerate(masks_by_name, start=1):
            masks = masks_by_name[name][:count]
            labels = masks.cpu() if masks.ndim == 3 else label_maps(masks, size)
            if tuple(labels.shape[-2:]) != tuple(size):
                labels = F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()
            axes[row, col].imshow(overlay(rgb[row], labels[row].numpy()))
    for col, name in enumerate(titles or columns):
        axes[0, col].set_title(name, fontsize=10)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    fig.tight_layout()
    return fig


def slot_figure(image: torch.Tensor, masks: torch.Tensor, normalized: bool = True, title: str = ""):
    """One image and each of its K soft masks [K, h, w] as a grey map."""
    import matplotlib.pyplot as plt

    rgb = to_rgb(image[None], normalized)[0]
    num_slots = masks.shape[0]
    fig, axes = plt.subplots(1, num_slots + 1, figsize=(1.8 * (num_slots + 1), 2.0))
    axes[0].imshow(rgb)
    axes[0].set_title(title or "image", fontsize=9)
    up = F.interpolate(masks[None].detach().float().cpu(), size=rgb.shape[:2], mode="bilinear",
                       align_corners=False)[0]
    for k in range(num_slots):
        axes[k + 1].imshow(rgb * up[k, :, :, None].numpy().clip(0, 1))
        axes[k + 1].set_title(f"slot {k}", fontsize=9)
    for axis in axes:
        axis.axis("off")
    fig.tight_layout()
    return fig
