"""End-to-end training speed with data loading: short stage-1 and stage-2 runs of the real Trainer on
a generated COCO-like JPEG folder, per decoder, with the GPU's utilisation and the projected hours
of 50 + 50 COCO epochs (118,287 images an epoch) data included.

The GPU check (`gpu_check.py`) runs it on CUDA at the COCO config. It needs no network and no
pycocotools: the folder is written by `spot_tutorial.data.coco_like`, the training set is
`COCO2017(train=True)` (image files only), the evaluation set an `ImageFolder` without masks
(figures only), and the ViT-B starts from random weights written to a local file.

    python benchmarks/end_to_end.py --device cpu --config tiny --steps 6   # CPU rehearsal
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
from pathlib import Path

import torch
from torch.utils.data import Subset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_speed import COCO_TRAIN_IMAGES, coco_like_root  # noqa: E402

EPOCHS = 50
# The configurations: the paper's COCO one (GPU), and the tutorials' tiny one for a CPU rehearsal.
CONFIGS = {"coco": dict(batch_size=64), "tiny": dict(which_encoder="tiny", image_size=64, num_slots=5,
                                                     slot_size=64, mlp_hidden_size=128, num_dec_blocks=1,
                                                     num_heads=4, batch_size=16)}


class UtilisationSampler:
    """GPU utilisation (%) sampled every `interval` s in a thread: torch.cuda.utilization() (needs
    pynvml) or else ``nvidia-smi``; `summary()` gives the mean and the source, or why there is none."""

    def __init__(self, device: torch.device, interval: float = 0.25) -> None:
        self.device, self.interval = device, interval
        self.samples: list[float] = []
        self.source, self.problem = None, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> float:
        if self.source in (None, "torch.cuda.utilization"):
            try:
                value = float(torch.cuda.utilization(self.device))
                self.source = "torch.cuda.utilization"
                return value
            except Exception as error:  # noqa: BLE001 - pynvml missing: try nvidia-smi
                if self.source is not None:
                    raise
                self.problem = f"torch.cuda.utilization: {error}"
        index = self.device.index or 0
        done = subprocess.run(["nvidia-smi", f"--id={index}", "--query-gpu=utilization.gpu",
                               "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5)
        self.source = "nvidia-smi"
        return float(done.stdout.strip().splitlines()[0])

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self._read())
            except Exception as error:  # noqa: BLE001 - no utilisation available: say why, stop
                reason = f"{type(error).__name__}: {error}"
                self.problem, self.source = f"{self.problem or ''} {reason}".strip(), None
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> "UtilisationSampler":
        if self.device.type == "cuda":
            self._thread.start()
        else:
            self.problem = "not a CUDA device"
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def summary(self) -> dict:
        if not self.samples:
            return {"gpu_utilisation_pct": None, "why_none": self.problem or "no samples"}
        skip = len(self.samples) // 5  # the first fifth is start-up
        return {"gpu_utilisation_pct": statistics.mean(self.samples[skip:] or self.samples),
                "samples": len(self.samples), "source": self.source}


def random_encoder_weights(config, folder: Path) -> str | None:
    """A local file of random ViT weights, so the Trainer downloads nothing (None for 'tiny')."""
    if config.which_encoder == "tiny":
        return None
    import timm
    from safetensors.torch import save_file

    path = folder / "random_vit.safetensors"
    if not path.is_file():
        vit = timm.create_model(config.which_encoder, pretrained=False, img_size=config.image_size)
        save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(path))
    return str(path)


def datasets(root: Path, decode: str, image_size: int, images: int):
    """(training set repeated to `images` items, evaluation images without masks)."""
    from spot_tutorial.data import COCO2017, ImageFolder

    train = COCO2017(root, "train", train=True, image_size=image_size, decode=decode)
    repeated = Subset(train, [i % len(train) for i in range(images)])
    return repeated, ImageFolder(root / "train2017", image_size=image_size)


def steady_images_per_s(log: Path) -> float | None:
    """Median images/s of the logged training windows after the first two (start-up, warm-up)."""
    values = [r["images_per_s"] for r in map(json.loads, log.read_text().splitlines())
              if r.get("kind") == "train" and "images_per_s" in r]
    steady = values[2:] or values[1:]
    return statistics.median(steady) if steady else None


def run_stage(stage: int, config, root: Path, out: Path, device: torch.device, weights: str | None,
              teacher: Path | None = None) -> dict:
    """One short run of the Trainer; images/s in steady state, over the whole fit, GPU utilisation."""
    from spot_tutorial.training.loop import Trainer

    pair = datasets(root, config.decode, config.image_size, config.batch_size * (config.max_steps + 1))
    trainer = Trainer(config, stage=stage, output_dir=out, teacher=teacher, device=str(device),
                      overwrite=True, progress=False, encoder_weights=weights, datasets=pair)
    with UtilisationSampler(device) as sampler:
        result = trainer.fit()
    return {"steps": result.steps, "fit_images_per_s": result.images_per_second,
            "steady_images_per_s": steady_images_per_s(out / "log.jsonl"), **sampler.summary()}


def end_to_end(device: torch.device, config_name: str = "coco", decoders=("pil", "gpu"),
               workers: int | None = None, steps: int = 60, images: int = 256,
               work_dir: str | os.PathLike = "/tmp/spot_end_to_end") -> dict:
    """Stage 1 then stage 2 per decoder; projected 50 + 50 COCO epochs (hours) from steady images/s."""
    from spot_tutorial import get_preset
    from spot_tutorial.config import NO_LIMIT
    from spot_tutorial.recipes import student_config

    work = Path(work_dir)
    root = coco_like_root(images, root=work / f"coco_like_{images}")
    workers = min(os.cpu_count() or 1, 16) if workers is None else workers
    base = get_preset("coco", **CONFIGS[config_name], num_workers=workers, max_steps=steps, log_every=10,
                      eval_every=NO_LIMIT, checkpoint_every=0, lr_warmup_steps=10)
    weights = random_encoder_weights(base, work)
    report = {"images": images, "workers": workers, "steps": steps, "config": config_name}
    for decode in decoders:
        config = base.replace(decode=decode)
        runs = work / decode
        shutil.rmtree(runs, ignore_errors=True)
        first = run_stage(1, config, root, runs / "stage1", device, weights)
        second = run_stage(2, student_config(config), root, runs / "stage2", device, None,
                           teacher=runs / "stage1" / "last.pt")
        hours = {f"stage{s}_hours": EPOCHS * COCO_TRAIN_IMAGES / r["steady_images_per_s"] / 3600
                 for s, r in ((1, first), (2, second)) if r["steady_images_per_s"]}
        report[decode] = {"stage1": first, "stage2": second, **hours,
                          "projected_50_plus_50_hours": sum(hours.values()) if len(hours) == 2 else None}
        print_row(decode, report[decode])
    return report


def print_row(decode: str, row: dict) -> None:
    for stage in ("stage1", "stage2"):
        r = row[stage]
        use = "n/a" if r["gpu_utilisation_pct"] is None else f"{r['gpu_utilisation_pct']:.0f} %"
        steady = r["steady_images_per_s"] or float("nan")
        print(f"  {decode:<12} {stage}: {steady:8.0f} images/s steady ({r['fit_images_per_s']:.0f} over "
              f"the whole fit), GPU utilisation {use}" + (f" ({r.get('why_none')})" if use == "n/a" else ""))
    if row["projected_50_plus_50_hours"] is not None:
        print(f"  {decode:<12} projected 50 + 50 COCO epochs with data loading: "
              f"{row['projected_50_plus_50_hours']:.2f} h")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--config", choices=sorted(CONFIGS), default="coco")
    parser.add_argument("--decoders", nargs="+", default=["pil", "gpu"])
    parser.add_argument("--workers", type=int, default=None, help="default: min(cores, 16)")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--images", type=int, default=256, help="JPEGs in the generated folder")
    args = parser.parse_args()
    report = end_to_end(torch.device(args.device), args.config, args.decoders, args.workers, args.steps,
                        args.images)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
