"""What an encoder's patch features see: their first three principal components as RGB.

A standard picture for self-supervised ViTs (DINO, DINOv2): project every patch feature of a few
images onto the top three principal components of all of them, and show the projection as
colours on the patch grid. Features that describe objects paint each object in its own colour;
pixel-like features paint by colour alone. Used by the book to compare the CPU tutorial's pixel
encoder ('tiny') with its DINO-pretrained one ('tiny-dino').
"""

from __future__ import annotations

import numpy as np
import torch

from spot_tutorial.viz.masks import finish_grid, overlay, to_rgb


def feature_pca(features: torch.Tensor, within_images: bool = True) -> np.ndarray:
    """Patch features [B, N, D] -> their top-3 principal components, scaled to [0, 1], [B, N, 3].

    `within_images` (default): each image's mean feature is removed first, so the components show
    what varies inside a scene (objects against background), not what tells scenes apart (a
    learned encoder also encodes each scene's palette, which would paint every patch of an image
    alike). False: one centring over all patches.
    """
    batch, count, dim = features.shape
    features = features.double()
    if within_images:
        features = features - features.mean(dim=1, keepdim=True)
    flat = features.reshape(-1, dim)
    centred = flat - flat.mean(0)
    _, _, basis = torch.linalg.svd(centred, full_matrices=False)   # rows: principal directions
    projected = centred @ basis[:3].T                                # [B * N, 3]
    low, high = projected.quantile(0.01, dim=0), projected.quantile(0.99, dim=0)
    scaled = ((projected - low) / (high - low).clamp_min(1e-12)).clamp(0, 1)
    return scaled.reshape(batch, count, 3).float().numpy()


def feature_pca_figure(images: torch.Tensor, features_by_name: dict[str, torch.Tensor],
                       normalized: bool = True, objects: torch.Tensor | None = None):
    """Rows: images; columns: the image, optionally its objects, then the PCA colours of each
    encoder's patch features.

    ``features_by_name``: encoder name -> patch features [B, N, D] of ``images`` (N a square).
    Each encoder gets its own PCA over all the images shown, after removing each image's mean.
    ``objects``: instance label maps [B, H, W] (0 = background) drawn over the image in the
    second column.
    """
    import matplotlib.pyplot as plt

    rgb = to_rgb(images, normalized)
    columns = ["image", *(["objects"] if objects is not None else []), *features_by_name]
    count = images.shape[0]
    fig, axes = plt.subplots(count, len(columns), figsize=(2.0 * len(columns), 2.0 * count),
                             squeeze=False)
    pcas = {name: feature_pca(features) for name, features in features_by_name.items()}
    first = 1 if objects is None else 2
    for row in range(count):
        axes[row, 0].imshow(rgb[row])
        if objects is not None:
            axes[row, 1].imshow(overlay(rgb[row], objects[row].numpy(), alpha=0.7))
        for col, name in enumerate(features_by_name, start=first):
            side = int(round(pcas[name].shape[1] ** 0.5))
            axes[row, col].imshow(pcas[name][row].reshape(side, side, 3), interpolation="nearest")
    return finish_grid(fig, axes, columns, fontsize=9)
