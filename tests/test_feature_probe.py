"""benchmarks/feature_probe.py's measures of an encoder's features, on features built to know the answer."""

import importlib.util
from pathlib import Path

import timm
import torch

ROOT = Path(__file__).resolve().parents[1]


def load_probe():
    spec = importlib.util.spec_from_file_location("feature_probe", ROOT / "benchmarks" / "feature_probe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_position_r2_reads_a_position_code_and_not_noise():
    probe = load_probe()
    torch.manual_seed(0)
    noise = torch.randn(20, 64, 32)                                           # [B, N, D]
    code = timm.layers.build_sincos2d_pos_embed([8, 8], dim=32)               # [N, D]
    assert probe.position_r2(noise) < 5.0
    assert probe.position_r2(noise + 3 * code) > 60.0   # a sin-cos code is not linear in x, y
    assert probe.position_r2(noise + 3 * code) > probe.position_r2(noise + 0.3 * code)


def test_variance_shares_split_scene_and_object_components():
    probe = load_probe()
    torch.manual_seed(0)
    objects = torch.zeros(10, 64, 64, dtype=torch.long)
    objects[:, :32] = 1                                                       # top half: object 1
    labels = torch.nn.functional.interpolate(objects[:, None].float(), size=(8, 8)).long().flatten(1)
    per_object = torch.randn(10, 2, 16).gather(1, labels[..., None].expand(-1, -1, 16))  # [B, N, D]
    per_scene = 10 * torch.randn(10, 1, 16)
    shares = probe.variance_shares(per_object + per_scene, objects)
    assert shares["within_image"] < 20.0          # the scene vector holds most of the variance
    assert shares["segment_r2"] > 99.0            # and what varies inside a scene is the objects
