"""Figures: images with predicted masks drawn over them (no training, no metrics here).

Label PNGs, overlays and contact sheets for `spot segment`; the mask figure that training,
evaluation and the quickstart write (`save_mask_figure`); and the mask figures of the lessons.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from spot_tutorial.data.transforms import denormalize

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
        images = denormalize(images)
    return images.clamp(0, 1).permute(0, 2, 3, 1).numpy()


def label_maps(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Soft masks [B, K, h, w] -> bilinear upsample to `size` -> argmax: [B, H, W]."""
    masks = masks.detach().float()
    if tuple(masks.shape[-2:]) != tuple(size):
        masks = F.interpolate(masks, size=size, mode="bilinear", align_corners=False)
    return masks.argmax(dim=1).cpu()


def boundaries(labels: np.ndarray) -> np.ndarray:
    """[H, W] bool: pixels whose label differs from the one to their right or below."""
    labels = np.asarray(labels)
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return edge


def overlay(image_rgb: np.ndarray, labels: np.ndarray, alpha: float = 0.5,
            contours: bool = False) -> np.ndarray:
    """Blend one colour per label (slot k: PALETTE[k], in every panel) over an [H, W, 3] image;
    [H, W] labels. `contours` draws the segment boundaries in white, so that neighbouring
    segments of similar colours stay apart in small figures."""
    colours = PALETTE[np.asarray(labels) % len(PALETTE)]
    blended = (1 - alpha) * image_rgb + alpha * colours
    if contours:
        blended = np.where(boundaries(labels)[..., None], 1.0, blended)
    return blended


def label_png(labels: np.ndarray | torch.Tensor):
    """Label map [H, W] (slot ids) -> palette PIL image: pixel values are the slot ids, shown in
    the colours of `overlay`, so one file is both data and picture."""
    from PIL import Image

    labels = np.asarray(labels)
    if labels.min() < 0 or labels.max() > 255:
        raise ValueError(f"a label PNG holds ids 0..255, got {labels.min()}..{labels.max()}")
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    colours = (np.resize(PALETTE, (256, 3)) * 255).round().astype(np.uint8)  # the palette, repeated
    image.putpalette(colours.flatten().tolist())
    return image


def overlay_png(image_rgb: np.ndarray, labels: np.ndarray | torch.Tensor, alpha: float = 0.5):
    """uint8 image [H, W, 3] with one colour per label blended over it -> RGB PIL image."""
    from PIL import Image

    blended = overlay(np.asarray(image_rgb, dtype=np.float64) / 255.0, np.asarray(labels), alpha)
    return Image.fromarray((blended * 255).round().astype(np.uint8))


def finish_grid(fig, axes, titles: list[str], fontsize: int):
    """Title the top row of a grid of images, hide every tick and tighten the layout."""
    for col, title in enumerate(titles):
        axes[0, col].set_title(title, fontsize=fontsize)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    fig.tight_layout()
    return fig


def contact_sheet(rows: list[tuple[str, list]], columns: list[str], thumbnail: int = 192):
    """One row per image: its name, then pictures (PIL images: the image, its overlays) under
    the `columns` titles, each shrunk to at most `thumbnail` pixels a side."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), len(columns), figsize=(2.2 * len(columns), 2.2 * len(rows)),
                             squeeze=False)
    for row, (name, pictures) in enumerate(rows):
        for col, picture in enumerate(pictures):
            small = picture.copy()
            small.thumbnail((thumbnail, thumbnail))
            axes[row, col].imshow(np.asarray(small))
        axes[row, 0].set_ylabel(name if len(name) <= 28 else "..." + name[-25:], fontsize=7)
    return finish_grid(fig, axes, columns, fontsize=9)


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
            axes[row, col].imshow(overlay(rgb[row], labels[row].numpy(), contours=True))
    return finish_grid(fig, axes, titles or columns, fontsize=10)


def figure_images(dataset, count: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The first `count` images of a dataset [B, 3, H, W] and their ground truth for `mask_figure`:
    ``{"ground truth": [B, H, W]}``, or an empty dict for images without instance masks."""
    items = [dataset[i] for i in range(min(count, len(dataset)))]
    images = torch.stack([item["image"] for item in items])
    if "instance_mask" not in items[0]:
        return images, {}
    return images, {"ground truth": torch.stack([item["instance_mask"] for item in items])}


def save_mask_figure(path, images: torch.Tensor, masks_by_name: dict[str, torch.Tensor],
                     max_images: int = 8, dpi: int = 100):
    """`mask_figure` written to `path` (PNG) with the Agg backend (no display needed); returns `path`.

    The one place where training, evaluation and the quickstart write their mask figures.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = mask_figure(images, masks_by_name, max_images=max_images)
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path


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


# ----------------------------------------------------------------------------------------------
# Figures of the lessons (notebooks 01-05)
def attention_rows_figure(image: torch.Tensor, rows: dict[str, torch.Tensor], normalized: bool = True,
                          highlight: int | None = None):
    """One row per entry of `rows` (e.g. per slot-attention iteration): the image, then the
    K soft masks [K, h, w] of that row as heat maps (0 = dark, 1 = bright); `highlight`
    frames one slot in red."""
    import matplotlib.pyplot as plt

    rgb = to_rgb(image[None], normalized)[0]
    names = list(rows)
    num_slots = rows[names[0]].shape[0]
    fig, axes = plt.subplots(len(names), num_slots + 1, figsize=(1.5 * (num_slots + 1), 1.55 * len(names)),
                             squeeze=False)
    for r, name in enumerate(names):
        up = F.interpolate(rows[name][None].detach().float().cpu(), size=rgb.shape[:2], mode="bilinear",
                           align_corners=False)[0]
        axes[r, 0].imshow(rgb)
        axes[r, 0].set_ylabel(name, fontsize=9)
        for k in range(num_slots):
            axes[r, k + 1].imshow(up[k].numpy(), cmap="magma", vmin=0.0, vmax=1.0)
            if r == 0:
                axes[r, k + 1].set_title(f"slot {k}", fontsize=9,
                                         fontweight="bold" if k == highlight else "normal")
        if highlight is not None:
            for spine in axes[r, highlight + 1].spines.values():
                spine.set_edgecolor("red")
                spine.set_linewidth(2)
    axes[0, 0].set_title("image", fontsize=9)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    fig.tight_layout()
    return fig


def label_maps_figure(panels: dict[str, torch.Tensor], numbers: bool = True,
                      ignore: torch.Tensor | None = None):
    """Small label maps [H, W] side by side, one colour per label (0 = dark grey background);
    with `numbers` each cell shows its label; `ignore` [H, W] cells are hatched."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.4), squeeze=False)
    for axis, (name, labels) in zip(axes[0], panels.items(), strict=True):
        labels = np.asarray(labels)
        colours = PALETTE[labels % len(PALETTE)]
        if "ground truth" in name or "target" in name:
            colours = np.where((labels == 0)[..., None], 0.25, colours)
        axis.imshow(colours)
        if numbers:
            for (r, c), value in np.ndenumerate(labels):
                axis.text(c, r, str(value), ha="center", va="center", fontsize=7)
        if ignore is not None:
            rows, cols = np.nonzero(np.asarray(ignore))
            axis.scatter(cols, rows, marker="x", color="black", s=30)
        axis.set_title(name, fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
    fig.tight_layout()
    return fig


def masks_by_row(images: torch.Tensor, masks_by_name: dict[str, torch.Tensor], max_images: int = 6,
                 normalized: bool = True, size: float = 1.25):
    """Like `mask_figure`, transposed for narrow pages: one column per image, one row for the
    images and one per set of masks (soft [B, K, h, w] or labels [B, H, W]), named on the left.
    Each segment in its slot's colour (the same in every row) with its boundary in white."""
    import matplotlib.pyplot as plt

    count = min(max_images, images.shape[0])
    rgb = to_rgb(images[:count], normalized)
    height_width = rgb.shape[1:3]
    names = ["image", *masks_by_name]
    fig, axes = plt.subplots(len(names), count, figsize=(size * count + 0.6, size * len(names)),
                             squeeze=False)
    for col in range(count):
        axes[0, col].imshow(rgb[col])
        for row, name in enumerate(masks_by_name, start=1):
            masks = masks_by_name[name][:count]
            labels = masks.cpu() if masks.ndim == 3 else label_maps(masks, height_width)
            if tuple(labels.shape[-2:]) != tuple(height_width):
                labels = F.interpolate(labels[:, None].float(), size=height_width,
                                       mode="nearest")[:, 0].long()
            axes[row, col].imshow(overlay(rgb[col], labels[col].numpy(), contours=True))
    for row, name in enumerate(names):
        axes[row, 0].set_ylabel(name, fontsize=8)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    fig.tight_layout(pad=0.3)
    return fig
