"""Frozen encoder features computed once, for the CPU miniature's training (an engineering step).

In stage 1 the encoder is frozen (paper, section 4: DINO's ViT is not trained), so the patch
features of a training image never change: every epoch recomputes the same numbers. On two CPU
cores the encoder's forward pass is about half of a teacher step with the tutorial's 4-block ViT.
`FeatureCache` runs the encoder once over a dataset and returns ``{"image", "features"}`` items,
both from memory (a dataset that renders its scenes on every access has its images kept too, so
no step renders them again); the training step hands the features to
``SPOT(images, features=...)``, which skips the encoder and computes the rest as before. Only for
an encoder that stays frozen (the tutorial's student, whose small ViT has no block past
`finetune_blocks_after`, too); a model that trains encoder blocks refuses cached features.
A cache handed to a second run whose frozen encoder has the same weights is used as it is.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from spot_tutorial.config import SPOTConfig
from spot_tutorial.errors import ConfigError


class FeatureCache(Dataset):
    """A dataset's items with the frozen `encoder`'s patch features of each image added.

    Args:
        dataset: items with ``"image"`` [3, S, S] (as the encoder expects them, normalised).
        encoder: the model's frozen encoder (`SPOT.encoder`); run in eval mode, no gradients.
        batch_size: images per encoder call while the cache is filled.

    Memory: images x patches x width x 4 bytes (10,000 scenes, 64 patches, width 128: 330 MB),
    and for a dataset without ``in_memory = True`` (`data.RenderedScenes` has it) its images as
    given, float32 (10,000 at 64 px: 490 MB).
    """

    def __init__(self, dataset: Dataset, encoder: nn.Module, batch_size: int = 256) -> None:
        if any(p.requires_grad for p in encoder.parameters()):
            raise ConfigError("FeatureCache needs a frozen encoder: this one trains some of its blocks, "
                              "so its features change during training; train on images instead")
        self.dataset = dataset
        device = next(encoder.parameters()).device
        keep_images = not getattr(dataset, "in_memory", False)
        parts, kept = [], []
        with torch.no_grad():
            for start in range(0, len(dataset), batch_size):
                stop = min(start + batch_size, len(dataset))
                images = torch.stack([dataset[i]["image"] for i in range(start, stop)])  # [b, 3, S, S]
                parts.append(encoder(images.to(device)).float().cpu())     # [b, N, D]
                if keep_images:
                    kept.append(images)
        self.features = torch.cat(parts) if parts else torch.empty(0)     # [len, N, D]
        self.images = torch.cat(kept) if kept else None                   # [len, 3, S, S] or None
        self.encoder_state = {name: value.detach().cpu().clone()
                              for name, value in encoder.state_dict().items()}

    def computed_by(self, encoder: nn.Module) -> bool:
        """Whether `encoder` has exactly the weights these features were computed with."""
        state = encoder.state_dict()
        return state.keys() == self.encoder_state.keys() and all(
            torch.equal(state[name].detach().cpu(), value) for name, value in self.encoder_state.items())

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = self.dataset[index]["image"] if self.images is None else self.images[index]
        return {"image": image, "features": self.features[index]}


def cached_features(train_set: Dataset, encoder: nn.Module, config: SPOTConfig) -> FeatureCache:
    """`config.cache_features`: the training set with its features, where that is exact."""
    if config.dataset != "synthetic":
        raise ConfigError(f"cache_features needs training images that are the same every epoch (the "
                          f"built-in scenes); {config.dataset!r} crops and flips them at random: "
                          "leave --cache-features off")
    if isinstance(train_set, FeatureCache):  # e.g. the quickstart's student reading the teacher's cache
        if train_set.computed_by(encoder):
            return train_set
        train_set = train_set.dataset
    return FeatureCache(train_set, encoder)
