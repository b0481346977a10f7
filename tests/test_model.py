import itertools

import pytest
import timm
import torch
from conftest import tiny_model

from spot_tutorial import SPOT, SPOTConfig, get_preset

OPTIONS = list(itertools.product(["shared_gaussian", "embedding"], ["bi-level", "fixed-point", "none"], [1,
                                                                                                         2]))


@pytest.mark.parametrize("init, truncate, heads", OPTIONS)
def test_output_shapes_for_every_option(init, truncate, heads):
    model = tiny_model(init_method=init, truncate=truncate, slot_att_heads=heads)
    out = model(torch.randn(2, 3, 64, 64))
    assert out.loss.ndim == 0 and out.loss > 0
    assert out.slots.shape == (2, 5, 64)
    for masks in (out.slot_masks, out.decoder_masks, out.slot_logits):
        assert masks.shape == (2, 5, 8, 8)
    assert out.reconstruction.shape == out.target.shape == (2, 64, 64)
    torch.testing.assert_close(out.slot_masks.sum(1), torch.ones(2, 8, 8))
    torch.testing.assert_close(out.decoder_masks.sum(1), torch.ones(2, 8, 8))
    # the logits are the slot masks before the softmax over slots
    torch.testing.assert_close(out.slot_logits.softmax(1), out.slot_masks)
    out.loss.backward()
    assert model.slot_attention.slot_attention.project_q.weight.grad is not None


def test_loss_is_the_mean_squared_error_of_section_1():
    model = tiny_model().eval()
    out = model(torch.randn(2, 3, 64, 64))
    expected = ((out.target - out.reconstruction) ** 2).sum() / (2 * 64 * 64)
    torch.testing.assert_close(out.loss, expected)


def test_mlp_decoder_model():
    model = tiny_model(dec_type="mlp", train_orders="standard")
    out = model(torch.randn(2, 3, 64, 64))
    assert out.decoder_masks.shape == (2, 5, 8, 8) and out.order_ids == [0]
    assert model.decoder.pos_embed.shape == (1, 64, 64)


def test_orders_follow_mode_and_call_override():
    model = tiny_model(train_orders="random", eval_orders="standard")
    images = torch.randn(1, 3, 64, 64)
    model.train()
    seen = {model(images).order_ids[0] for _ in range(40)}
    assert len(seen) > 3
    model.eval()
    assert model(images).order_ids == [0]
    assert model(images, orders="all").order_ids == list(range(9))
    assert model(images, orders=[2, 7]).order_ids == [2, 7]


def test_frozen_encoder_gets_no_gradient_and_finetuned_blocks_do():
    config = SPOTConfig(which_encoder="vit_small_patch8_224.dino", image_size=32, num_slots=3, slot_size=32,
                        mlp_hidden_size=32, num_dec_blocks=1, num_heads=2, finetune_blocks_after=10,
                        init_method="embedding", truncate="bi-level")
    model = SPOT.from_config(config)
    assert model.target_encoder is not None and model.target_encoder.is_frozen
    out = model(torch.randn(2, 3, 32, 32))
    out.loss.backward()
    assert model.encoder.vit.blocks[11].mlp.fc1.weight.grad is not None
    assert model.encoder.vit.blocks[9].mlp.fc1.weight.grad is None
    assert all(p.grad is None for p in model.target_encoder.parameters())
    # targets come from the frozen copy, features for slot attention from the trained encoder
    with torch.no_grad():
        model.encoder.vit.blocks[11].mlp.fc2.bias.add_(1.0)
    features, target = model.encode(torch.randn(1, 3, 32, 32))
    assert not torch.allclose(features, target)


def test_any_square_grid_and_clear_errors():
    model = SPOT.from_config(get_preset("tiny", image_size=48))  # 6x6 tokens
    assert model(torch.randn(1, 3, 48, 48)).decoder_masks.shape == (1, 5, 6, 6)
    with pytest.raises(ValueError, match="built for 48x48"):
        model(torch.randn(1, 3, 64, 64))
    vit = timm.models.vision_transformer.VisionTransformer(img_size=(32, 64), patch_size=8, embed_dim=32,
                                                           depth=0, num_heads=2, num_classes=0)
    with pytest.raises(ValueError, match="square token grid"):
        SPOT(vit, get_preset("tiny"))


def test_config_validation_messages():
    with pytest.raises(ValueError, match="num_slots must be a positive integer"):
        SPOTConfig(num_slots=0)
    with pytest.raises(ValueError, match="truncate='full'"):
        SPOTConfig(truncate="full")
    with pytest.raises(ValueError, match="MLP decoder has no patch orders"):
        SPOTConfig(dec_type="mlp", train_orders="random")
    with pytest.raises(ValueError, match="order ids between 0 and 8"):
        SPOTConfig(eval_orders=[0, 12])
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("imagenet")
    with pytest.raises(ValueError, match="no field"):
        SPOTConfig().replace(num_slot=3)
    assert get_preset("voc").num_slots == 6 and get_preset("movi_e").num_slots == 24
    config = get_preset("coco", eval_orders=[1, 2])
    assert SPOTConfig.from_dict(config.to_dict()) == config


def test_stage2_runs_shared_frozen_blocks_once_with_identical_results():
    config = SPOTConfig(which_encoder="vit_small_patch8_224.dino", image_size=32, num_slots=3, slot_size=32,
                        mlp_hidden_size=32, num_dec_blocks=1, num_heads=2, finetune_blocks_after=8,
                        init_method="embedding", truncate="bi-level")
    model = SPOT.from_config(config)
    assert model.shared_encoder_blocks() == 8
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        model.encoder.vit.blocks[9].mlp.fc2.bias.add_(0.5)  # the trained part drifts from the target
    shared = model.encode(images)
    model.share_encoder_blocks = False
    separate = model.encode(images)
    for a, b in zip(shared, separate, strict=False):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # a frozen block that differs is no longer shared (and is noticed without any explicit reset)
    with torch.no_grad():
        model.target_encoder.vit.blocks[3].attn.qkv.weight.mul_(1.5)
    assert model.shared_encoder_blocks() == 3
    model.share_encoder_blocks = True
    torch.testing.assert_close(model.encode(images)[1], model.target_encoder(images), rtol=0, atol=0)


def test_stage2_training_steps_do_not_compare_the_encoders_again(monkeypatch):
    config = SPOTConfig(which_encoder="vit_small_patch8_224.dino", image_size=32, num_slots=3, slot_size=32,
                        mlp_hidden_size=32, num_dec_blocks=1, num_heads=2, finetune_blocks_after=8,
                        init_method="embedding", truncate="bi-level")
    model = SPOT.from_config(config)
    calls = []
    compare = model.encoder.frozen_prefix_shared_with
    monkeypatch.setattr(model.encoder, "frozen_prefix_shared_with",
                        lambda other: calls.append(1) or compare(other))
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    images = torch.randn(2, 3, 32, 32)
    for _ in range(3):  # the optimiser changes the trained blocks 8-11 at every step
        model(images).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert model.shared_encoder_blocks() == 8 and len(calls) == 1
    model.load_state_dict(model.state_dict())  # loading weights: decided again
    assert model.shared_encoder_blocks() == 8 and len(calls) == 2


@pytest.mark.slow
def test_compiled_modules_give_the_same_outputs_gradients_and_state_dict(monkeypatch):
    # compiled code draws random numbers with its own generator unless told to use torch's
    monkeypatch.setattr(torch._inductor.config, "fallback_random", True)
    torch.manual_seed(0)
    eager = tiny_model(num_dec_blocks=1)
    compiled = tiny_model(num_dec_blocks=1)
    compiled.load_state_dict(eager.state_dict())
    compiled.compile_modules()
    assert list(compiled.state_dict()) == list(eager.state_dict())  # checkpoints unchanged
    images = torch.randn(2, 3, 64, 64)
    outputs = []
    for model in (eager, compiled):
        torch.manual_seed(1)  # the same Gaussian slot noise
        out = model(images, orders="all")
        out.loss.backward()
        outputs.append((out, model.slot_attention.slot_attention.project_q.weight.grad.clone()))
    (a, grad_a), (b, grad_b) = outputs
    for name in ("loss", "slot_masks", "decoder_masks", "reconstruction"):
        torch.testing.assert_close(getattr(b, name), getattr(a, name), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grad_b, grad_a, rtol=1e-3, atol=1e-6)


def test_raw_pixel_images_are_refused_with_what_to_do():
    model = tiny_model()
    images = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"float.*normalised.*images.float\(\) / 255.*segment\(\)"):
        model(images)
    with pytest.raises(ValueError, match=r"expected images \[B, 3, H, W\]"):
        model(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match="built for 64x64.*segment"):
        model(torch.randn(1, 3, 32, 32))


def test_raster_only_model_has_one_bos_token_and_decodes_order_zero_only():
    model = tiny_model(num_bos_tokens=1, train_orders="standard")
    assert model.decoder.bos_tokens.shape == (1, 1, 1, 64)
    images = torch.randn(1, 3, 64, 64)
    model.train()
    assert model(images).order_ids == [0]
    model.eval()
    assert model(images, orders="all").order_ids == [0]
    with pytest.raises(ValueError, match=r"order ids \[8\] are not available.*1 \[BOS\] token"):
        model(images, orders=[0, 8])
