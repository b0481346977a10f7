"""Reading training JPEGs fast: the augmentation of ``transforms.train_transform`` on four decoders.

SPOT's training images are resized (shorter side to ``image_size``, bilinear), cropped (centre
crop; random crop for VOC), flipped at random and normalised (``transforms``). At one GPU's speed
that is ~2,300 COCO images a second, more than PIL decodes on a few cores, so `SPOTConfig.decode`
chooses how the same augmentation is computed:

``"pil"``
    the authors' path and the default: PIL decodes, torchvision's PIL transforms augment.
``"pil-draft"``
    PIL's ``Image.draft`` first: libjpeg decodes at 1/2, 1/4 or 1/8 of the size (the largest
    reduction that still covers the resized image), then the same resize, crop and flip.
``"torchvision"``
    ``torchvision.io.decode_jpeg`` (libjpeg-turbo, the same pixels as PIL) on the CPU and the
    resize, crop and flip as tensor ops, in the data-loading processes.
``"gpu"``
    the data-loading processes only read the files and draw the crop and flip; the training loop
    decodes each batch on the training device (`EncodedImages.decode`: batched nvJPEG with
    ``decode_jpeg(device="cuda")``, resize and crop on the GPU). On a CPU device the same code
    decodes on the CPU, which is how it is tested.

Every path draws its crop and flip exactly as torchvision's ``RandomCrop`` and
``RandomHorizontalFlip`` do (same calls, same order, same random stream), so under one seed all
four place every image alike, and the pixels differ only by the decoder and resampler
(torchvision: at most one level of 255 from PIL; draft: about 1.4 levels on average, more at sharp
edges). Files that are not JPEGs (PNGs in your own folder) are read with PIL on every path.
Evaluation never comes here: its images are always read with PIL, pixel for pixel the protocol.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import default_collate

from spot_tutorial.config import DECODERS
from spot_tutorial.data._common import load_rgb
from spot_tutorial.data.transforms import IMAGENET_MEAN, IMAGENET_STD, center_crop_offsets, resized_shape
from spot_tutorial.errors import ConfigError

JPEG_START = b"\xff\xd8"  # every JPEG file begins with these bytes (SOI marker)


@dataclass(frozen=True)
class TrainGeometry:
    """What `train_transform` does to an image's geometry (COCO: centre crop with flips)."""

    image_size: int = 224
    random_crop: bool = False
    center_crop: bool = True
    horizontal_flip: bool = True


@dataclass(frozen=True)
class Placement:
    """One image's draws: its size after resizing, the crop window's corner and the flip."""

    resized: tuple[int, int]  # (height, width) after the resize
    top: int
    left: int
    flip: bool


def draw_placement(height: int, width: int, geometry: TrainGeometry) -> Placement:
    """Resize, crop and flip of a ``height x width`` image, drawn as torchvision's transforms draw them.

    ``T.RandomCrop`` draws ``torch.randint`` for the top, then the left, unless the image is
    exactly the crop; ``T.RandomHorizontalFlip`` then draws ``torch.rand(1) < 0.5``.
    """
    size = geometry.image_size
    if not (geometry.random_crop or geometry.center_crop):
        resized, top, left = (size, size), 0, 0  # MOVi style: straight to a square
    else:
        resized = resized_shape(height, width, size)
        if geometry.random_crop:
            top = left = 0
            if resized != (size, size):
                top = int(torch.randint(0, resized[0] - size + 1, size=(1,)).item())
                left = int(torch.randint(0, resized[1] - size + 1, size=(1,)).item())
        else:
            top, left = center_crop_offsets(*resized, size)
    flip = bool(torch.rand(1) < 0.5) if geometry.horizontal_flip else False
    return Placement(resized, top, left, flip)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """Pixel values 0..255 [..., 3, H, W] -> float32 normalised with the ImageNet mean and std."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD, device=images.device).view(3, 1, 1) * 255.0
    return (images.float() - mean) / std


def resize(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear, antialiased resize of uint8 images [N, 3, H, W] -> float32 [N, 3, height, width].

    On the CPU it resizes the uint8 values (PIL's algorithm and rounding, at most one level off);
    on a GPU, which has no uint8 kernel for it, the float values (within half a level of PIL).
    """
    if images.shape[-2:] == (height, width):
        return images.float()
    values = images if images.device.type == "cpu" else images.float()
    out = F.interpolate(values, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return out.float()


def place(resized: torch.Tensor, placement: Placement, size: int) -> torch.Tensor:
    """Crop (and flip) one resized image [3, h, w] to [3, size, size]."""
    top, left = placement.top, placement.left
    window = resized[:, top:top + size, left:left + size]
    return window.flip(-1) if placement.flip else window


def augment_tensors(images: Sequence[torch.Tensor], placements: Sequence[Placement],
                    size: int) -> torch.Tensor:
    """Decoded uint8 images [3, H_i, W_i] -> the normalised training batch [B, 3, size, size].

    Images of one size and one resized size are resized together (COCO: mostly 640x480).
    """
    out = torch.empty(len(images), 3, size, size, device=images[0].device)
    groups: dict[tuple, list[int]] = {}
    for index, (image, placement) in enumerate(zip(images, placements, strict=True)):
        groups.setdefault((*image.shape[-2:], *placement.resized), []).append(index)
    for (_, _, height, width), members in groups.items():
        resized = resize(torch.stack([images[i] for i in members]), height, width)  # [n, 3, h, w]
        for row, index in enumerate(members):
            out[index] = place(resized[row], placements[index], size)
    return normalize(out)


def _file_tensor(path: Path) -> torch.Tensor:
    """The bytes of a file as a uint8 tensor [n]."""
    return torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)


def _pil_pixels(path: Path) -> torch.Tensor:
    """uint8 [3, H, W] read with PIL (non-JPEG files; the clear errors of `load_rgb`)."""
    return torch.from_numpy(np.array(load_rgb(path))).permute(2, 0, 1).contiguous()


def decode_file(path: Path) -> torch.Tensor:
    """uint8 [3, H, W]: a JPEG with torchvision's decoder (as RGB), any other file with PIL."""
    from torchvision.io import ImageReadMode, decode_jpeg

    data = _file_tensor(path)
    if bytes(data[:2]) != JPEG_START:
        return _pil_pixels(path)
    try:
        return decode_jpeg(data, mode=ImageReadMode.RGB)
    except RuntimeError:  # a file libjpeg-turbo refuses: PIL decodes it or says what is wrong
        return _pil_pixels(path)


@dataclass
class EncodedImage:
    """One training image as the data-loading process hands it over for ``decode='gpu'``:
    the JPEG file's bytes (or, for a non-JPEG file, its decoded pixels) and its drawn placement."""

    data: torch.Tensor          # uint8 [n] file bytes, or uint8 [3, H, W] pixels when not encoded
    placement: Placement
    image_size: int

    @property
    def encoded(self) -> bool:
        return self.data.ndim == 1


@dataclass
class EncodedImages:
    """A batch of `EncodedImage`; `decode(device)` makes the normalised training batch [B, 3, S, S]."""

    items: list[EncodedImage]

    def __len__(self) -> int:
        return len(self.items)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        size = self.items[0].image_size
        return (len(self.items), 3, size, size)

    def pin_memory(self) -> "EncodedImages":
        """The DataLoader's ``pin_memory=True`` leaves the file bytes as they are (nvJPEG reads them
        from ordinary host memory)."""
        return self

    def decode(self, device: Union[str, torch.device]) -> torch.Tensor:
        """Decode on `device` (batched nvJPEG on CUDA), then resize, crop, flip and normalise there."""
        device = torch.device(device)
        pixels = decode_batch([item.data for item in self.items if item.encoded], device)
        queue = iter(pixels)
        images = [next(queue) if item.encoded else item.data.to(device, non_blocking=True)
                  for item in self.items]
        return augment_tensors(images, [item.placement for item in self.items], self.items[0].image_size)


def decode_batch(files: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """JPEG file bytes -> uint8 images [3, H, W] on `device`, decoded in one call there.

    If the batched decoder refuses the batch (nvJPEG does not take every JPEG), each file is
    decoded on the CPU and moved to `device` instead.
    """
    from torchvision.io import ImageReadMode, decode_jpeg

    if not files:
        return []
    try:
        return list(decode_jpeg(files, mode=ImageReadMode.RGB, device=device))
    except RuntimeError as error:
        warnings.warn(f"decode='gpu': the batched JPEG decoder on {device} refused a batch ({error}); "
                      "decoding it on the CPU instead, which is slower. If this repeats, train with "
                      "decode='torchvision' (--decode torchvision)", RuntimeWarning, stacklevel=2)
        return [decode_jpeg(data, mode=ImageReadMode.RGB).to(device) for data in files]


class TrainImageReader:
    """path -> a training image: normalised float32 [3, S, S], or an `EncodedImage` (``decode='gpu'``).

    ``pil_transform`` is the dataset's `train_transform`, which ``decode='pil'`` applies to the
    PIL image as before; the other decoders apply the same `geometry` themselves.
    """

    def __init__(self, decode: str, geometry: TrainGeometry,
                 pil_transform: Callable[[Image.Image], torch.Tensor]) -> None:
        if decode not in DECODERS:
            raise ConfigError(f"decode={decode!r}; choose one of {DECODERS}")
        self.decode, self.geometry, self.pil_transform = decode, geometry, pil_transform

    def __call__(self, path: Path) -> Union[torch.Tensor, EncodedImage]:
        size = self.geometry.image_size
        if self.decode == "pil":
            return self.pil_transform(load_rgb(path))
        if self.decode == "torchvision":
            pixels = decode_file(path)  # [3, H, W] uint8
            placement = draw_placement(*pixels.shape[-2:], self.geometry)
            return augment_tensors([pixels], [placement], size)[0]
        if self.decode == "gpu":
            return self._encoded(path)
        return self._pil_draft(path)

    def _pil_draft(self, path: Path) -> torch.Tensor:
        """PIL decodes at the smallest JPEG scale (1/8, 1/4, 1/2, 1) still covering the resized image."""
        try:
            with Image.open(path) as image:
                placement = draw_placement(image.height, image.width, self.geometry)
                height, width = placement.resized
                if image.format == "JPEG":
                    image.draft("RGB", (width, height))  # libjpeg scales while decoding
                rgb = image.convert("RGB")
        except (OSError, SyntaxError, ValueError):
            load_rgb(path)  # raises the clear error of the default path
            raise
        resized = rgb.resize((width, height), Image.BILINEAR)
        pixels = torch.from_numpy(np.array(resized)).permute(2, 0, 1)  # [3, h, w] uint8
        return normalize(place(pixels, placement, self.geometry.image_size))

    def _encoded(self, path: Path) -> EncodedImage:
        data = _file_tensor(path)
        if bytes(data[:2]) == JPEG_START:
            with Image.open(io.BytesIO(data.numpy().tobytes())) as image:  # the header only
                width, height = image.size
        else:
            data = _pil_pixels(path)
            height, width = data.shape[-2:]
        return EncodedImage(data, draw_placement(height, width, self.geometry), self.geometry.image_size)


def collate_training(items: list[dict]) -> dict:
    """The DataLoader's collate for training items: `default_collate`, except that images handed
    over encoded (``decode='gpu'``) become one `EncodedImages` batch."""
    if not items or not isinstance(items[0].get("image"), EncodedImage):
        return default_collate(items)
    rest = [{key: value for key, value in item.items() if key != "image"} for item in items]
    batch = default_collate(rest) if rest[0] else {}
    return {**batch, "image": EncodedImages([item["image"] for item in items])}


def images_on_device(images: Union[torch.Tensor, EncodedImages], device: torch.device) -> torch.Tensor:
    """A batch's images [B, 3, S, S] on `device`: moved there, or decoded there (``decode='gpu'``)."""
    if isinstance(images, EncodedImages):
        return images.decode(device)
    return images.to(device, non_blocking=True)


def train_image_reader(decode: str, image_size: int, random_crop: bool, center_crop: bool,
                       pil_transform: Callable[[Image.Image], torch.Tensor]) -> TrainImageReader:
    """The reader of a JPEG dataset's training images (COCO, VOC, your own folder)."""
    return TrainImageReader(decode, TrainGeometry(image_size, random_crop, center_crop), pil_transform)
