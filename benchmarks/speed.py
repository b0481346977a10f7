"""Speed and memory of SPOT's training step and evaluation: reference math vs the fast path.

A benchmark script, not a test. Prints one table per section and writes JSON to
benchmarks/results/. Each variant runs in its own subprocess so peak memory is its own.

    python benchmarks/speed.py                      # CPU-sized config (ViT-S/16, 224 px, batch 8)
    python benchmarks/speed.py --config coco        # the paper's COCO config (ViT-B/16, batch 64; GPU)
    python benchmarks/speed.py --sections eval metrics
    python benchmarks/speed.py --compile            # also the fast path under torch.compile
    python benchmarks/speed.py --sections tiny --threads 1   # the quickstart's own training steps
    python benchmarks/speed.py --sections data      # the input pipeline on a COCO-like JPEG folder

Reference = what the authors' code does: explicit softmax attention, fp32, plain Adam, the
three encoders of stage 2 run separately, 'all' orders as a Python loop over the nine orders.
Fast = this library's fast path: fused attention (SDPA), bf16 autocast on CUDA (and on CPUs
with native bf16, AVX512-BF16 or AMX: `--cpu-bf16` of `spot train`), fused Adam, teacher under
inference mode, shared frozen encoder blocks in stage 2, the nine orders batched into one
decoder call. The evaluation section runs fp32 on the CPU. The data section (`data_speed.py`)
times the training decoders of `SPOTConfig.decode` and stage-1 steps with the real DataLoader.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

CONFIGS = {
    # ViT-S/16-sized random encoder at 224 px, batch 8: what a laptop CPU can time
    "cpu": dict(which_encoder="vit_small_patch16_224.dino", batch_size=8),
    # the paper's COCO configuration
    "coco": dict(which_encoder="vit_base_patch16_224.dino", batch_size=64),
}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine() -> dict:
    from spot_tutorial.runtime import cpu_has_native_bf16

    info = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
            "processor": _cpu_model(), "cpu_threads": torch.get_num_threads(),
            "cpu_native_bf16": cpu_has_native_bf16()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def build_models(config_name: str, stage: int, fast: bool, device: torch.device):
    from spot_tutorial import SPOT, get_preset
    from spot_tutorial.recipes import student_config

    overrides = dict(CONFIGS[config_name], attention_impl="sdpa" if fast else "math")
    config = get_preset("coco", **overrides)
    teacher = None
    if stage == 2:
        teacher = SPOT.from_config(config).to(device).eval().requires_grad_(False)
        config = student_config(config)
    model = SPOT.from_config(config).to(device)
    if stage == 2:  # student encoders start from the teacher's (same pretrained ViT)
        weights = teacher.encoder.vit.state_dict()
        model.encoder.vit.load_state_dict(weights)
        model.target_encoder.vit.load_state_dict(weights)
    return config, model, teacher


def time_train_step(config_name: str, stage: int, fast: bool, steps: int, device: torch.device,
                    compiled: bool = False) -> dict:
    """Median seconds per optimisation step and peak memory: reference, fast path, or fast
    path with `torch.compile` (its compilation happens in the untimed warm-up steps)."""
    from spot_tutorial.runtime import cpu_has_native_bf16
    from spot_tutorial.training.objective import batch_loss
    from spot_tutorial.training.optimizers import apply_gradients

    config, model, teacher = build_models(config_name, stage, fast, device)
    if compiled:
        model.compile_modules()
    model.share_encoder_blocks = fast  # reference: three separate encoder passes, as the authors do
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-4, **({"fused": True} if fast else {"foreach": False}))
    images = torch.randn(config.batch_size, 3, 224, 224, device=device)
    bf16 = fast and (device.type == "cuda" or cpu_has_native_bf16())  # CPU: SPOTConfig.cpu_bf16
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    times = []
    for index in range(steps + 2):  # two warm-up steps
        sync(device)
        start = time.perf_counter()
        with amp:
            loss, _ = batch_loss(model, images, teacher, weight=5e-3, teacher_on_targets=fast)
        apply_gradients(model, optimizer, loss, clip=0.3)
        sync(device)
        if index >= 2:
            times.append(time.perf_counter() - start)
    return {"step_s": statistics.median(times), "peak_mb": peak_memory_mb(device), "bf16": bf16}


def time_eval(config_name: str, mode: str, batches: int, device: torch.device) -> dict:
    """images/s of a forward pass with 'standard', 'all' (batched) or 'all' as a Python loop."""
    config, model, _ = build_models(config_name, 1, fast=True, device=device)
    model.eval()
    images = torch.randn(config.batch_size, 3, 224, 224, device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    times = []
    with torch.inference_mode(), autocast:
        for index in range(batches + 1):
            sync(device)
            start = time.perf_counter()
            if mode == "all-loop":
                outputs = [model(images, orders=[p]) for p in range(9)]
                torch.stack([o.decoder_masks for o in outputs]).mean(0)
            else:
                model(images, orders=mode)
            sync(device)
            if index:
                times.append(time.perf_counter() - start)
    return {"images_per_s": config.batch_size / statistics.median(times), "peak_mb": peak_memory_mb(device)}


def per_image_metrics(masks: torch.Tensor, target: torch.Tensor, classes: torch.Tensor,
                      ignore: torch.Tensor) -> dict:
    """The baseline: the same metrics the way the authors' code computes them, image by image,
    with one-hot masks and pairwise boolean intersections / unions per image."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    labels = torch.nn.functional.interpolate(masks, size=target.shape[-2:], mode="bilinear").argmax(1)
    ari_values, mbo_i, mbo_c, miou_values = [], [], [], []
    for b in range(labels.shape[0]):
        keep = ~ignore[b].flatten()
        pred = torch.nn.functional.one_hot(labels[b].flatten(), masks.shape[1]).T.bool() & keep  # [K, HW]
        scores = []
        for truth in (target[b], classes[b]):
            gt = torch.nn.functional.one_hot(truth.flatten()).T[1:].bool() & keep                # [M, HW]
            gt = gt[gt.any(1)]
            inter = (pred[:, None] & gt[None]).sum(-1).double()                              # [K, M]
            union = (pred[:, None] | gt[None]).sum(-1).double()
            scores.append((inter / union.clamp(min=1), gt))
        (iou, gt), (iou_c, _) = scores
        if gt.shape[0]:
            mbo_i.append(iou.max(0).values.mean())
            mbo_c.append(iou_c.max(0).values.mean())
            iou_cpu = iou.cpu().numpy()  # scipy's matching runs on the host
            rows, cols = linear_sum_assignment(iou_cpu, maximize=True)
            miou_values.append(float(iou_cpu[rows, cols].sum()) / gt.shape[0])
        fg = gt.T.double()                                                                   # [HW, M]
        table = pred.T.double().T @ fg                                                       # [K, M]
        n = table.sum()
        pairs = lambda x: (x * (x - 1)).sum()  # noqa: E731
        index, a, c = pairs(table), pairs(table.sum(0)), pairs(table.sum(1))
        expected = a * c / max(float(n * (n - 1)), 1.0)
        denominator = (a + c) / 2 - expected
        ari_values.append(1.0 if denominator == 0 else float((index - expected) / denominator))
    return {"fg_ari": float(np.mean(ari_values)), "mbo_i": float(torch.stack(mbo_i).mean()) if mbo_i else 0.0}


def time_metrics(device: torch.device, repeats: int = 3) -> dict:
    """SegmentationMetrics on a batch of 32 at 320x320 vs the per-image loop of `per_image_metrics`."""
    from spot_tutorial.evaluation.metrics import SegmentationMetrics

    generator = torch.Generator().manual_seed(0)
    masks = torch.rand(32, 7, 14, 14, generator=generator).to(device)
    target = torch.randint(0, 11, (32, 320, 320), generator=generator).to(device)
    classes = torch.randint(0, 5, (32, 320, 320), generator=generator).to(device)
    ignore = (torch.rand(32, 320, 320, generator=generator) < 0.02).to(device)

    def batched():
        meter = SegmentationMetrics()
        meter.update(masks, target, classes, ignore)
        return meter.compute()

    result = {}
    for name, function in (("batched", batched),
                           ("per_image_loop", lambda: per_image_metrics(masks, target, classes, ignore))):
        function()
        times = []
        for _ in range(repeats):
            sync(device)
            start = time.perf_counter()
            function()
            sync(device)
            times.append(time.perf_counter() - start)
        result[f"{name}_s"] = statistics.median(times)
    result["speedup"] = result["per_image_loop_s"] / result["batched_s"]
    ours, theirs = batched(), per_image_metrics(masks, target, classes, ignore)
    result["same_numbers"] = abs(ours["mbo_i"] / 100 - theirs["mbo_i"]) < 1e-6 and abs(
        ours["fg_ari"] / 100 - theirs["fg_ari"]) < 1e-6
    return result


def time_tiny_step(stage: int, fast: bool, steps: int = 200, warmup: int = 20,
                   targets: str = "trained-orders") -> dict:
    """The quickstart's own training step on the CPU (the synthetic preset with the quickstart's
    settings: 64 px, depth-0 ViT, 5 slots, teacher batch 16 with 5 iterations, student batch 32
    with 3): median ms over `steps` steps after `warmup` untimed ones (their time is reported).
    `targets`: the stage-2 distillation targets (see `self_training.teacher_target_orders`).

    Reference = the same math written plainly (explicit attention, Adam without fused or foreach
    kernels, the stage-2 teacher running its own encoder); fast = the Trainer's path.
    """
    from spot_tutorial.apps.quickstart import QUICKSTART_STUDENT_SETTINGS, quickstart_config
    from spot_tutorial.recipes import student_config
    from spot_tutorial.training.loop import build_model
    from spot_tutorial.training.objective import batch_loss
    from spot_tutorial.training.optimizers import adam, apply_gradients

    config = quickstart_config(6.0).replace(attention_impl="sdpa" if fast else "math")
    teacher = None
    if stage == 2:
        teacher = build_model(config, pretrained=False).eval().requires_grad_(False)
        config = student_config(config).replace(**QUICKSTART_STUDENT_SETTINGS)
    model = build_model(config, pretrained=False).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = adam(params, config.lr_main) if fast else torch.optim.Adam(params, lr=config.lr_main,
                                                                           foreach=False)
    images = torch.randn(config.batch_size, 3, config.image_size, config.image_size)
    times = []
    for _ in range(warmup + steps):
        start = time.perf_counter()
        loss, _ = batch_loss(model, images, teacher, weight=config.ce_weight, teacher_on_targets=fast,
                             targets=targets)
        apply_gradients(model, optimizer, loss, clip=config.clip)
        times.append(time.perf_counter() - start)
    return {"step_ms": 1e3 * statistics.median(times[warmup:]), "warmup_s": sum(times[:warmup]),
            "batch_size": config.batch_size, "threads": torch.get_num_threads()}


def time_rendering(batch_size: int = 16, batches: int = 50) -> dict:
    """Milliseconds to render one training batch of synthetic scenes (what the data worker does)."""
    from spot_tutorial.data import SyntheticShapes

    dataset = SyntheticShapes(batch_size * batches, 64, seed=0)
    start = time.perf_counter()
    for index in range(len(dataset)):
        dataset[index]
    return {"batch_ms": 1e3 * (time.perf_counter() - start) / batches, "batch_size": batch_size}


# ------------------------------------------------------------------------------------------
def run_variant(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(0)
    kind, *rest = args.variant.split(":")
    if kind == "train":
        stage, impl = int(rest[0]), rest[1]
        return time_train_step(args.config, stage, impl != "reference", args.steps, device,
                               compiled=impl == "compiled")
    if kind == "eval":
        return time_eval(args.config, rest[0], args.steps, device)
    if kind == "tiny":
        targets = rest[2] if len(rest) > 2 else "trained-orders"
        return time_tiny_step(int(rest[0]), rest[1] == "fast", targets=targets)
    if kind == "render":
        return time_rendering()
    return time_metrics(device)


def in_subprocess(args: argparse.Namespace, variant: str) -> dict:
    command = [sys.executable, __file__, "--variant", variant, "--config", args.config,
               "--device", args.device, "--steps", str(args.steps), "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def data_section(args: argparse.Namespace) -> dict:
    """(e) the input pipeline: decoders in one process, through the DataLoader, and end to end."""
    import os

    import data_speed

    device = torch.device(args.device)
    root = Path(args.data_path) if args.data_path else data_speed.coco_like_root(args.data_images)
    workers = args.data_workers or data_speed.worker_counts()
    out = {"root": str(root), "cores": os.cpu_count(), "load_average": os.getloadavg()}
    print(f"\n(e1) decoding training JPEGs in one process (one thread), ms per image ({root})")
    with data_speed.torch_threads(1):
        out["single_process"] = data_speed.time_single_process(root)
    for name, row in out["single_process"].items():
        print(f"  {name:<12} decode {row['decode_ms']:6.2f} ms   decode + augment "
              f"{row['decode_augment_ms']:6.2f} ms")
    print(f"\n(e2) training images/s through the DataLoader (batch 32, one main thread) on {device}")
    decoders = ["pil", "pil-draft", "torchvision", "gpu"]
    print(f"  {'decode':<12}" + "".join(f"{f'{n} workers':>12}" for n in workers))
    out["loader"] = {}
    for decode in decoders:
        with data_speed.torch_threads(1):
            row = {n: data_speed.time_loader(root, decode, n, device) for n in workers}
        out["loader"][decode] = row
        label = decode + (" (nvJPEG)" if decode == "gpu" and device.type == "cuda" else "")
        print(f"  {label:<12}" + "".join(f"{row[n]['images_per_s']:>12.0f}" for n in workers))
    fastest = max(decoders, key=lambda d: max(r["images_per_s"] for r in out["loader"][d].values()))
    most = max(workers)
    variants = [dict(decode="pil", workers=0), dict(decode="pil", workers=most),
                dict(decode=fastest, workers=most), dict(decode=fastest, workers=most, persistent=True,
                                                         prefetch=4)]
    print(f"\n(e3) stage-1 steps/s ({args.config} config, {device}): in-memory batch vs the DataLoader")
    out["end_to_end"] = data_speed.time_end_to_end(args.config, root, device, variants, steps=args.steps)
    memory = out["end_to_end"]["in-memory"]["steps_per_s"]
    for name, row in out["end_to_end"].items():
        ratio = row["steps_per_s"] / memory
        print(f"  {name:<38} {row['steps_per_s']:7.3f} steps/s  ({ratio:.2f}x in-memory)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=5, help="timed steps / batches per variant")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--sections", nargs="+", default=["train", "eval", "metrics"],
                        choices=["train", "eval", "metrics", "tiny", "data"])
    parser.add_argument("--data-path", help="data section: a COCO root (train2017/) instead of the "
                                            "generated COCO-like folder")
    parser.add_argument("--data-images", type=int, default=200,
                        help="data section: images of the generated folder (default 200)")
    parser.add_argument("--data-workers", type=int, nargs="+", default=None,
                        help="data section: DataLoader worker counts (default 0, 1, 2, 4, ... to the cores)")
    parser.add_argument("--compile", action="store_true",
                        help="also time the fast path with torch.compile (train section)")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.variant:
        print(json.dumps(run_variant(args)))
        return

    report = {"config": args.config, "device": args.device, "steps": args.steps, "machine": machine()}
    if "train" in args.sections:
        print(f"\n(a) train step, {args.config} config on {args.device}")
        print(f"{'stage':<7}{'reference s':>13}{'fast s':>9}{'speed-up':>10}{'ref MB':>9}{'fast MB':>9}")
        for stage in (1, 2):
            ref = in_subprocess(args, f"train:{stage}:reference")
            fast = in_subprocess(args, f"train:{stage}:fast")
            report[f"train_stage{stage}"] = {"reference": ref, "fast": fast}
            if "error" in ref or "error" in fast:
                print(f"{stage:<7}failed: {ref.get('error') or fast.get('error')}")
                continue
            speedup = ref['step_s'] / fast['step_s']
            print(f"{stage:<7}{ref['step_s']:>13.3f}{fast['step_s']:>9.3f}{speedup:>9.2f}x"
                  f"{ref['peak_mb']:>9.0f}{fast['peak_mb']:>9.0f}")
            if args.compile:
                compiled = in_subprocess(args, f"train:{stage}:compiled")
                report[f"train_stage{stage}"]["compiled"] = compiled
                if "error" in compiled:
                    print(f"{'':<7}torch.compile failed: {compiled['error']}")
                else:
                    print(f"{'':<7}fast + torch.compile: {compiled['step_s']:.3f} s "
                          f"({ref['step_s'] / compiled['step_s']:.2f}x vs reference), "
                          f"{compiled['peak_mb']:.0f} MB")
    if "eval" in args.sections:
        print(f"\n(b) evaluation forward pass, images/s ({args.config} config, {args.device})")
        modes = {mode: in_subprocess(args, f"eval:{mode}") for mode in ("standard", "all", "all-loop")}
        report["eval"] = modes
        for mode, numbers in modes.items():
            print(f"  {mode:<10} {numbers.get('images_per_s', float('nan')):8.1f} images/s")
        if all("images_per_s" in modes[m] for m in ("all", "all-loop")):
            print(f"  'all' batched vs loop: "
                  f"{modes['all']['images_per_s'] / modes['all-loop']['images_per_s']:.2f}x")
    if "tiny" in args.sections:
        print(f"\n(d) the quickstart's training step (tiny model, CPU, {torch.get_num_threads()} thread(s))")
        report["tiny"] = {f"stage{stage}_{impl}": in_subprocess(args, f"tiny:{stage}:{impl}")
                          for stage in (1, 2) for impl in ("reference", "fast")}
        report["tiny"]["stage2_fast_all_orders"] = in_subprocess(args, "tiny:2:fast:all-orders")
        report["tiny"]["render"] = in_subprocess(args, "render")
        for stage in (1, 2):
            ref, fast = report["tiny"][f"stage{stage}_reference"], report["tiny"][f"stage{stage}_fast"]
            if "error" in ref or "error" in fast:
                print(f"  stage {stage} failed: {ref.get('error') or fast.get('error')}")
                continue
            print(f"  stage {stage}: reference {ref['step_ms']:.1f} ms, fast {fast['step_ms']:.1f} ms "
                  f"({ref['step_ms'] / fast['step_ms']:.2f}x), batch {fast['batch_size']}; "
                  f"warm-up {fast['warmup_s']:.1f} s")
        every = report["tiny"]["stage2_fast_all_orders"]
        if "step_ms" in every and "step_ms" in report["tiny"]["stage2_fast"]:
            print(f"  stage 2 with nine-order-average targets: {every['step_ms']:.1f} ms "
                  f"({every['step_ms'] / report['tiny']['stage2_fast']['step_ms']:.2f}x the paper's targets)")
        print(f"  rendering a batch of 16 scenes: {report['tiny']['render']['batch_ms']:.1f} ms")
    if "data" in args.sections:
        report["data"] = data_section(args)
    if "metrics" in args.sections:
        metrics = in_subprocess(args, "metrics")
        report["metrics"] = metrics
        print(f"\n(c) metrics for a batch of 32 at 320x320: batched {metrics['batched_s'] * 1e3:.0f} ms, "
              f"per-image loop {metrics['per_image_loop_s'] * 1e3:.0f} ms ({metrics['speedup']:.1f}x; "
              f"same numbers: {metrics['same_numbers']})")
    RESULTS.mkdir(exist_ok=True)
    default_sections = args.sections == ["train", "eval", "metrics"]
    suffix = "" if default_sections else "_" + "_".join(args.sections)  # a partial run keeps the full file
    out = RESULTS / f"speed_{args.config}_{args.device}{suffix}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
