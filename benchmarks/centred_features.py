"""Diagnostic (not the paper): a camouflage ablation variant trained on tiny-dino features with each
scene's mean feature removed, for slot attention's inputs and the reconstruction targets alike.

    PYTHONPATH=. python benchmarks/centred_features.py [VARIANT] [STEPS]   # default c_random 8000

It tests whether the per-scene component that holds most of the features' variance
(`feature_probe.py`) keeps the decoders from routing patches through single slots. Runs the
ablation's own training and evaluation (validation and test scenes) with the encoder's output
centred per scene; results in benchmarks/results/regime/pilots/.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import ablation  # noqa: E402

from spot_tutorial.model import encoder as encoder_module  # noqa: E402

ENCODER_FORWARD = encoder_module.ViTEncoder.forward


def centred_forward(self, images):
    tokens = ENCODER_FORWARD(self, images)   # [B, N, D]
    return tokens - tokens.mean(dim=1, keepdim=True)


def main() -> None:
    encoder_module.ViTEncoder.forward = centred_forward
    variant = sys.argv[1] if len(sys.argv) > 1 else "c_random"
    budget = dict(ablation.FULL_BUDGET, steps=int(sys.argv[2]) if len(sys.argv) > 2 else 8000)
    runs = HERE / "results" / "regime" / "pilots" / "centred"
    for spec in ablation.plan_runs(["camouflage"], [0], budget, [variant]):
        record = ablation.run_one(spec, str(runs), "outputs/centred_features")
        for split in ("validation_results", "results"):
            for order, metrics in record[split].items():
                if isinstance(metrics, dict) and "slot" in metrics:
                    print(split, order, f"slot {metrics['slot']['mbo_i']:.1f} "
                          f"decoder {metrics['decoder']['mbo_i']:.1f} (mBO^i)")


if __name__ == "__main__":
    main()
