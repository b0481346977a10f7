"""A built-in procedural multi-object dataset for the CPU tutorial (not part of the paper).

SPOT's datasets (COCO, VOC, MOVi) need large downloads and a GPU. ``SyntheticShapes`` renders
small scenes of coloured shapes with numpy instead, so that every lesson can train and evaluate
object discovery in minutes on a laptop, with exact ground truth in the same item format as the
real datasets (instance, class and ignore masks).

Every item is generated from a numpy ``Generator`` seeded by ``(seed, index)``: item ``i`` is the
same on every call, in every process and every DataLoader worker, and nothing is stored.

Difficulty levels:

* ``"shapes"``: plain dark background, 2-4 flat-coloured shapes, no or light overlap;
* ``"textured"``: striped, noisy background and striped / checkered noisy shapes;
* ``"occluded"``: up to 6 shapes packed in the centre with heavy overlap;
* ``"camouflage"``: 3-6 shapes that colour alone cannot segment. Each scene draws a palette of
  four colours; the background and every object are painted in two of them, so an object's
  colours also appear in the background and in other objects. What sets an object apart is its
  own pattern (stripes of its own angle and frequency, checks or dots), a shading gradient across
  it, and its outline; shapes may overlap partly.

Shapes are painted in order, later ones occlude earlier ones; an object left with (almost) no
visible pixels is removed from the scene before painting.
"""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from spot_tutorial.data.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_mask_transform
from spot_tutorial.errors import DatasetError

SHAPES = ("circle", "square", "triangle", "ellipse", "diamond")  # class ids 1..5
DIFFICULTIES = ("shapes", "textured", "occluded", "camouflage")
DEFAULT_MAX_OBJECTS = {"shapes": 4, "textured": 4, "occluded": 6, "camouflage": 6}
DEFAULT_MIN_OBJECTS = {"shapes": 2, "textured": 2, "occluded": 2, "camouflage": 3}
PALETTE_SIZE = 4  # colours per camouflage scene, shared by the background and the objects

SIZE_RANGE = (0.22, 0.47)      # object extent as a fraction of the image side (14-30 px at 64)
MIN_VISIBLE_FRACTION = 0.2     # objects showing less of their own area than this are dropped
_PLACEMENT_TRIES = 30


# ----------------------------------------------------------------------------
# Geometry
def shape_mask(kind: str, xs: np.ndarray, ys: np.ndarray, cx: float, cy: float,
               radius: float, angle: float, aspect: float) -> np.ndarray:
    """Boolean mask of one shape on the pixel-centre grids ``xs``, ``ys`` [H, W].

    ``radius`` is half the shape's extent, ``angle`` its rotation (radians) and ``aspect`` the
    ratio of minor to major axis (used by ellipses and diamonds).
    """
    dx, dy = xs - cx, ys - cy
    u = np.cos(angle) * dx + np.sin(angle) * dy    # coordinates in the shape's frame
    v = -np.sin(angle) * dx + np.cos(angle) * dy
    if kind == "circle":
        return u * u + v * v <= radius * radius
    if kind == "square":
        half = radius / np.sqrt(2.0) * 1.15        # a bit larger than inscribed in the circle
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    if kind == "triangle":                         # equilateral, circumradius = radius
        inside = np.ones_like(u, dtype=bool)
        for vertex_angle in (-np.pi / 2, np.pi / 6, 5 * np.pi / 6):
            # the edge opposite each vertex lies at distance radius/2 on the other side
            inside &= -(np.cos(vertex_angle) * u + np.sin(vertex_angle) * v) <= radius / 2
        return inside
    if kind == "ellipse":
        return (u / radius) ** 2 + (v / (aspect * radius)) ** 2 <= 1.0
    if kind == "diamond":
        return np.abs(u) / radius + np.abs(v) / (aspect * radius) <= 1.0
    raise DatasetError(f"unknown shape {kind!r}; choose one of {SHAPES}")


def _place_objects(rng: np.random.Generator, count: int, size: int, packed: bool,
                   spread_gap: float = 0.85) -> list[tuple[float, float, float]]:
    """Centres and radii (cx, cy, r) in pixels.

    ``packed=False``: centres kept apart so shapes overlap lightly at most (a shape that does not
    fit shrinks, and is skipped if it still does not fit). ``packed=True``: centres in the middle
    half of the image, so shapes overlap heavily. ``spread_gap`` is the smallest distance between
    two centres of spread shapes, as a fraction of the sum of their radii (below 1: partial overlap).
    """
    placed: list[tuple[float, float, float]] = []
    for _ in range(count):
        radius = rng.uniform(*SIZE_RANGE) * size / 2
        for _attempt in range(_PLACEMENT_TRIES):
            if packed:
                cx, cy = rng.uniform(0.25 * size, 0.75 * size, 2)
                min_gap = 0.3
            else:
                cx, cy = rng.uniform(radius, size - radius, 2)
                min_gap = spread_gap
            if all(np.hypot(cx - x, cy - y) >= min_gap * (radius + r) for x, y, r in placed):
                placed.append((float(cx), float(cy), float(radius)))
                break
            radius = max(radius * 0.93, SIZE_RANGE[0] * size / 2)
    return placed


def _paint_order_labels(masks: np.ndarray) -> np.ndarray:
    """Label map [H, W]: 0 = background, k = the k-th mask (later masks occlude earlier ones)."""
    labels = np.zeros(masks.shape[1:], dtype=np.int64)
    for k, mask in enumerate(masks, start=1):
        labels[mask] = k
    return labels


def visible_objects(masks: np.ndarray, min_fraction: float = MIN_VISIBLE_FRACTION) -> np.ndarray:
    """Indices of the masks [n, H, W] that stay visible enough after painting all of them."""
    labels = _paint_order_labels(masks)
    visible = np.bincount(labels.ravel(), minlength=len(masks) + 1)[1:]
    area = masks.reshape(len(masks), -1).sum(axis=1)
    return np.flatnonzero((visible > 0) & (visible >= min_fraction * area))


# ----------------------------------------------------------------------------
# Colour and texture
def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB for arrays [..., 3] with values in [0, 1]."""
    h, s, v = hsv[..., 0] * 6.0, hsv[..., 1], hsv[..., 2]
    i = np.floor(h).astype(int) % 6
    f = h - np.floor(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    rgb = np.zeros(hsv.shape, dtype=np.float64)
    for k, channels in enumerate(choices):
        rgb[i == k] = np.stack(channels, axis=-1)[i == k]
    return rgb


def _object_colours(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` bright, saturated RGB colours with well separated hues [count, 3]."""
    hues = (rng.random() + np.arange(count) / max(count, 1)
            + rng.uniform(-0.25, 0.25, count) / max(count, 1)) % 1.0
    hsv = np.stack([rng.permutation(hues), rng.uniform(0.55, 1.0, count),
                    rng.uniform(0.7, 1.0, count)], axis=-1)
    return hsv_to_rgb(hsv)


def _stripes(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray, size: int,
             frequency: tuple[float, float]) -> np.ndarray:
    """A random oriented sinusoidal stripe pattern in [0, 1] on the grid."""
    angle, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
    freq = rng.uniform(*frequency)
    return 0.5 + 0.5 * np.sin(2 * np.pi * freq * (np.cos(angle) * xs + np.sin(angle) * ys) / size + phase)


def _checker(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray, size: int) -> np.ndarray:
    """A checkerboard pattern in {0, 1} with random cell size and offset."""
    cell = rng.uniform(0.06, 0.12) * size
    ox, oy = rng.uniform(0, cell, 2)
    return ((np.floor((xs + ox) / cell) + np.floor((ys + oy) / cell)) % 2).astype(np.float64)


def _background(rng: np.random.Generator, xs, ys, size: int, textured: bool) -> np.ndarray:
    """Background RGB [H, W, 3]: dark uniform, or dark striped with noise."""
    hsv = np.array([rng.random(), rng.uniform(0.0, 0.5), rng.uniform(0.05, 0.3)])
    base = hsv_to_rgb(hsv)
    if not textured:
        return np.broadcast_to(base, (size, size, 3)).copy()
    second = hsv_to_rgb(np.array([rng.random(), rng.uniform(0.2, 0.6), rng.uniform(0.25, 0.5)]))
    stripes = _stripes(rng, xs, ys, size, (2.0, 6.0))[..., None]
    noise = rng.normal(0.0, 0.06, (size, size, 3))
    return base * (1 - stripes) + second * stripes + noise


def _object_texture(rng: np.random.Generator, colour: np.ndarray, xs, ys, size: int) -> np.ndarray:
    """A textured RGB field [H, W, 3] around ``colour``: stripes or checks plus noise."""
    pattern = _stripes(rng, xs, ys, size, (4.0, 10.0)) if rng.random() < 0.5 else _checker(rng, xs, ys, size)
    shade = 0.7 + 0.3 * pattern[..., None]
    return colour * shade + rng.normal(0.0, 0.04, (size, size, 3))


def _dots(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray, size: int) -> np.ndarray:
    """A grid of round dots in {0, 1} with random spacing, radius and offset."""
    spacing = rng.uniform(0.08, 0.14) * size
    ox, oy = rng.uniform(0, spacing, 2)
    u = (xs + ox) % spacing - spacing / 2
    v = (ys + oy) % spacing - spacing / 2
    return (np.hypot(u, v) <= rng.uniform(0.25, 0.4) * spacing).astype(np.float64)


def _palette(rng: np.random.Generator) -> np.ndarray:
    """The camouflage scene's colours [PALETTE_SIZE, 3]: separated hues, mixed brightness."""
    hues = (rng.random() + np.arange(PALETTE_SIZE) / PALETTE_SIZE) % 1.0
    hsv = np.stack([rng.permutation(hues), rng.uniform(0.4, 0.9, PALETTE_SIZE),
                    rng.uniform(0.35, 0.95, PALETTE_SIZE)], axis=-1)
    return hsv_to_rgb(hsv)


def _two_colour_field(rng: np.random.Generator, palette: np.ndarray, pair: np.ndarray, kind: str,
                      xs, ys, size: int) -> np.ndarray:
    """Palette colours ``pair`` mixed by a ``kind`` pattern, with a linear shading [H, W, 3]."""
    if kind == "stripes":
        pattern = _stripes(rng, xs, ys, size, (3.0, 9.0))
    elif kind == "checks":
        pattern = _checker(rng, xs, ys, size)
    else:
        pattern = _dots(rng, xs, ys, size)
    angle = rng.uniform(0, 2 * np.pi)
    light = (np.cos(angle) * (xs - size / 2) + np.sin(angle) * (ys - size / 2)) / size
    shade = 1.0 + rng.uniform(0.3, 0.6) * light[..., None]
    first, second = palette[pair]
    field = first * (1 - pattern[..., None]) + second * pattern[..., None]
    return field * shade + rng.normal(0.0, 0.03, (size, size, 3))


def _camouflage_pair(rng: np.random.Generator, background_pair: np.ndarray) -> np.ndarray:
    """Two palette indices for an object: one may be a background colour, not both."""
    while True:
        pair = rng.choice(PALETTE_SIZE, 2, replace=False)
        if set(pair.tolist()) != set(background_pair.tolist()):
            return pair


PATTERNS = ("stripes", "checks", "dots")


# ----------------------------------------------------------------------------
class SyntheticShapes(Dataset):
    """Procedural scenes of coloured shapes with exact instance and class masks.

    Args:
        num_images: dataset length.
        image_size: side of the square images (64 for the tutorial's tiny model).
        difficulty: ``"shapes"``, ``"textured"``, ``"occluded"`` or ``"camouflage"`` (see the
            module docstring).
        min_objects, max_objects: number of shapes drawn per image; ``None`` uses the
            difficulty's default (2-4, 2-4, 2-6 and 3-6). Shapes that do not fit (``shapes``/``textured``)
            or end up hidden are dropped, so an image may show fewer.
        seed: dataset seed; item ``i`` comes from ``numpy.random.default_rng([seed, i])``.
        normalize: True applies the ImageNet mean/std normalisation (as for the real datasets);
            False returns images in [0, 1].
        mask_size: side of the masks (default: ``image_size``); resized with nearest neighbours.

    Items: ``image`` float [3, S, S], ``instance_mask`` int64 [M, M] (0 = background, 1..n in
    paint order), ``class_mask`` int64 [M, M] (shape type, ids in ``class_names``),
    ``ignore_mask`` bool [M, M] (all False).
    """

    class_names = ["background", *SHAPES]
    num_classes = len(SHAPES)

    def __init__(self, num_images: int = 1000, image_size: int = 64, difficulty: str = "shapes",
                 min_objects: Optional[int] = None, max_objects: Optional[int] = None, seed: int = 0,
                 normalize: bool = True, mask_size: Optional[int] = None) -> None:
        if difficulty not in DIFFICULTIES:
            raise DatasetError(f"unknown difficulty {difficulty!r}; choose one of "
                             + ", ".join(repr(d) for d in DIFFICULTIES))
        max_objects = DEFAULT_MAX_OBJECTS[difficulty] if max_objects is None else max_objects
        min_objects = DEFAULT_MIN_OBJECTS[difficulty] if min_objects is None else min_objects
        if not 1 <= min_objects <= max_objects:
            raise DatasetError(f"need 1 <= min_objects <= max_objects, got min_objects={min_objects}, "
                             f"max_objects={max_objects}")
        if num_images < 0:
            raise DatasetError(f"num_images must be >= 0, got {num_images}")
        if image_size < 16:
            raise DatasetError(f"image_size must be at least 16 pixels, got {image_size}")
        if seed < 0:
            raise DatasetError(f"seed must be a non-negative integer, got {seed}")
        self.num_images = num_images
        self.image_size = image_size
        self.difficulty = difficulty
        self.min_objects = min_objects
        self.max_objects = max_objects
        self.seed = seed
        self.normalize = normalize
        self.mask_size = image_size if mask_size is None else mask_size
        self._mask_transform = (None if self.mask_size == image_size
                                else eval_mask_transform(self.mask_size, center_crop=False))
        coords = np.arange(image_size, dtype=np.float64) + 0.5   # pixel centres
        self._xs, self._ys = np.meshgrid(coords, coords)
        self._mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return self.num_images

    def render(self, index: int) -> dict[str, np.ndarray]:
        """Item ``index`` as numpy arrays at ``image_size``: ``image`` float32 [S, S, 3] in
        [0, 1], ``instance_mask`` and ``class_mask`` int64 [S, S]."""
        rng = np.random.default_rng([self.seed, index])
        size, xs, ys = self.image_size, self._xs, self._ys
        textured = self.difficulty == "textured"
        count = int(rng.integers(self.min_objects, self.max_objects + 1))
        camouflage = self.difficulty == "camouflage"
        placed = _place_objects(rng, count, size, packed=self.difficulty == "occluded",
                                spread_gap=0.6 if camouflage else 0.85)
        kinds = rng.integers(0, len(SHAPES), len(placed))
        masks = np.stack([
            shape_mask(SHAPES[kind], xs, ys, cx, cy, radius, rng.uniform(0, 2 * np.pi),
                       rng.uniform(0.5, 0.75))
            for kind, (cx, cy, radius) in zip(kinds, placed, strict=False)
        ]) if placed else np.zeros((0, size, size), dtype=bool)
        keep = visible_objects(masks)
        masks, kinds = masks[keep], kinds[keep]
        instance = _paint_order_labels(masks)
        classes = np.concatenate([[0], kinds + 1])[instance]

        if camouflage:
            image = self._paint_camouflage(rng, instance, len(masks))
            return {"image": np.clip(image, 0.0, 1.0).astype(np.float32),
                    "instance_mask": instance, "class_mask": classes.astype(np.int64)}
        image = _background(rng, xs, ys, size, textured)
        for k, colour in enumerate(_object_colours(rng, len(masks)), start=1):
            region = instance == k
            if textured:
                image[region] = _object_texture(rng, colour, xs, ys, size)[region]
            else:
                image[region] = colour
        return {"image": np.clip(image, 0.0, 1.0).astype(np.float32),
                "instance_mask": instance, "class_mask": classes.astype(np.int64)}

    def _paint_camouflage(self, rng: np.random.Generator, instance: np.ndarray,
                          count: int) -> np.ndarray:
        """Background and objects in colours of one palette, told apart by pattern and shading.

        An object never repeats the background's pair of colours nor its kind of pattern, so it
        is always visible, but each of its colours may be in the background or in other objects.
        """
        xs, ys, size = self._xs, self._ys, self.image_size
        palette = _palette(rng)
        background_pair = rng.choice(PALETTE_SIZE, 2, replace=False)
        background_kind = PATTERNS[int(rng.integers(2))]  # stripes or checks
        image = _two_colour_field(rng, palette, background_pair, background_kind, xs, ys, size)
        object_kinds = [kind for kind in PATTERNS if kind != background_kind]
        for k in range(1, count + 1):
            pair = _camouflage_pair(rng, background_pair)
            kind = object_kinds[int(rng.integers(len(object_kinds)))]
            region = instance == k
            image[region] = _two_colour_field(rng, palette, pair, kind, xs, ys, size)[region]
        return image

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -self.num_images <= index < self.num_images:
            raise IndexError(f"index {index} out of range for SyntheticShapes of length {self.num_images}")
        scene = self.render(index % self.num_images)
        image = torch.from_numpy(scene["image"]).permute(2, 0, 1).contiguous()
        if self.normalize:
            image = (image - self._mean) / self._std
        instance = torch.from_numpy(scene["instance_mask"])
        classes = torch.from_numpy(scene["class_mask"])
        if self._mask_transform is not None:
            instance, classes = self._mask_transform(instance), self._mask_transform(classes)
        return {"image": image, "instance_mask": instance, "class_mask": classes,
                "ignore_mask": torch.zeros_like(instance, dtype=torch.bool)}


def _render_pixels(scenes: SyntheticShapes, start: int, stop: int) -> np.ndarray:
    """Scenes start..stop-1 as 8-bit RGB [stop - start, 3, S, S], with numpy alone."""
    size = scenes.image_size
    pixels = np.empty((stop - start, 3, size, size), dtype=np.uint8)
    for offset, index in enumerate(range(start, stop)):
        image = scenes.render(index)["image"]                                       # [S, S, 3] in [0, 1]
        pixels[offset] = np.rint(image * 255.0).astype(np.uint8).transpose(2, 0, 1)
    return pixels


# The scenes that forked rendering processes draw, set by the parent just before it forks them:
# the children inherit them, so no tensor is pickled to them and they run no torch operation.
# (Once the parent has used torch's CPU thread pool, a torch operation in a forked child can wait
# forever for threads that were not forked: a second quickstart in one process hung that way.)
_FORKED_SCENES: Optional[SyntheticShapes] = None


def _render_forked(start: int, stop: int) -> np.ndarray:
    return _render_pixels(_FORKED_SCENES, start, stop)


class RenderedScenes(Dataset):
    """The training images of a `SyntheticShapes`, rendered once and kept in memory as 8-bit RGB.

    Rendering a scene costs about 0.5 ms on one core; a training run reads each scene ten times
    or more. Rendering all of them up front (10,000 scenes at 64 px: about 5 s and 123 MB) frees
    the core that a data-loading process would spend re-rendering them, so the model can use it.
    The images are those of `scenes`, rounded to 8 bits per channel like any stored photo (at most
    half a grey level, 0.5 / 255, from the rendered values). Items: ``{"image": float [3, S, S]}``,
    normalised as `scenes` normalises.
    """

    in_memory = True  # read by training.feature_cache: nothing to render again

    def __init__(self, scenes: SyntheticShapes, workers: int = 1) -> None:
        """`workers` > 1 renders in that many processes (each scene is drawn from its own seed,
        so the pixels are the same for any count; worth it for camouflage scenes, 4 ms each)."""
        if workers < 1:
            raise ValueError(f"RenderedScenes needs workers >= 1, got {workers}")
        self.scenes = scenes
        # forked processes (Linux) need no `if __name__ == "__main__"` guard in the caller's script;
        # where fork is not the safe default (macOS, Windows) the scenes render in this process
        if workers == 1 or len(scenes) < 2 * workers or not sys.platform.startswith("linux"):
            self.pixels = torch.from_numpy(_render_pixels(scenes, 0, len(scenes)))   # [N, 3, S, S]
            return
        global _FORKED_SCENES
        bounds = np.linspace(0, len(scenes), workers + 1).astype(int)
        _FORKED_SCENES = scenes
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
                parts = list(pool.map(_render_forked, bounds[:-1], bounds[1:]))
        finally:
            _FORKED_SCENES = None
        self.pixels = torch.from_numpy(np.concatenate(parts))                          # [N, 3, S, S]

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = self.pixels[index].float() / 255.0                                   # [3, S, S]
        if self.scenes.normalize:
            image = (image - self.scenes._mean) / self.scenes._std
        return {"image": image}
