"""The input pipeline's speed: decoding + augmenting training JPEGs, and stage-1 steps with real data.

Used by ``speed.py --sections data`` (and by ``gpu_check.py``'s end-to-end section). Reads a
COCO-like JPEG folder written by `spot_tutorial.data.coco_like` (or a real COCO root):

Sections (e1) and (e2) run with one torch thread in the main process, as in a worker: with two
threads on two busy cores the small tensor ops of the augmentation wait for each other (about 10x
slower when measured on the shared 2-core machine).

(e1) one process, ms per image: decode only, and decode + the training augmentation, per decoder
     (PIL, PIL draft, torchvision's libjpeg-turbo; simplejpeg when it is installed);
(e2) images/s of the training items through the real DataLoader, per `SPOTConfig.decode` and
     number of data-loading processes ('gpu': the loop's batched decode on the device included);
(e3) stage-1 steps/s with the real DataLoader (workers, pin_memory, persistent workers, prefetch)
     against the same step on an in-memory batch.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, RandomSampler

COCO_TRAIN_IMAGES = 118_287


def coco_like_root(count: int = 200, seed: int = 0, root: str | os.PathLike | None = None) -> Path:
    """A COCO-like folder with `count` training images (written once, then reused)."""
    from spot_tutorial.data.coco_like import write_coco_like_folder

    root = Path(root or f"/tmp/spot_coco_like_{count}_{seed}")
    done = root / "train2017" / ".complete"
    if not done.is_file():
        write_coco_like_folder(root, count, seed, split="train")
        done.write_text("written by benchmarks/data_speed.py\n")
    return root


@contextlib.contextmanager
def torch_threads(count: int):
    """Torch's CPU threads set to `count` inside the block (a DataLoader worker has 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def training_set(root: Path, decode: str, image_size: int = 224):
    from spot_tutorial.data import COCO2017

    return COCO2017(root, "train", train=True, image_size=image_size, decode=decode)


def _pil_draft_decode(path: Path, size: int = 224):
    """PIL's reduced-size decode alone (the scale the training reader would choose)."""
    from PIL import Image

    from spot_tutorial.data.transforms import resized_shape

    with Image.open(path) as image:
        height, width = resized_shape(image.height, image.width, size)
        image.draft("RGB", (width, height))
        return image.convert("RGB")


def _decoders(root: Path) -> dict:
    """name -> (decode only(path), decode + training augmentation(path)); the library's readers."""
    from PIL import Image

    from spot_tutorial.data.decode import TrainGeometry, augment_tensors, decode_file, draw_placement

    def pil(path):
        return Image.open(path).convert("RGB")

    decoders = {"pil": (pil, training_set(root, "pil").read_train_image),
                "pil-draft": (_pil_draft_decode, training_set(root, "pil-draft").read_train_image),
                "torchvision": (decode_file, training_set(root, "torchvision").read_train_image)}
    try:
        import numpy as np
        import simplejpeg
    except ImportError:
        return decoders

    def simple(path):
        pixels = simplejpeg.decode_jpeg(Path(path).read_bytes(), colorspace="RGB")  # [H, W, 3]
        return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)

    def simple_augment(path):
        pixels = simple(path)
        placement = draw_placement(*pixels.shape[-2:], TrainGeometry(224))
        return augment_tensors([pixels], [placement], 224)[0]

    decoders["simplejpeg"] = (simple, simple_augment)
    return decoders


def time_single_process(root: Path, images: int = 60) -> dict:
    """(e1) median ms per image in this process: decode only, and decode + augmentation."""
    files = sorted((root / "train2017").glob("*.jpg"))[:images]
    results = {}
    for name, functions in _decoders(root).items():
        row = {}
        for what, function in zip(("decode_ms", "decode_augment_ms"), functions, strict=True):
            times = []
            for path in files:
                start = time.perf_counter()
                function(path)
                times.append(time.perf_counter() - start)
            row[what] = 1e3 * statistics.median(times)
        results[name] = row
    return results


def loader(dataset, batch_size: int, workers: int, device: torch.device, images: int,
           persistent: bool = False, prefetch: int | None = None, seed: int = 0) -> DataLoader:
    """A DataLoader as the Trainer builds it (collate_training, drop_last, pin_memory on CUDA),
    drawing `images` items at random with replacement."""
    from spot_tutorial.data.decode import collate_training

    sampler = RandomSampler(dataset, replacement=True, num_samples=images,
                            generator=torch.Generator().manual_seed(seed))
    extra = {"persistent_workers": persistent, "prefetch_factor": prefetch} if workers else {}
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=device.type == "cuda", drop_last=True, collate_fn=collate_training,
                      **{k: v for k, v in extra.items() if v is not None})


def time_loader(root: Path, decode: str, workers: int, device: torch.device, batch_size: int = 32,
                batches: int = 8) -> dict:
    """(e2) images/s of training batches on `device`, after one untimed batch (worker start-up)."""
    from spot_tutorial.data.decode import images_on_device

    dataset = training_set(root, decode)
    iterator = iter(loader(dataset, batch_size, workers, device, batch_size * (batches + 1)))
    images_on_device(next(iterator)["image"], device)
    sync(device)
    start = time.perf_counter()
    count = 0
    for batch in iterator:
        count += images_on_device(batch["image"], device).shape[0]
    sync(device)
    return {"images_per_s": count / (time.perf_counter() - start), "images": count}


def stage1_step(config_name: str, device: torch.device):
    """The fast stage-1 step of `speed.time_train_step`: (step(images), batch size)."""
    from speed import build_models

    from spot_tutorial.runtime import cpu_has_native_bf16
    from spot_tutorial.training.objective import batch_loss
    from spot_tutorial.training.optimizers import apply_gradients

    config, model, _ = build_models(config_name, 1, True, device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)
    bf16 = device.type == "cuda" or cpu_has_native_bf16()
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def step(images: torch.Tensor) -> None:
        with amp:
            loss, _ = batch_loss(model, images, None, weight=0.0, teacher_on_targets=True)
        apply_gradients(model, optimizer, loss, clip=0.3)
    return step, config.batch_size


def time_end_to_end(config_name: str, root: Path, device: torch.device, variants: list[dict],
                    steps: int = 6) -> dict:
    """(e3) steps/s of the stage-1 step on an in-memory batch and with each loader variant
    (dicts of decode, workers, persistent, prefetch); two untimed steps first."""
    from spot_tutorial.data.decode import images_on_device

    step, batch_size = stage1_step(config_name, device)
    results = {}
    memory = torch.randn(batch_size, 3, 224, 224, device=device)
    for index in range(steps + 2):
        if index == 2:
            sync(device)
            start = time.perf_counter()
        step(memory)
    sync(device)
    results["in-memory"] = {"steps_per_s": steps / (time.perf_counter() - start)}
    for variant in variants:
        dataset = training_set(root, variant["decode"])
        batches = loader(dataset, batch_size, variant["workers"], device, batch_size * (steps + 2),
                         persistent=variant.get("persistent", False), prefetch=variant.get("prefetch"))
        for index, batch in enumerate(batches):
            if index == 2:
                sync(device)
                start = time.perf_counter()
            step(images_on_device(batch["image"], device))
        sync(device)
        results[variant_name(variant)] = {**variant, "steps_per_s": steps / (time.perf_counter() - start)}
    return results


def variant_name(variant: dict) -> str:
    name = f"{variant['decode']}, {variant['workers']} workers"
    if variant.get("persistent"):
        name += ", persistent"
    if variant.get("prefetch"):
        name += f", prefetch {variant['prefetch']}"
    return name


def worker_counts(cores: int | None = None) -> list[int]:
    """0, 1, 2, 4, 8, ... up to the machine's cores (the counts worth timing here)."""
    cores = cores or os.cpu_count() or 1
    return sorted({0, *[n for n in (1, 2, 4, 8, 12, 16) if n <= cores], cores})
