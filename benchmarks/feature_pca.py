"""The book's picture of what the tutorial's encoders see: PCA of their patch features as RGB.

    python benchmarks/feature_pca.py            # writes book/_static/feature_pca.png

Columns: a camouflage scene, its ground truth, the PCA colours of the pixel encoder ('tiny': a
random patch projection) and of the DINO-pretrained small ViT ('tiny-dino', shipped with the
package). Runs on the CPU in seconds, offline.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from spot_tutorial.data import SyntheticShapes  # noqa: E402
from spot_tutorial.data.registry import SYNTHETIC_EVAL_SEED  # noqa: E402
from spot_tutorial.model.encoder import build_encoder  # noqa: E402
from spot_tutorial.viz.features import feature_pca_figure  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "book" / "_static" / "feature_pca.png"


def main(count: int = 5) -> Path:
    scenes = SyntheticShapes(count, 64, difficulty="camouflage", seed=SYNTHETIC_EVAL_SEED)
    items = [scenes[i] for i in range(count)]
    images = torch.stack([item["image"] for item in items])
    with torch.no_grad():
        encoders = (("pixels ('tiny')", "tiny"), ("DINO + iBOT ViT ('tiny-dino')", "tiny-dino"))
        features = {label: build_encoder(name, 64, final_norm=True)(images)
                    for label, name in encoders}
    objects = torch.stack([item["instance_mask"] for item in items])
    feature_pca_figure(images, features, objects=objects).savefig(OUT, dpi=110)
    return OUT


if __name__ == "__main__":
    print(main())
