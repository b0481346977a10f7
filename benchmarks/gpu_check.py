"""The prepared GPU check (run it when a GPU machine is lent; under 5 minutes on one H100).

1. CUDA correctness: bf16 autocast vs fp32 and fused attention vs reference math agree on
   the COCO model (tolerances stated below), 'all' orders batched == loop.
2. Stage-1 and stage-2 train-step time and peak memory at the COCO config (ViT-B/16, 7 slots,
   batch 64, random images), reference math (fp32, explicit attention, plain Adam) vs the fast
   path (bf16, SDPA, fused Adam, shared frozen blocks, teacher on the target features).
3. Projected hours for 50 + 50 COCO epochs (118,287 train images, batch 64) from the fast path.
4. End to end (`end_to_end.py`): short stage-1 and stage-2 runs of the Trainer on a generated
   COCO-like JPEG folder through each decoder ('pil' and 'gpu' = nvJPEG by default), with
   images/s, GPU utilisation, the ratio to the compute-only step of 2. and the projected
   50 + 50 COCO hours with data loading included.

    bash benchmarks/gpu_check.sh            # writes benchmarks/results/gpu_check.json
    python benchmarks/gpu_check.py --sections end-to-end --decoders gpu torchvision
    python benchmarks/gpu_check.py --device cpu --sections end-to-end   # CPU rehearsal (tiny model)

Without a CUDA device the CUDA sections are skipped with the reason, and the exit status is 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import RESULTS, machine, time_eval, time_metrics  # noqa: E402

COCO_TRAIN_IMAGES = 118_287
EPOCHS = 50


def check_agreement(device: torch.device) -> dict:
    from spot_tutorial import SPOT, get_preset

    torch.manual_seed(0)
    config = get_preset("coco", init_method="embedding")
    reference = SPOT.from_config(config.replace(attention_impl="math")).to(device).eval()
    fast = SPOT.from_config(config.replace(attention_impl="sdpa")).to(device).eval()
    fast.load_state_dict(reference.state_dict())
    images = torch.randn(8, 3, 224, 224, device=device)
    with torch.inference_mode():
        ref = reference(images, orders="all")
        sdpa = fast(images, orders="all")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = fast(images, orders="all")
        loop = torch.stack([fast(images, orders=[p]).decoder_masks for p in range(9)]).mean(0)

    def max_diff(a, b):
        return float((a.float() - b.float()).abs().max())

    result = {
        "sdpa_vs_math_recon": max_diff(sdpa.reconstruction, ref.reconstruction),
        "sdpa_vs_math_masks": max_diff(sdpa.decoder_masks, ref.decoder_masks),
        "bf16_vs_fp32_masks": max_diff(bf16.decoder_masks, ref.decoder_masks),
        "bf16_vs_fp32_loss_rel": abs(float(bf16.loss) - float(ref.loss)) / float(ref.loss),
        "all_batched_vs_loop_masks": max_diff(sdpa.decoder_masks, loop),
        "argmax_agreement_bf16": float((bf16.decoder_masks.argmax(1) == ref.decoder_masks.argmax(1))
                                       .float().mean()),
    }
    result["pass"] = (result["sdpa_vs_math_masks"] < 1e-3 and result["all_batched_vs_loop_masks"] < 1e-3
                      and result["bf16_vs_fp32_loss_rel"] < 0.05 and result["argmax_agreement_bf16"] > 0.95)
    return result


def train_section(device: torch.device, report: dict) -> None:
    """2. and 3.: train-step times at the COCO config and the projected compute-only hours."""
    from speed import time_train_step

    for stage in (1, 2):
        for impl in ("reference", "fast"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            numbers = time_train_step("coco", stage, impl == "fast", steps=5, device=device)
            report[f"stage{stage}_{impl}"] = numbers
            print(f"stage {stage} {impl:<9}: {numbers['step_s'] * 1e3:7.1f} ms/step, peak "
                  f"{numbers['peak_mb']:.0f} MB")
        speedup = report[f"stage{stage}_reference"]["step_s"] / report[f"stage{stage}_fast"]["step_s"]
        report[f"stage{stage}_speedup"] = speedup
        print(f"stage {stage} speed-up: {speedup:.2f}x")
    try:  # the fast path under torch.compile (stage 1; compilation is in the untimed warm-up)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        report["stage1_compiled"] = time_train_step("coco", 1, True, steps=5, device=device, compiled=True)
        print(f"stage 1 compiled : {report['stage1_compiled']['step_s'] * 1e3:7.1f} ms/step, "
              f"peak {report['stage1_compiled']['peak_mb']:.0f} MB")
    except Exception as error:  # noqa: BLE001 - report and go on with the other checks
        report["stage1_compiled"] = {"error": f"{type(error).__name__}: {error}"[:500]}
        print("stage 1 compiled failed:", report["stage1_compiled"]["error"])
    steps_per_epoch = math.ceil(COCO_TRAIN_IMAGES / 64)
    hours = {f"stage{s}_{impl}_hours": report[f"stage{s}_{impl}"]["step_s"] * steps_per_epoch * EPOCHS / 3600
             for s in (1, 2) for impl in ("reference", "fast")}
    report.update(hours)
    report["projected_50_plus_50_hours_fast"] = hours["stage1_fast_hours"] + hours["stage2_fast_hours"]
    print(f"projected 50+50 COCO epochs (fast path): {report['projected_50_plus_50_hours_fast']:.1f} h "
          f"(reference math: {hours['stage1_reference_hours'] + hours['stage2_reference_hours']:.1f} h); "
          "data loading not included")


def end_to_end_section(device: torch.device, args: argparse.Namespace, report: dict) -> None:
    """4.: the Trainer on JPEGs; each stage's steady images/s against the compute-only step of 2."""
    from end_to_end import end_to_end

    print(f"end to end ({args.e2e_config} config, {device}): {args.e2e_images} generated JPEGs, "
          f"{args.e2e_steps} steps a stage")
    try:
        result = end_to_end(device, args.e2e_config, args.decoders, args.workers, args.e2e_steps,
                            args.e2e_images)
    except Exception as error:  # noqa: BLE001 - report it with what was measured before
        report["end_to_end"] = {"error": f"{type(error).__name__}: {error}"[:1000]}
        print("end to end failed:", report["end_to_end"]["error"])
        return
    for decode in args.decoders:
        for stage in (1, 2):
            compute = report.get(f"stage{stage}_fast", {}).get("step_s")
            steady = result[decode][f"stage{stage}"]["steady_images_per_s"]
            if compute and steady and args.e2e_config == "coco":
                ratio = (64 / compute) / steady  # compute-only images/s over end-to-end images/s
                result[decode][f"stage{stage}"]["slowdown_vs_compute_only"] = ratio
                print(f"  {decode:<12} stage {stage}: {ratio:.2f}x the compute-only step time "
                      f"({'within' if ratio <= 1.3 else 'beyond'} the 1.3x target)")
    report["end_to_end"] = result


SECTIONS = ("agreement", "train", "eval", "metrics", "end-to-end")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default); cpu rehearses end-to-end only")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--decoders", nargs="+", default=["pil", "gpu"],
                        help="end-to-end: SPOTConfig.decode values to run (default pil gpu)")
    parser.add_argument("--workers", type=int, default=None,
                        help="end-to-end: DataLoader workers (default min(cores, 16))")
    parser.add_argument("--e2e-steps", type=int, default=60, help="end-to-end: steps a stage (default 60)")
    parser.add_argument("--e2e-images", type=int, default=256,
                        help="end-to-end: generated JPEGs (default 256)")
    parser.add_argument("--e2e-config", choices=("coco", "tiny"), default=None,
                        help="end-to-end: model config (default coco on CUDA, tiny on the CPU)")
    return parser.parse_args(argv)


def cuda_problem(device: torch.device) -> str | None:
    """Why the CUDA sections cannot run here, or None."""
    if device.type != "cuda":
        return f"--device {device} is not a CUDA device"
    if not torch.cuda.is_available():
        built = torch.version.cuda or "none (a CPU-only build of torch)"
        return (f"torch.cuda.is_available() is False (torch {torch.__version__}, CUDA build {built}, "
                f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')!s})")
    return None


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    problem = cuda_problem(device)
    if problem:  # what can still be checked: the end-to-end path, rehearsed on the CPU
        device = torch.device("cpu")
    args.e2e_config = args.e2e_config or ("coco" if device.type == "cuda" else "tiny")
    report = {"machine": machine(), "sections": args.sections}
    start = time.time()
    if problem:
        cuda_sections = [s for s in args.sections if s != "end-to-end"]
        print(f"gpu_check: no CUDA device: {problem}; skipped: {', '.join(cuda_sections) or 'nothing'}"
              + ("; end-to-end is rehearsed on the CPU (tiny model), not measured" if
                 "end-to-end" in args.sections else ""))
        report["skipped"] = {"sections": cuda_sections, "why": problem}
        args.sections = [s for s in args.sections if s == "end-to-end"]
    if "agreement" in args.sections:
        report["agreement"] = check_agreement(device)
        print("agreement:", json.dumps(report["agreement"], indent=1))
    if "train" in args.sections:
        train_section(device, report)
    if "eval" in args.sections:
        for mode in ("standard", "all", "all-loop"):
            report[f"eval_{mode}"] = time_eval("coco", mode, 3, device)
            print(f"eval {mode:<9}: {report[f'eval_{mode}']['images_per_s']:.0f} images/s")
    save(report)  # what is measured so far
    if "metrics" in args.sections:
        report["metrics"] = time_metrics(device)
        print(f"metrics batch of 32 @320: {report['metrics']['batched_s'] * 1e3:.1f} ms "
              f"({report['metrics']['speedup']:.1f}x vs per-image loop)")
        save(report)
    if "end-to-end" in args.sections:
        end_to_end_section(device, args, report)
    report["wall_s"] = time.time() - start
    save(report)
    print(f"done in {report['wall_s']:.0f} s; written {result_file(report)}")
    return 2 if problem else 0


def result_file(report: dict) -> Path:
    """gpu_check.json for a run with CUDA; a rehearsal without it never overwrites that file."""
    return RESULTS / ("gpu_check_no_cuda.json" if "skipped" in report else "gpu_check.json")


def save(report: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    result_file(report).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.exit(main())
