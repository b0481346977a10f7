"""The prepared GPU check (run it when a GPU machine is lent; under 5 minutes on one H100).

1. CUDA correctness: bf16 autocast vs fp32 and fused attention vs reference math agree on
   the COCO model (tolerances stated below), 'all' orders batched == loop.
2. Stage-1 and stage-2 train-step time and peak memory at the COCO config (ViT-B/16, 7 slots,
   batch 64, random images), reference math (fp32, explicit attention, plain Adam) vs the fast
   path (bf16, SDPA, fused Adam, shared frozen blocks, teacher on the target features).
3. Projected hours for 50 + 50 COCO epochs (118,287 train images, batch 64) from the fast path.

    bash benchmarks/gpu_check.sh            # writes benchmarks/results/gpu_check.json
"""

from __future__ import annotations

import json
import math
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
        ref = reference(images, permutations="all")
        sdpa = fast(images, permutations="all")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = fast(images, permutations="all")
        loop = torch.stack([fast(images, permutations=[p]).decoder_masks for p in range(9)]).mean(0)

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


def main() -> None:
    from speed import time_train_step

    device = torch.device("cuda")
    report = {"machine": machine()}
    start = time.time()
    report["agreement"] = check_agreement(device)
    print("agreement:", json.dumps(report["agreement"], indent=1))
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
    for mode in ("standard", "all", "all-loop"):
        report[f"eval_{mode}"] = time_eval("coco", mode, 3, device)
        print(f"eval {mode:<9}: {report[f'eval_{mode}']['images_per_s']:.0f} images/s")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gpu_check.json").write_text(json.dumps(report, indent=2))  # what is measured so far
    report["metrics"] = time_metrics(device)
    print(f"metrics batch of 32 @320: {report['metrics']['batched_s'] * 1e3:.1f} ms "
          f"({report['metrics']['speedup']:.1f}x vs per-image loop)")
    report["wall_s"] = time.time() - start
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gpu_check.json").write_text(json.dumps(report, indent=2))
    print(f"done in {report['wall_s']:.0f} s; written {RESULTS / 'gpu_check.json'}")


if __name__ == "__main__":
    main()
