"""Regime pilots: one short stage-1 run on the camouflage scenes, scored on the VALIDATION scenes.

    python benchmarks/regime_pilot.py --tag c-b1 --variant c_random --blocks 1 \
        --set encoder_final_norm=false [--pos-scale 1.0] [--steps 2000]

A screening tool for the search of the miniature's regime (benchmarks/RESULTS.md, "The miniature
in SPOT's regime"): it trains one variant of `ablation.py` with its camouflage settings and asks
"what if" of the encoder without adding options to the library:

* ``--blocks N`` reads the shipped tiny-dino ViT after its first N blocks (0: the patch and
  position embedding only);
* ``--pos-scale s`` adds a fixed 2-D sin-cos position code times s to the features (SPOT's decoder
  has no position embedding and relies on the features carrying position);
* ``--weights FILE`` loads another tiny-dino safetensors file (with its .sha256 beside it, as
  `pretrain_encoder` writes them) in place of the shipped one;
* ``--set field=json`` changes any SPOTConfig field of the run (``batch_size`` and
  ``train_images`` change the ablation's budget, and so the run's folder).

A stage-2 variant (``e_spot``, ``g_student_no_ce``, ...) self-trains on the teacher of the pilot
named by ``--teacher-tag`` (its checkpoint in /tmp/pilots is reused, or trained first).

Beside slot and decoder mBO^i (raster order and the nine-order average) it scores the cross-attention
of every decoder block and of each head of the last one, in the raster order. One line per run is
appended to ``--out`` (default benchmarks/results/regime/pilots/short/pilots.jsonl).
Checkpoints go to /tmp/pilots. One thread per run; two runs at a time fit 2 cores (~6 min each).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import timm
import torch
from torch.utils.data import DataLoader

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import ablation  # noqa: E402

from spot_tutorial.evaluation.metrics import SegmentationMetrics  # noqa: E402
from spot_tutorial.io.checkpoint_file import load_model  # noqa: E402
from spot_tutorial.model import decoders, encoder  # noqa: E402

WORK_DIR = "/tmp/pilots"


def use_weights(path: Path) -> None:
    """Make 'tiny-dino' load `path` instead of the shipped weights."""
    shipped = encoder.tiny_dino_vit

    def other(image_size: int = 64, path_: Path = path):
        return shipped(image_size, path_)
    encoder.tiny_dino_vit = other


def read_after_blocks(count: int) -> None:
    """Make 'tiny-dino' stop after its first `count` blocks."""
    shipped = encoder.tiny_dino_vit

    def truncated(image_size: int = 64):
        vit = shipped(image_size)
        vit.blocks = vit.blocks[:count]
        return vit
    encoder.tiny_dino_vit = truncated


def add_position_code(scale: float) -> None:
    """Add a fixed 2-D sin-cos position code times `scale` to every encoder's patch features."""
    plain = encoder.ViTEncoder.patch_tokens

    def with_position(self, tokens: torch.Tensor) -> torch.Tensor:
        features = plain(self, tokens)                                      # [B, N, D]
        grid = self.grid_size
        code = timm.layers.build_sincos2d_pos_embed([grid, grid], dim=features.shape[-1])
        return features + scale * code.to(features)
    encoder.ViTEncoder.patch_tokens = with_position


def every_block_attends() -> None:
    """Make the decoder keep the cross-attention of every block in `block_weights` (a diagnostic;
    the library returns only the last block's)."""
    def forward(self, tokens, slots, impl="sdpa"):
        self.block_weights = []
        for block in self.blocks:
            tokens, weights = block(tokens, slots, need_weights=True, impl=impl)
            self.block_weights.append(weights)                            # [B, heads, N, K]
        return self.layer_norm(tokens), self.block_weights[-1]
    decoders.TransformerDecoder.forward = forward


def as_masks(weights: torch.Tensor) -> torch.Tensor:
    """Attention [B, N, K] -> soft masks [B, K, g, g]."""
    count, patches, slots = weights.shape
    grid = int(patches ** 0.5)
    return weights.transpose(1, 2).reshape(count, slots, grid, grid).float()


def block_scores(checkpoint: Path, scenes) -> dict[str, float]:
    """mBO^i of each decoder block's cross-attention, and of each head of the last, raster order."""
    model = load_model(checkpoint, map_location="cpu").eval()
    transformer = model.decoder.transformer
    every_block_attends()
    metrics: dict[str, SegmentationMetrics] = {}
    torch.manual_seed(ablation.EVAL_SEED)
    with torch.no_grad():
        for batch in DataLoader(scenes, batch_size=32):
            model(batch["image"], orders="standard")
            weights = transformer.block_weights
            named = {f"block{b}": w.sum(1) for b, w in enumerate(weights)}
            named.update({f"last_head{h}": weights[-1][:, h] for h in range(weights[-1].shape[1])})
            for name, attention in named.items():
                metrics.setdefault(name, SegmentationMetrics()).update(
                    as_masks(attention), batch["instance_mask"], batch["class_mask"], None)
    return {name: round(float(m.compute()["mbo_i"]), 2) for name, m in metrics.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", required=True, help="the run's name in the output file")
    parser.add_argument("--variant", default="c_random", choices=list(ablation.VARIANTS))
    parser.add_argument("--teacher-tag", default=None,
                        help="stage-2 variants: the pilot whose teacher to use (trained if missing)")
    parser.add_argument("--student-steps", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--blocks", type=int, default=None)
    parser.add_argument("--pos-scale", type=float, default=0.0)
    parser.add_argument("--weights", type=Path, default=None, help="another tiny-dino safetensors file")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=JSON")
    parser.add_argument("--out", default=str(HERE / "results/regime/pilots/short/pilots.jsonl"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.weights is not None:
        use_weights(args.weights)
    if args.blocks is not None:
        read_after_blocks(args.blocks)
    if args.pos_scale:
        add_position_code(args.pos_scale)
    settings = ablation.DATASETS["camouflage"]["config"]
    budget = dict(ablation.FULL_BUDGET, steps=args.steps, student_steps=args.student_steps)
    for item in args.set:  # the budget's fields (batch_size, train_images) go to the budget
        field, value = item.split("=", 1)
        (budget if field in budget else settings)[field] = json.loads(value)
    stage = ablation.VARIANTS[args.variant]["stage"]
    spec = dict(run=f"pilot-{args.tag}", dataset="camouflage", variant=args.variant, seed=args.seed,
                stage=stage, report=True, teacher=None, budget=budget, device="cpu")
    started = time.time()
    teacher_checkpoint = None
    if stage == 2:  # the teacher pilot first (resumed or reused if its checkpoint is there)
        teacher_spec = dict(spec, run=f"pilot-{args.teacher_tag or args.tag + '-teacher'}", stage=1,
                            variant=ablation.VARIANTS[args.variant]["teacher"])
        teacher_checkpoint = ablation.train_stage(teacher_spec, WORK_DIR)[0].last_checkpoint
    result, _ = ablation.train_stage(spec, WORK_DIR, teacher_checkpoint)
    train_seconds = time.time() - started
    _, validation, _ = ablation.datasets_for("camouflage", args.seed, budget, split="validation")
    orders = ("standard",) if args.variant == "a_mlp" else ("standard", "all")
    scores = ablation.evaluate(result.last_checkpoint, validation, 32, orders)
    record = dict(
        tag=args.tag, train_s=round(train_seconds),
        args={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        losses_last=ablation.last_losses(ablation.work_dir_for(spec, WORK_DIR) / "log.jsonl"),
        val={o: {k: scores[o][k]["mbo_i"] for k in ablation.MASK_KINDS} for o in orders},
        val_fgari={o: {k: scores[o][k]["fg_ari"] for k in ablation.MASK_KINDS} for o in orders},
        blocks=block_scores(result.last_checkpoint, validation) if args.variant != "a_mlp" else {},
        teacher=str(teacher_checkpoint) if teacher_checkpoint else None)
    print(json.dumps(record), flush=True)
    with open(args.out, "a") as handle:
        handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
