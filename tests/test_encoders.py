import time

import pytest
import timm
import torch

from spot_tutorial.model.encoder import ENCODER_NAMES, OfflineError, ViTEncoder, build_encoder, create_vit


@pytest.mark.parametrize("name, image_size, prefix", [
    ("vit_small_patch8_224.dino", 32, 1),
    ("vit_small_patch14_reg4_dinov2", 28, 5),   # CLS + 4 registers are dropped
])
def test_patch_tokens_drop_prefix_tokens_and_skip_the_final_norm(name, image_size, prefix):
    vit = timm.create_model(name, pretrained=False, img_size=image_size, num_classes=0)
    images = torch.randn(2, 3, image_size, image_size)
    grid = image_size // vit.patch_embed.patch_size[0]
    plain = ViTEncoder(vit, final_norm=False)(images)
    normed = ViTEncoder(vit, final_norm=True)(images)
    assert plain.shape == normed.shape == (2, grid * grid, vit.embed_dim)
    with torch.no_grad():
        full = vit.forward_features(images)  # includes the final norm and prefix tokens
    assert full.shape[1] == grid * grid + prefix
    torch.testing.assert_close(normed, full[:, prefix:])
    torch.testing.assert_close(vit.norm(plain), normed)


def test_missing_timm_position_step_is_a_clear_error(monkeypatch):
    encoder = build_encoder("vit_small_patch8_224.dino", 32)
    monkeypatch.delattr(timm.models.vision_transformer.VisionTransformer, "_pos_embed")
    with pytest.raises(RuntimeError, match="_pos_embed.*install a timm release"):
        encoder(torch.randn(1, 3, 32, 32))


@pytest.mark.parametrize("alias", sorted(ENCODER_NAMES))
def test_every_named_encoder_is_a_pretrained_timm_model(alias):
    assert ENCODER_NAMES[alias] in timm.list_pretrained(ENCODER_NAMES[alias])


@pytest.mark.parametrize("name, image_size, grid", [("dinov2_vitb14_reg", 56, 4), ("mae_vitb16", 32, 2)])
def test_named_encoders_build_offline_with_random_weights(name, image_size, grid):
    encoder = build_encoder(name, image_size=image_size, pretrained=False)
    assert encoder.grid_size == grid and encoder.is_frozen
    assert encoder(torch.randn(1, 3, image_size, image_size)).shape == (1, grid * grid, 768)


def test_partial_finetuning_and_eval_mode():
    vit = timm.create_model("vit_small_patch8_224.dino", pretrained=False, img_size=32, num_classes=0)
    encoder = ViTEncoder(vit, finetune_blocks_after=8)
    trainable = {n.split(".")[1] for n, p in encoder.vit.named_parameters() if p.requires_grad}
    assert trainable == {"8", "9", "10", "11"}
    assert not encoder.vit.pos_embed.requires_grad and not encoder.vit.norm.weight.requires_grad
    encoder.train()
    assert not encoder.training and not any(m.training for m in encoder.modules())


def test_wrong_image_size_is_a_clear_error():
    encoder = build_encoder("tiny", image_size=64)
    with pytest.raises(ValueError, match="built for 64x64"):
        encoder(torch.randn(1, 3, 96, 96))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        encoder(torch.randn(1, 64, 64))


def test_tiny_encoder_has_fixed_sincos_positions():
    encoder = build_encoder("tiny", image_size=64, pos_embed_scale=0.5)
    assert encoder.grid_size == 8 and len(encoder.vit.blocks) == 0 and encoder.embed_dim == 64
    positions = encoder.vit.pos_embed[0, 1:]
    assert positions.abs().max() <= 0.5 + 1e-6 and positions.std() > 0.1


def test_offline_pretrained_request_fails_fast_with_both_options(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # empty cache
    start = time.monotonic()
    with pytest.raises(OfflineError) as error:
        create_vit("vit_small_patch8_224.dino", image_size=224, pretrained=True)
    assert time.monotonic() - start < 20
    assert "weights_path" in str(error.value) and "internet" in str(error.value)


def test_local_weights_file(tmp_path):
    source = timm.create_model("vit_small_patch8_224.dino", pretrained=False, num_classes=0)
    path = tmp_path / "dino_vits8.pth"
    torch.save({"teacher": {f"backbone.{k}": v for k, v in source.state_dict().items()}}, path)
    encoder = build_encoder("vit_small_patch8_224.dino", weights_path=path)
    torch.testing.assert_close(encoder.vit.blocks[3].attn.qkv.weight, source.blocks[3].attn.qkv.weight)
    with pytest.raises(FileNotFoundError, match="not found"):
        build_encoder("vit_small_patch8_224.dino", weights_path=tmp_path / "missing.pth")
