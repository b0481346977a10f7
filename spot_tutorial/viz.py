"""Figures: images with predicted masks drawn over them (no training, no metrics here).

Every figure of the book is produced by these functions: from a `SPOTOutput` or from masks,
the architecture diagram (drawn, no model needed), and training curves from a run's log.jsonl.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data.transforms import denormalize

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


def overlay(image_rgb: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend one colour per label over an [H, W, 3] image; [H, W] labels."""
    colours = PALETTE[np.asarray(labels) % len(PALETTE)]
    return (1 - alpha) * image_rgb + alpha * colours


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
    for col, title in enumerate(columns):
        axes[0, col].set_title(title, fontsize=9)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    fig.tight_layout()
    return fig


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


# Short names of the nine orders, for figure titles (ORDER_NAMES in permutations has the long ones).
SHORT_ORDER_NAMES = ("raster", "columns, top-left", "columns, top-right", "rows, top-right",
                     "columns, bottom-right", "rows, bottom-right", "columns, bottom-left",
                     "rows, bottom-left", "spiral")


def _draw_order(axis, order: torch.Tensor, side: int, upto: int | None = None, path: bool = True,
                numbers: bool = False) -> None:
    """Step map of one order on a side x side grid, its path and its first token."""
    from .permutations import order_grid

    steps = order_grid(order.tolist(), side).numpy()
    axis.imshow(steps, cmap="viridis", vmin=0, vmax=side * side - 1)
    rows, cols = np.divmod(order.numpy(), side)
    end = len(order) if upto is None else upto + 1
    if path:
        axis.plot(cols[:end], rows[:end], color="white", linewidth=1.0, alpha=0.9)
    axis.plot(cols[0], rows[0], marker="o", color="red", markersize=5)
    if numbers and side <= 8:
        for r in range(side):
            for c in range(side):
                axis.text(c, r, str(steps[r, c]), ha="center", va="center", fontsize=6,
                          color="white" if steps[r, c] < side * side * 0.6 else "black")
    axis.set_xticks([])
    axis.set_yticks([])


def orders_figure(side: int = 8, order_ids: list[int] | None = None, numbers: bool = False):
    """The nine patch orders on a side x side token grid: colour = decoding step (dark = early),
    white line = the path, red dot = the first token predicted (right after [BOS])."""
    import matplotlib.pyplot as plt

    from .permutations import patch_orders

    orders = patch_orders(side)
    order_ids = list(range(len(orders))) if order_ids is None else list(order_ids)
    columns = min(3, len(order_ids))
    rows = (len(order_ids) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 2.5 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, order_id in zip(axes.flat, order_ids):
        axis.axis("on")
        _draw_order(axis, orders[order_id], side, numbers=numbers)
        axis.set_title(f"{order_id}: {SHORT_ORDER_NAMES[order_id]}", fontsize=8)
    fig.tight_layout()
    return fig


def _reveal(rgb: np.ndarray, order: torch.Tensor, side: int, step: int, dim: float = 0.15) -> np.ndarray:
    """The image with the patches not yet given to the decoder darkened (teacher forcing at `step`)."""
    height, width = rgb.shape[:2]
    patch_h, patch_w = height // side, width // side
    shown = rgb * dim
    for index in order[:step].tolist():
        r, c = divmod(index, side)
        shown[r * patch_h:(r + 1) * patch_h, c * patch_w:(c + 1) * patch_w] = \
            rgb[r * patch_h:(r + 1) * patch_h, c * patch_w:(c + 1) * patch_w]
    return shown


def decoding_step_figure(image: torch.Tensor, order_id: int, step: int, side: int = 8,
                         normalized: bool = True):
    """Autoregressive decoding at `step` in order `order_id`: left, what the decoder has been given
    ([BOS] and the features of the earlier tokens, bright) and the token it predicts now (red
    box); right, the step map of the order with its path so far."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from .permutations import patch_orders

    order = patch_orders(side)[order_id]
    rgb = to_rgb(image[None], normalized)[0]
    fig, axes = plt.subplots(1, 2, figsize=(5.2, 2.8))
    axes[0].imshow(_reveal(rgb, order, side, step), interpolation="nearest")
    r, c = divmod(int(order[step]), side)
    patch_h, patch_w = rgb.shape[0] / side, rgb.shape[1] / side
    axes[0].add_patch(Rectangle((c * patch_w - 0.5, r * patch_h - 0.5), patch_w, patch_h, fill=False,
                                edgecolor="red", linewidth=2))
    axes[0].set_title(f"step {step}: input [BOS] + {step} token(s)", fontsize=8)
    _draw_order(axes[1], order, side, upto=step)
    axes[1].plot(c, r, marker="s", markersize=8, markerfacecolor="none", markeredgecolor="red")
    axes[1].set_title(f"order {order_id}: {SHORT_ORDER_NAMES[order_id]}", fontsize=8)
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    fig.tight_layout()
    return fig


def label_maps_figure(panels: dict[str, torch.Tensor], numbers: bool = True, ignore: torch.Tensor | None = None):
    """Small label maps [H, W] side by side, one colour per label (0 = dark grey background);
    with `numbers` each cell shows its label; `ignore` [H, W] cells are hatched."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.4), squeeze=False)
    for axis, (name, labels) in zip(axes[0], panels.items()):
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
    images and one per set of masks (soft [B, K, h, w] or labels [B, H, W]), named on the left."""
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
                labels = F.interpolate(labels[:, None].float(), size=height_width, mode="nearest")[:, 0].long()
            axes[row, col].imshow(overlay(rgb[col], labels[col].numpy()))
    for row, name in enumerate(names):
        axes[row, 0].set_ylabel(name, fontsize=8)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    fig.tight_layout(pad=0.3)
    return fig


# ----------------------------------------------------------------------------------------------
# Animations that play without a kernel: every frame is drawn once, in Python, and embedded in the
# output as a PNG with matplotlib's JavaScript player (a slider and play buttons). They work the
# same in Jupyter, in Colab and in the built book, where no kernel runs.
_PLAYER_ICONS = {"fa-minus": "&minus;", "fa-fast-backward": "&laquo;", "fa-step-backward": "&lsaquo;",
                 "fa-play fa-flip-horizontal": "&#9664;", "fa-pause": "&#10074;&#10074;",
                 "fa-play": "&#9654;", "fa-step-forward": "&rsaquo;", "fa-fast-forward": "&raquo;",
                 "fa-plus": "+"}


class Animation:
    """Self-contained HTML of an animation (`html`, shown by Jupyter and the book) with a fixed
    plain-text summary (what ``print`` shows and what a text comparison sees)."""

    def __init__(self, html: str, summary: str, num_frames: int):
        self.html, self.summary, self.num_frames = html, summary, num_frames

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.summary


def _small_png(data: str, colours: int) -> str:
    """A base64 PNG frame (with the player's line continuations) re-encoded with a palette."""
    import base64
    import io

    from PIL import Image

    raw = base64.b64decode(data.replace("\\\n", ""))
    image = Image.open(io.BytesIO(raw)).convert("RGB")
    image = image.quantize(colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def animate(draw, frames: list, figsize: tuple[float, float], dpi: int = 72, interval_ms: int = 800,
            mode: str = "loop", summary: str = "", colours: int = 96) -> Animation:
    """Draw ``draw(fig, frame)`` for each entry of `frames` into a cleared figure and embed the
    frames as PNGs in one HTML player (matplotlib's ``to_jshtml``). The player's icons are text,
    not a web font, and its element ids come from the content, so the HTML works offline and is
    the same on every run. Frames are stored with a palette of `colours` colours to keep the HTML
    small. `mode`: 'once', 'loop' or 'reflect'."""
    import hashlib
    import re

    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    fig = plt.figure(figsize=figsize, dpi=dpi)

    def update(index):
        fig.clear()
        draw(fig, frames[index])
        return []

    animation = FuncAnimation(fig, update, frames=len(frames), init_func=lambda: [],
                              interval=interval_ms, blit=False, repeat=False)
    with plt.rc_context({"savefig.dpi": dpi, "animation.embed_limit": 50.0}):
        html = animation.to_jshtml(default_mode=mode)
    plt.close(fig)
    html = re.sub(r'frames\[(\d+)\] = "data:image/png;base64,(.*?)"',
                  lambda m: f'frames[{m.group(1)}] = "data:image/png;base64,{_small_png(m.group(2), colours)}"',
                  html, flags=re.S)
    html = re.sub(r'<link rel="stylesheet"\s+href="https?://[^"]*font-awesome[^"]*">', "", html)
    for icon, text in _PLAYER_ICONS.items():
        html = html.replace(f'<i class="fa {icon}"></i>', text)
    random_id = re.search(r"_anim_img([0-9a-f]+)", html).group(1)
    stable_id = hashlib.sha1(html.replace(random_id, "").encode()).hexdigest()[:32]
    html = html.replace(random_id, stable_id)
    return Animation(html, summary or f"Animation: {len(frames)} frames", len(frames))


def _heat(axis, mask: np.ndarray, title: str = "", colour=None) -> None:
    axis.imshow(mask, cmap="magma", vmin=0.0, vmax=1.0)
    if title:
        axis.set_title(title, fontsize=11)
    if colour is not None:
        for spine in axis.spines.values():
            spine.set_edgecolor(colour)
            spine.set_linewidth(3)
    axis.set_xticks([])
    axis.set_yticks([])


def _upsample(masks: torch.Tensor, size) -> np.ndarray:
    """Soft masks [K, h, w] -> [K, H, W] numpy (bilinear)."""
    return F.interpolate(masks[None].detach().float().cpu(), size=tuple(size), mode="bilinear",
                         align_corners=False)[0].numpy()


def iterations_animation(images: torch.Tensor, attention: list[torch.Tensor], scenes: int = 3,
                         normalized: bool = True, dpi: int = 72) -> Animation:
    """Slot attention over its iterations. `attention`: one [B, K, h, w] mask tensor per iteration.
    One frame per (scene, iteration): the image, the hard masks (each pixel in the colour of the
    slot that wins it) and each slot's soft mask (bright = the slot claims all of the patch)."""
    count = min(scenes, images.shape[0])
    rgb = to_rgb(images[:count], normalized)
    size = rgb.shape[1:3]
    num_slots = attention[0].shape[1]
    frames = [(scene, t) for scene in range(count) for t in range(len(attention))]

    def draw(fig, frame):
        scene, t = frame
        masks = _upsample(attention[t][scene], size)
        axes = fig.subplots(1, num_slots + 2)
        axes[0].imshow(rgb[scene])
        axes[0].set_title(f"scene {scene}", fontsize=11)
        axes[1].imshow(overlay(rgb[scene], masks.argmax(0)))
        axes[1].set_title("winning slot", fontsize=11)
        for k in range(num_slots):
            _heat(axes[k + 2], masks[k], f"slot {k}", colour=PALETTE[k % len(PALETTE)])
        for axis in axes[:2]:
            axis.set_xticks([])
            axis.set_yticks([])
        fig.suptitle(f"iteration {t + 1} of {len(attention)}", fontsize=12, fontweight="bold")
        fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.72, wspace=0.08)

    return animate(draw, frames, figsize=(1.45 * (num_slots + 2), 2.0), dpi=dpi, interval_ms=900,
                   summary=f"Animation: slot attention over {len(attention)} iterations, {count} scenes "
                           f"({len(frames)} frames)")


def slot_masks_animation(images: torch.Tensor, rows: dict[str, torch.Tensor], scenes: int = 4,
                         normalized: bool = True, dpi: int = 72) -> Animation:
    """Two (or more) kinds of soft masks [B, K, h, w] compared slot by slot. First frame: the hard
    masks of every kind (colour = winning slot); then one frame per slot k: its soft mask in every
    kind (bright = slot k claims all of the patch), framed in slot k's colour."""
    count = min(scenes, images.shape[0])
    rgb = to_rgb(images[:count], normalized)
    size = rgb.shape[1:3]
    names = list(rows)
    num_slots = rows[names[0]].shape[1]
    up = {name: [_upsample(rows[name][i], size) for i in range(count)] for name in names}

    def draw(fig, slot):
        axes = fig.subplots(len(names) + 1, count, squeeze=False)
        for col in range(count):
            axes[0, col].imshow(rgb[col])
            for row, name in enumerate(names, start=1):
                masks = up[name][col]
                if slot is None:
                    axes[row, col].imshow(overlay(rgb[col], masks.argmax(0)))
                else:
                    _heat(axes[row, col], masks[slot], colour=PALETTE[slot % len(PALETTE)])
        for row, name in enumerate(["image", *names]):
            axes[row, 0].set_ylabel(name, fontsize=11)
        for axis in axes.flat:
            axis.set_xticks([])
            axis.set_yticks([])
        title = ("all slots: each pixel in the colour of the slot that wins it" if slot is None
                 else f"slot {slot}: its share of every patch (bright = all of it)")
        fig.suptitle(title, fontsize=12, fontweight="bold")
        fig.subplots_adjust(left=0.08, right=0.99, bottom=0.01, top=0.9, wspace=0.05, hspace=0.05)

    frames = [None, *range(num_slots)]
    return animate(draw, frames, figsize=(1.6 * count + 0.5, 1.6 * (len(names) + 1) + 0.4), dpi=dpi,
                   interval_ms=1200, summary=f"Animation: {' vs '.join(names)}, slot by slot "
                                             f"({len(frames)} frames)")


def decoding_animation(image: torch.Tensor, side: int = 8, order_ids: list[int] | None = None,
                       every: int | None = None, normalized: bool = True, dpi: int = 88) -> Animation:
    """Autoregressive decoding in each order, side by side. First frame: every order's full path
    (white line) and first token (red dot) over the image; then one frame every `every` steps
    (default: 8 frames in all): the patches given so far (bright, [BOS] + earlier tokens), the path
    so far and the token predicted now (red box)."""
    from matplotlib.patches import Rectangle

    from .permutations import patch_orders

    orders = patch_orders(side)
    order_ids = list(range(len(orders))) if order_ids is None else list(order_ids)
    rgb = to_rgb(image[None], normalized)[0]
    height, width = rgb.shape[:2]
    patch_h, patch_w = height / side, width / side
    total = side * side
    every = every or max(1, total // 8)
    columns = min(3, len(order_ids))
    rows = (len(order_ids) + columns - 1) // columns
    frames = [None, *range(0, total, every)]

    def draw(fig, step):
        axes = fig.subplots(rows, columns, squeeze=False)
        for axis in axes.flat:
            axis.axis("off")
        for axis, order_id in zip(axes.flat, order_ids):
            order = orders[order_id]
            r, c = np.divmod(order.numpy(), side)
            xs, ys = (c + 0.5) * patch_w - 0.5, (r + 0.5) * patch_h - 0.5
            if step is None:
                axis.imshow(rgb * 0.55, interpolation="nearest")
                axis.plot(xs, ys, color="white", linewidth=1.2)
                axis.plot(xs[0], ys[0], marker="o", color="red", markersize=7)
            else:
                axis.imshow(_reveal(rgb, order, side, step, dim=0.2), interpolation="nearest")
                axis.plot(xs[:step + 1], ys[:step + 1], color="white", linewidth=1.2)
                axis.add_patch(Rectangle((c[step] * patch_w - 0.5, r[step] * patch_h - 0.5), patch_w,
                                         patch_h, fill=False, edgecolor="red", linewidth=2.5))
            axis.set_title(f"{order_id}: {SHORT_ORDER_NAMES[order_id]}", fontsize=11)
        title = ("each order's path (white) and first token (red dot)" if step is None else
                 f"step {step} of {total}: {step} token(s) given, red = predicted now")
        fig.suptitle(title, fontsize=12, fontweight="bold")
        fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.9, wspace=0.06, hspace=0.2)

    return animate(draw, frames, figsize=(2.6 * columns, 2.5 * rows + 0.5), dpi=dpi, interval_ms=900,
                   summary=f"Animation: decoding in {len(order_ids)} orders ({len(frames)} frames)")


# ----------------------------------------------------------------------------------------------
# The architecture (the paper's Figure 2 in our own drawing) and training curves
_FROZEN, _SLOTS, _DECODER, _LOSS, _STAGE2 = "#dfe7f2", "#fde3c8", "#d9f0d3", "#f6d5d5", "#e6dcf3"


def _box(axis, x: float, y: float, width: float, height: float, text: str, colour: str,
         fontsize: float = 12, **text_kwargs):
    """A rounded box with centred text; returns the box patch."""
    from matplotlib.patches import FancyBboxPatch

    patch = FancyBboxPatch((x, y), width, height, boxstyle="round,pad=0.02,rounding_size=0.12",
                           facecolor=colour, edgecolor="#333333", linewidth=1.2)
    axis.add_patch(patch)
    axis.text(x + width / 2, y + height / 2, text, ha="center", va="center", fontsize=fontsize,
              gid="label", **text_kwargs)
    return patch


def _arrow(axis, start: tuple[float, float], end: tuple[float, float], dashed: bool = False,
           colour: str = "#333333") -> None:
    axis.annotate("", xy=end, xytext=start,
                  arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.4, shrinkA=0, shrinkB=0,
                                  linestyle="--" if dashed else "-", mutation_scale=14))


def architecture_figure(stage2: bool = True):
    """SPOT drawn as boxes and arrows: stage 1 (image -> frozen ViT -> patch features -> slot
    attention -> slots -> autoregressive decoder -> reconstruction, MSE against the features; slot
    masks and decoder masks) and, with `stage2`, the self-training of stage 2 (the teacher's decoder
    masks -> hard labels -> Hungarian matching -> cross-entropy on the student's slot attention).
    Every label is a text artist with gid 'label' (the tests check that no label overlaps another
    label or an arrow)."""
    import matplotlib.pyplot as plt

    bottom = 0.0 if stage2 else 2.8          # drawing units; the figure is 10 inches wide
    fig = plt.figure(figsize=(10.0, 10.0 * (10.6 - bottom) / 16.4))
    axis = fig.add_axes((0, 0, 1, 1))
    axis.set_xlim(-0.2, 16.2)
    axis.set_ylim(bottom, 10.6)
    axis.axis("off")
    row_a = 8.0                              # image, ViT, features, slot attention, slots

    # stage 1, first row: the encoder side
    _box(axis, 0.0, row_a, 2.0, 1.1, "image\n[B, 3, H, W]", "white")
    _box(axis, 2.45, row_a, 3.0, 1.1, "frozen ViT encoder\n(DINO ViT-B/16)", _FROZEN)
    _box(axis, 5.9, row_a, 2.4, 1.1, "patch features $F$\n[B, N, D]", _FROZEN)
    _box(axis, 8.9, row_a, 2.6, 1.1, "slot attention\n(3 iterations)", _SLOTS)
    _box(axis, 12.1, row_a, 2.0, 1.1, "slots\n[B, K, S]", _SLOTS)
    _box(axis, 8.9, row_a + 1.45, 2.6, 0.95, "slot masks $A$\n[B, K, h, w]", _SLOTS, fontsize=11)
    for x0, x1 in ((2.0, 2.45), (5.45, 5.9), (8.3, 8.9), (11.5, 12.1)):
        _arrow(axis, (x0, row_a + 0.55), (x1, row_a + 0.55))
    _arrow(axis, (10.2, row_a + 1.1), (10.2, row_a + 1.45))

    # stage 1, second row: the autoregressive decoder (one of its L blocks, drawn open)
    dec_y, dec_h = row_a - 3.2, 2.3
    from matplotlib.patches import FancyBboxPatch
    axis.add_patch(FancyBboxPatch((3.3, dec_y), 12.6, dec_h, boxstyle="round,pad=0.02,rounding_size=0.2",
                                  facecolor=_DECODER, edgecolor="#2f6f2f", linewidth=1.6, alpha=0.55))
    axis.text(3.5, dec_y + 0.3, "autoregressive transformer decoder (L blocks)",
              ha="left", va="center", fontsize=12, style="italic", gid="label")
    inner_y, inner_h = dec_y + 0.75, 1.3
    _box(axis, 3.5, inner_y, 3.9, inner_h, "input in patch order $\\pi$:\n"
         "[BOS$_\\pi$], $f_{\\pi(1)}, \\dots, f_{\\pi(N-1)}$\n(one of 9 orders per batch)", "white",
         fontsize=11)
    _box(axis, 7.9, inner_y, 2.3, inner_h, "causal\nself-attention", _DECODER)
    _box(axis, 10.7, inner_y, 2.6, inner_h, "cross-attention\nto the slots", _DECODER)
    _box(axis, 13.8, inner_y, 1.9, inner_h, "MLP", _DECODER)
    for x0, x1 in ((7.4, 7.9), (10.2, 10.7), (13.3, 13.8)):
        _arrow(axis, (x0, inner_y + inner_h / 2), (x1, inner_y + inner_h / 2))
    _arrow(axis, (6.6, row_a), (6.6, inner_y + inner_h))              # F -> shifted decoder input
    _arrow(axis, (13.1, row_a), (12.0, inner_y + inner_h))            # slots -> cross-attention

    # stage 1, third row: outputs and the loss
    row_c = dec_y - 1.55
    _box(axis, 3.3, row_c, 3.9, 1.1, "reconstruction $\\hat F$  [B, N, D]\n(raster order via $\\pi^{-1}$)",
         _DECODER, fontsize=11)
    _box(axis, 0.0, dec_y + 0.4, 2.6, 1.5, "MSE loss\n$\\mathcal{L}_{rec} = \\|F - \\hat F\\|^2$\n"
         "(mean)", _LOSS, fontsize=11)
    _box(axis, 9.4, row_c - 0.25, 6.5, 1.35, "decoder masks $M$  [B, K, h, w]:\n"
         "the last block's cross-attention, mean over\nheads, back to raster order via $\\pi^{-1}$",
         _DECODER, fontsize=11)
    _arrow(axis, (5.25, dec_y), (5.25, row_c + 1.1))                  # decoder -> reconstruction
    _arrow(axis, (3.3, row_c + 0.55), (1.3, dec_y + 0.4))             # reconstruction -> MSE
    _arrow(axis, (6.1, row_a), (2.1, dec_y + 1.9), dashed=True)        # target features -> MSE
    axis.text(3.15, row_a - 0.75, "target", fontsize=11, style="italic", ha="center", gid="label")
    _arrow(axis, (12.0, inner_y), (12.0, row_c + 1.1))                # cross-attention -> masks
    if not stage2:
        return fig

    # stage 2: self-training, the trained stage-1 model as a frozen teacher
    axis.add_patch(FancyBboxPatch((0.0, 0.1), 15.9, 2.75, boxstyle="round,pad=0.02,rounding_size=0.2",
                                  facecolor=_STAGE2, edgecolor="#5b3f8c", linewidth=1.4, alpha=0.45))
    axis.text(0.2, 2.55, "stage 2, self-training: a new student (same architecture) learns from "
              "the frozen stage-1 model", ha="left", va="center", fontsize=12, style="italic",
              gid="label")
    _box(axis, 10.9, 1.25, 4.8, 0.95, "teacher's decoder masks $\\rightarrow$ labels\n"
         "$y_n = \\arg\\max_j M_{nj}$", "white", fontsize=11)
    _box(axis, 10.9, 0.2, 4.8, 0.95, "student's slot masks $\\rightarrow$ labels\n"
         "$z_n = \\arg\\max_j A_{nj}$", "white", fontsize=11)
    _box(axis, 5.7, 0.45, 4.4, 1.5, "Hungarian matching $\\sigma$\nof teacher and student slots,\n"
         "cost $1 - \\mathrm{IoU}(y{=}t,\\ z{=}j)$", _STAGE2, fontsize=11)
    _box(axis, 0.2, 0.45, 4.7, 1.5, "cross-entropy of the student's\nslot-attention logits (reordered\n"
         "by $\\sigma$) against $y$: $\\mathcal{L}_{rec} + w\\,\\mathcal{L}_{CE}$", _LOSS, fontsize=11)
    _arrow(axis, (10.9, 1.72), (10.1, 1.45))
    _arrow(axis, (10.9, 0.65), (10.1, 0.95))
    _arrow(axis, (5.7, 1.2), (4.9, 1.2))
    _arrow(axis, (14.6, row_c - 0.25), (14.6, 2.2), colour="#5b3f8c")           # decoder masks -> teacher
    return fig


@dataclass
class TrainingLog:
    """A run's log.jsonl, as written by `spot_tutorial.train.Trainer`: the train records'
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

    from .errors import InputError

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

    from .errors import InputError

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
