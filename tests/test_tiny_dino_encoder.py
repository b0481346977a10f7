"""The DINO-pretrained small ViT ships with the package: its checksum holds, it loads with no
network, and a damaged copy is refused."""

import hashlib
import json
import shutil
import socket

import pytest
import torch
from safetensors import safe_open

from spot_tutorial.errors import CheckpointError
from spot_tutorial.model.encoder import TINY_DINO_WEIGHTS, build_encoder, tiny_dino_vit


def test_the_shipped_weights_match_their_checksum_and_recipe():
    digest = TINY_DINO_WEIGHTS.with_suffix(".sha256").read_text().split()[0]
    assert hashlib.sha256(TINY_DINO_WEIGHTS.read_bytes()).hexdigest() == digest
    assert TINY_DINO_WEIGHTS.stat().st_size <= 5 * 2**20
    with safe_open(str(TINY_DINO_WEIGHTS), "pt") as weights:
        recipe = json.loads(weights.metadata()["recipe"])
    assert recipe["difficulty"] == "camouflage" and recipe["image_size"] == 64


def test_it_loads_offline_and_gives_patch_features(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoder = build_encoder("tiny-dino", 64)
    assert encoder.is_frozen
    features = encoder(torch.randn(2, 3, 64, 64))
    assert features.shape == (2, 64, encoder.vit.embed_dim) and torch.isfinite(features).all()
    again = build_encoder("tiny-dino", 64)
    assert torch.equal(again(torch.ones(1, 3, 64, 64)), encoder(torch.ones(1, 3, 64, 64)))


def test_a_damaged_or_unchecked_copy_is_refused(tmp_path):
    copy = tmp_path / "tiny_dino.safetensors"
    shutil.copy(TINY_DINO_WEIGHTS, copy)
    with pytest.raises(CheckpointError, match="checksum"):
        tiny_dino_vit(64, copy)  # no .sha256 beside it
    shutil.copy(TINY_DINO_WEIGHTS.with_suffix(".sha256"), copy.with_suffix(".sha256"))
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged or was replaced"):
        tiny_dino_vit(64, copy)
