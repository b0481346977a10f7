"""How much object structure an encoder's patch features carry, before any slot is trained.

    python benchmarks/feature_probe.py [--scenes 200] [--difficulty camouflage]

For each encoder and each depth of its blocks, k-means (K clusters, scipy) groups the 8x8 patch
features of every validation scene (not the test scenes, so a choice made here is fair); the
clusters, upsampled to pixels, are scored against the exact instance masks with the library's
mBO^i and FG-ARI. A probe of features, not of SPOT: it tells which encoder and which block give
slot attention something to group. CPU, seconds.

Beside the clusters, `variance_shares` splits the features' variance: the share that varies
*within* an image (the rest is one vector per image, which says nothing about where the objects
are), and of that, the share that the ground-truth segments explain (R^2 of a per-segment mean);
`position_r2`: how much of each patch's grid position a linear map reads from its feature.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F
from scipy.cluster.vq import kmeans2

from spot_tutorial.data import SyntheticShapes
from spot_tutorial.data.registry import SYNTHETIC_VALIDATION_SEED
from spot_tutorial.evaluation.metrics import fg_ari, mbo
from spot_tutorial.model.encoder import build_encoder


def cluster_labels(features: torch.Tensor, clusters: int, seed: int) -> torch.Tensor:
    """k-means on each image's patch features [B, N, D] -> labels [B, g, g]."""
    grid = int(features.shape[1] ** 0.5)
    labels = []
    for image_features in features:
        x = F.normalize(image_features, dim=-1).double().numpy()
        _, label = kmeans2(x, clusters, minit="++", seed=np.random.default_rng(seed), iter=20)
        labels.append(torch.from_numpy(label).view(grid, grid))
    return torch.stack(labels)


def probe(features: torch.Tensor, objects: torch.Tensor, clusters: int, seed: int = 0) -> dict:
    labels = cluster_labels(features, clusters, seed)
    pixels = F.interpolate(labels[:, None].float(), size=objects.shape[-2:], mode="nearest")[:, 0].long()
    return {"mbo_i": 100 * mbo(pixels, objects).nanmean().item(),
            "fg_ari": 100 * fg_ari(pixels, objects).mean().item()}


def variance_shares(features: torch.Tensor, objects: torch.Tensor) -> dict:
    """{'within_image': share of the variance of features [B, N, D] around each image's mean,
    'segment_r2': share of that within-image variance explained by the instance masks [B, H, W]
    (each patch labelled by the object at its centre)}, both in %."""
    grid = int(features.shape[1] ** 0.5)
    labels = F.interpolate(objects[:, None].float(), size=(grid, grid), mode="nearest").long().flatten(1)
    total = (features - features.mean(dim=(0, 1), keepdim=True)).pow(2).sum()
    within_image = (features - features.mean(dim=1, keepdim=True)).pow(2).sum()
    within_segment = sum((image[labels[b] == k] - image[labels[b] == k].mean(0)).pow(2).sum()
                         for b, image in enumerate(features) for k in labels[b].unique())
    return {"within_image": round(100 * float(within_image / total), 1),
            "segment_r2": round(100 * float(1 - within_segment / within_image), 1)}


def position_r2(features: torch.Tensor) -> float:
    """How well a linear map reads each patch's grid position (x, y) from its feature [B, N, D]:
    R^2 on the second half of the images, fitted on the first half, in % (mean of x and y).
    SPOT's decoder adds no position embedding; it relies on the features carrying position."""
    count, patches, dim = features.shape
    grid = int(patches ** 0.5)
    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    position = torch.stack([xs.flatten(), ys.flatten()], -1).float().repeat(count, 1)  # [B*N, 2]
    inputs = torch.cat([features.reshape(-1, dim).float(), torch.ones(count * patches, 1)], 1)
    half = (count // 2) * patches
    weights = torch.linalg.lstsq(inputs[:half], position[:half]).solution
    residual = (inputs[half:] @ weights - position[half:]).pow(2).sum(0)
    total = (position[half:] - position[half:].mean(0)).pow(2).sum(0)
    return round(100 * float((1 - residual / total).mean()), 1)


def measure(features: torch.Tensor, objects: torch.Tensor, clusters: int) -> dict:
    return {**probe(features, objects, clusters), **variance_shares(features, objects),
            "position_r2": position_r2(features)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--difficulty", default="camouflage")
    parser.add_argument("--clusters", type=int, default=7)
    parser.add_argument("--weights", default=None, help="another tiny-dino safetensors file")
    args = parser.parse_args()
    scenes = SyntheticShapes(args.scenes, 64, difficulty=args.difficulty, seed=SYNTHETIC_VALIDATION_SEED)
    items = [scenes[i] for i in range(args.scenes)]
    images = torch.stack([item["image"] for item in items])
    objects = torch.stack([item["instance_mask"] for item in items])
    rows = []
    torch.manual_seed(0)  # the pixel encoder's random projection
    with torch.no_grad():
        pixel = build_encoder("tiny", 64)
        rows.append({"encoder": "tiny", "blocks": 0, **measure(pixel(images), objects, args.clusters)})
        dino = build_encoder("tiny-dino", 64, weights_path=args.weights)
        tokens = dino.embed(images)
        for depth in range(len(dino.vit.blocks) + 1):
            if depth:
                tokens = dino.vit.blocks[depth - 1](tokens)
            patches = tokens[:, dino.vit.num_prefix_tokens:]
            rows.append({"encoder": "tiny-dino", "blocks": depth, **measure(patches, objects, args.clusters)})
        normed = dino.vit.norm(tokens)[:, dino.vit.num_prefix_tokens:]
        rows.append({"encoder": "tiny-dino+norm", "blocks": depth, **measure(normed, objects, args.clusters)})
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
