"""Animations of the book: slot attention's iterations, kinds of masks compared slot by slot, and
autoregressive decoding in each patch order.

Each is a small matplotlib animation turned into an HTML player with palette-compressed PNG
frames, so the built pages stay light.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from spot_tutorial.viz.masks import PALETTE, overlay, to_rgb
from spot_tutorial.viz.orders import SHORT_ORDER_NAMES, _reveal

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

    def small_frame(match: re.Match) -> str:
        return f'frames[{match.group(1)}] = "data:image/png;base64,{_small_png(match.group(2), colours)}"'

    html = re.sub(r'frames\[(\d+)\] = "data:image/png;base64,(.*?)"', small_frame, html, flags=re.S)
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

    from spot_tutorial.model.permutations import patch_orders

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
        for axis, order_id in zip(axes.flat, order_ids, strict=False):
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
