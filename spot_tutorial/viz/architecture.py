"""The architecture diagram of SPOT (paper, Fig. 2), drawn with matplotlib: no model needed.
"""

from __future__ import annotations

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
