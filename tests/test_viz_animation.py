"""viz.animate and the lessons' animations: self-contained HTML that plays without a kernel."""

from __future__ import annotations

import base64
import io
import re

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from PIL import Image  # noqa: E402

from spot_tutorial import viz  # noqa: E402

FRAME = re.compile(r'frames\[(\d+)\] = "data:image/png;base64,([^"]+)"')


def frames_of(html: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(data))) for _, data in FRAME.findall(html)]


def draw_line(fig, value):
    axis = fig.add_subplot()
    axis.plot([0, 1], [0, value])
    axis.set_title(f"value {value}")


def test_animate_embeds_one_png_per_frame_offline_and_reproducibly():
    first = viz.animate(draw_line, [1, 2, 3], figsize=(2, 2), dpi=40, summary="three lines")
    again = viz.animate(draw_line, [1, 2, 3], figsize=(2, 2), dpi=40, summary="three lines")
    assert first.num_frames == 3 and repr(first) == "three lines"
    assert first._repr_html_() == again.html                      # stable ids, same bytes
    images = frames_of(first.html)
    assert len(images) == 3 and all(image.size == (80, 80) for image in images)
    assert all(image.mode == "P" for image in images)             # palette PNGs: small
    assert "http" not in first.html and 'class="fa' not in first.html  # no web font, no CDN
    assert '"loop"' in first.html or "value=\"loop\"" in first.html


@pytest.mark.slow
def test_lesson_animations_have_their_frames():
    torch.manual_seed(0)
    images = torch.randn(4, 3, 32, 32)
    masks = torch.rand(4, 3, 4, 4).softmax(dim=1)
    iterations = viz.iterations_animation(images, [masks, masks], scenes=2, dpi=30)
    assert iterations.num_frames == 4 and len(frames_of(iterations.html)) == 4
    slots = viz.slot_masks_animation(images, {"a": masks, "b": masks}, scenes=2, dpi=30)
    assert slots.num_frames == 1 + 3                               # all slots, then one per slot
    decoding = viz.decoding_animation(images[0], side=4, dpi=30)
    assert decoding.num_frames == 1 + 8                            # the paths, then 8 steps
    assert len(frames_of(decoding.html)) == decoding.num_frames


@pytest.mark.parametrize("order_ids", [[0], [0, 8]])
def test_decoding_animation_takes_a_subset_of_orders(order_ids):
    animation = viz.decoding_animation(torch.zeros(3, 32, 32), side=4, order_ids=order_ids, every=8, dpi=30)
    assert animation.num_frames == 1 + 2
