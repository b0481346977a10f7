"""Pictures of the nine patch orders and of one autoregressive decoding step (paper, section 3.2).
"""

from __future__ import annotations

import numpy as np
import torch

from spot_tutorial.viz.masks import to_rgb

# Short names of the nine orders, for figure titles (ORDER_NAMES in permutations has the long ones).
SHORT_ORDER_NAMES = ("raster", "columns, top-left", "columns, top-right", "rows, top-right",
                     "columns, bottom-right", "rows, bottom-right", "columns, bottom-left",
                     "rows, bottom-left", "spiral")


# A 3-panel figure is 7.2 in wide and shown about 720 px wide in the book: 12 pt is 16-17 px there.
NUMBER_FONTSIZE = 12
TITLE_FONTSIZE = 11


def _draw_order(axis, order: torch.Tensor, side: int, upto: int | None = None, path: bool = True,
                numbers: bool = False) -> None:
    """Step map of one order on a side x side grid, its path and its first token."""
    from spot_tutorial.model.permutations import order_grid

    steps = order_grid(order.tolist(), side).numpy()
    axis.imshow(steps, cmap="viridis", vmin=0, vmax=side * side - 1)
    rows, cols = np.divmod(order.numpy(), side)
    end = len(order) if upto is None else upto + 1
    if path:  # faint under step numbers, which it would otherwise cross out
        axis.plot(cols[:end], rows[:end], color="white", linewidth=1.0, alpha=0.3 if numbers else 0.9)
    axis.plot(cols[0], rows[0], marker="o", color="red", markersize=5)
    if numbers and side <= 8:  # step numbers as large as the book's body text at book width
        for r in range(side):
            for c in range(side):
                axis.text(c, r, str(steps[r, c]), ha="center", va="center", fontsize=NUMBER_FONTSIZE,
                          color="white" if steps[r, c] < side * side * 0.6 else "black")
    axis.set_xticks([])
    axis.set_yticks([])


def orders_figure(side: int = 8, order_ids: list[int] | None = None, numbers: bool = False):
    """The nine patch orders on a side x side token grid: colour = decoding step (dark = early),
    white line = the path, red dot = the first token predicted (right after [BOS])."""
    import matplotlib.pyplot as plt

    from spot_tutorial.model.permutations import patch_orders

    orders = patch_orders(side)
    order_ids = list(range(len(orders))) if order_ids is None else list(order_ids)
    columns = min(3, len(order_ids))
    rows = (len(order_ids) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 2.6 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, order_id in zip(axes.flat, order_ids, strict=False):
        axis.axis("on")
        _draw_order(axis, orders[order_id], side, numbers=numbers)
        axis.set_title(f"{order_id}: {SHORT_ORDER_NAMES[order_id]}", fontsize=TITLE_FONTSIZE)
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

    from spot_tutorial.model.permutations import patch_orders

    order = patch_orders(side)[order_id]
    rgb = to_rgb(image[None], normalized)[0]
    fig, axes = plt.subplots(1, 2, figsize=(5.2, 2.8))
    axes[0].imshow(_reveal(rgb, order, side, step), interpolation="nearest")
    r, c = divmod(int(order[step]), side)
    patch_h, patch_w = rgb.shape[0] / side, rgb.shape[1] / side
    axes[0].add_patch(Rectangle((c * patch_w - 0.5, r * patch_h - 0.5), patch_w, patch_h, fill=False,
                                edgecolor="red", linewidth=2))
    axes[0].set_title(f"step {step}: input [BOS] + {step} token(s)", fontsize=TITLE_FONTSIZE - 1)
    _draw_order(axes[1], order, side, upto=step)
    axes[1].plot(c, r, marker="s", markersize=8, markerfacecolor="none", markeredgecolor="red")
    axes[1].set_title(f"order {order_id}: {SHORT_ORDER_NAMES[order_id]}", fontsize=TITLE_FONTSIZE - 1)
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    fig.tight_layout()
    return fig
