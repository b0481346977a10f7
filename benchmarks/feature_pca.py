"""The book's picture of what the tutorial's encoders see: PCA of their patch features as RGB.

    python benchmarks/feature_pca.py            # writes book/_static/feature_pca.png

Columns: a camouflage scene, its ground truth, the PCA colours of the pixel encoder ('tiny': a
random patch projection) and of the DINO-pretrained small ViT ('tiny-dino', shipped with the
package), raw and with each grid position's mean feature removed (its fixed position code
dominates the raw components). Runs on the CPU in seconds, offline.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from spot_tutorial.data import SyntheticShapes  # noqa: E402
from spot_tutorial.data.registry import SYNTHETIC_EVAL_SEED, SYNTHETIC_VALIDATION_SEED  # noqa: E402
from spot_tutorial.model.encoder import build_encoder  # noqa: E402
from spot_tutorial.viz.features import feature_pca_figure  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "book" / "_static" / "feature_pca.png"


def position_mean(encoder, count: int = 200) -> torch.Tensor:
    """The mean feature at each grid position over `count` other held-out scenes, [N, D]."""
    scenes = SyntheticShapes(count, 64, difficulty="camouflage", seed=SYNTHETIC_VALIDATION_SEED)
    images = torch.stack([scenes[i]["image"] for i in range(count)])
    return encoder(images).mean(0)


def main(count: int = 5) -> Path:
    scenes = SyntheticShapes(count, 64, difficulty="camouflage", seed=SYNTHETIC_EVAL_SEED)
    items = [scenes[i] for i in range(count)]
    images = torch.stack([item["image"] for item in items])
    with torch.no_grad():
        pixels, vit = (build_encoder(name, 64, final_norm=True) for name in ("tiny", "tiny-dino"))
        features = {"pixels ('tiny')": pixels(images), "ViT ('tiny-dino')": vit(images),
                    # its first components are the fixed position code: remove each position's
                    # mean feature (over 200 other scenes) to see what tells objects apart
                    "ViT, minus position mean": vit(images) - position_mean(vit)}
    objects = torch.stack([item["instance_mask"] for item in items])
    feature_pca_figure(images, features, objects=objects).savefig(OUT, dpi=110)
    return OUT


if __name__ == "__main__":
    print(main())
