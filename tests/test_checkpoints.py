import copy
import re
from pathlib import Path

import pytest
import reference_spot
import torch
from conftest import tiny_model

from spot_tutorial import SPOT, get_preset, load_model, load_official_checkpoint, save_model
from spot_tutorial.config import Architecture, SPOTConfig
from spot_tutorial.errors import InputError
from spot_tutorial.io.checkpoint_file import CheckpointError, atomic_save, checkpoint_config, safe_load
from spot_tutorial.io.official import official_to_ours
from spot_tutorial.model.encoder import build_encoder

# ours -> the authors' names (the inverse of checkpoints.OFFICIAL_KEY_RULES, written out here)
TO_OFFICIAL = [
    (r"^target_encoder\.vit\.", "second_encoder."), (r"^encoder\.vit\.", "encoder."),
    (r"^slot_attention\.", "slot_attn."), (r"^decoder\.bos_tokens$", "bos_tokens"),
    (r"^decoder\.input_proj\.", "input_proj."), (r"^decoder\.slot_proj\.", "slot_proj."),
    (r"\.self_attn_norm\.", ".self_attn_layer_norm."), (r"\.cross_attn_norm\.",
                                                        ".encoder_decoder_attn_layer_norm."),
    (r"\.cross_attn\.", ".encoder_decoder_attn."), (r"\.ffn_norm\.", ".ffn_layer_norm."),
    (r"^decoder\.transformer\.", "dec."), (r"^decoder\.pos_embed$", "dec.pos_embed"), (r"^decoder\.mlp\.",
                                                                                       "dec.decoder."),
]


def to_official(state):
    official = {}
    for key, value in state.items():
        for pattern, replacement in TO_OFFICIAL:
            key = re.sub(pattern, replacement, key)
        official[key] = value
    return official


def random_official_state(shapes):
    return {k: (torch.ones(s, dtype=torch.bool).triu(1) if k.endswith("self_attn_mask") else torch.randn(s))
            for k, s in shapes.items()}


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["stage1_teacher", "stage2_student", "dinosaur_mlp_baseline"])
def test_authors_coco_layout_maps_completely_onto_the_coco_model(official_layouts, layout):
    (title, shapes), = [(t, s) for t, s in official_layouts.items() if t.startswith(layout)]
    state = random_official_state(shapes)
    model = load_official_checkpoint({"model": state, "epoch": 49}, "vit_base_patch16_224.dino")
    ours = model.state_dict()
    used = [k for k in state if not k.endswith("self_attn_mask")]
    if layout.startswith("dinosaur"):
        used = [k for k in used if not (k == "bos_tokens" or k.startswith("input_proj."))]
    assert len(ours) == len(used)  # every parameter of ours comes from the checkpoint
    for key in used:
        assert torch.equal(ours[official_to_ours(key)], state[key]), key
    config = model.config
    assert config.num_slots == 7 and config.slot_size == 256 and config.num_dec_blocks == 4
    assert config.dec_type == ("mlp" if layout.startswith("dinosaur") else "transformer")
    assert config.init_method == ("embedding" if layout == "stage2_student" else "shared_gaussian")
    assert (model.target_encoder is not None) == (layout == "stage2_student")
    assert not model.training


def test_same_outputs_as_an_independent_functional_reference():
    model = tiny_model(init_method="embedding", num_heads=4).eval()
    official = to_official(model.state_dict())
    imported = load_official_checkpoint(official, build_encoder("tiny", image_size=64), model.config)
    images = torch.randn(2, 3, 64, 64)
    for order_id in (0, 8):
        out = imported(images, orders=[order_id])
        features = model.encoder(images)
        slots, slot_masks, logits = reference_spot.slot_attention(features, official)
        recon, dec_masks = reference_spot.decoder(slots, features, official, model.decoder.orders[order_id],
                                                  order_id, heads=4, num_blocks=2)
        torch.testing.assert_close(out.slots, slots, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(out.slot_masks.flatten(2).transpose(1, 2), slot_masks, atol=1e-5,
                                   rtol=1e-4)
        torch.testing.assert_close(out.slot_logits.flatten(2).transpose(1, 2), logits, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(out.reconstruction, recon, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(out.decoder_masks.flatten(2).transpose(1, 2), dec_masks, atol=1e-5,
                                   rtol=1e-4)


def test_mismatched_checkpoint_lists_keys_and_shapes():
    model = tiny_model(init_method="embedding")
    official = to_official(model.state_dict())
    official["slot_attn.slot_attention.project_q.weight"] = torch.randn(32, 64)
    del official["dec.blocks.1.ffn.0.bias"]
    with pytest.raises(CheckpointError) as error:
        load_official_checkpoint(official, build_encoder("tiny", image_size=64), model.config)
    message = str(error.value)
    assert "slot_attention.slot_attention.project_q.weight: checkpoint (32, 64) vs model (64, 64)" in message
    assert "decoder.transformer.blocks.1.ffn.0.bias" in message and "missing" in message
    with pytest.raises(CheckpointError, match="no 'slot_attn"):
        load_official_checkpoint({"weights": torch.zeros(1)}, "tiny")


def test_round_trip_of_our_checkpoints(tmp_path):
    model = tiny_model(init_method="embedding", eval_orders="all").eval()
    path = tmp_path / "run" / "model.pt"
    save_model(model, path, epoch=3)
    loaded = load_model(path)
    assert loaded.config == model.config
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=False):
        assert torch.equal(a, b), name
    images = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(loaded(images).decoder_masks, model(images).decoder_masks, rtol=0, atol=0)
    assert not list(tmp_path.glob("run/*.tmp"))  # atomic write leaves no temporary file


class Arbitrary:
    """Any class: unpickling it would run arbitrary code paths, so loading must refuse it."""


def test_unsafe_or_foreign_files_are_refused(tmp_path):
    bad = tmp_path / "pickle.pt"
    torch.save({"format": "spot-tutorial", "object": Arbitrary()}, bad)
    with pytest.raises(CheckpointError, match="weights-only"):
        load_model(bad)
    foreign = tmp_path / "foreign.pt"
    atomic_save({"state": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a spot-tutorial checkpoint"):
        load_model(foreign)
    truncated = tmp_path / "truncated.pt"
    save_model(tiny_model(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        load_model(truncated)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nope.pt")


# ------------------------------------------------------------------------------------------
# every layout the authors' scripts write: export our model into their names, import it,
# and the imported model must give our model's outputs bit for bit
def same_outputs(model, imported, images, orders=("standard",)):
    for order in orders:
        outputs = []
        for net in (model, imported):
            torch.manual_seed(7)  # the same Gaussian slot noise for both
            outputs.append(net.eval()(images, orders=order))
        ours, theirs = outputs
        for name in ("slots", "slot_masks", "decoder_masks", "reconstruction", "slot_logits"):
            torch.testing.assert_close(getattr(theirs, name), getattr(ours, name), rtol=0, atol=0)


def tiny_official(model):
    return to_official(model.state_dict()), build_encoder("tiny", image_size=64)


def test_raster_only_checkpoint_has_one_bos_token_and_decodes_order_zero_only():
    """Authors' train_orders='standard': bos_tokens [1, 1, 1, D]."""
    model = tiny_model(init_method="embedding").eval()
    official, encoder = tiny_official(model)
    official["bos_tokens"] = official["bos_tokens"][:1].clone()
    imported = load_official_checkpoint(official, encoder, model.config)
    assert imported.config.num_bos_tokens == 1 and imported.decoder.bos_tokens.shape == (1, 1, 1, 64)
    assert imported.config.train_orders == imported.config.eval_orders == "standard"
    images = torch.randn(2, 3, 64, 64)
    same_outputs(model, imported, images, orders=("standard", [0]))
    assert imported(images, orders="all").order_ids == [0]
    with pytest.raises(InputError, match=r"1 \[BOS\] token.*orders='standard'"):
        imported(images, orders=[3])


def test_older_tf_dec_prefix_reads_as_dec():
    model = tiny_model(init_method="embedding").eval()
    official, encoder = tiny_official(model)
    official = {("tf_dec." + k[len("dec."):] if k.startswith("dec.") else k): v for k, v in official.items()}
    official.update({f"tf_dec.blocks.{i}.self_attn_mask": torch.ones(64, 64, dtype=torch.bool).triu(1)
                     for i in range(2)})
    imported = load_official_checkpoint(official, encoder, model.config)
    assert imported.config.num_dec_blocks == 2
    same_outputs(model, imported, torch.randn(2, 3, 64, 64), orders=("standard", [5]))


def test_a_checkpoint_without_decoder_says_so():
    model = tiny_model(init_method="embedding")
    official, encoder = tiny_official(model)
    official = {k: v for k, v in official.items() if not k.startswith("dec.")}
    with pytest.raises(CheckpointError, match="no decoder found.*dec.blocks"):
        load_official_checkpoint(official, encoder, model.config)


def test_stage2_student_layout_with_second_encoder():
    config = get_preset("tiny", init_method="embedding", truncate="bi-level")
    encoder = build_encoder("tiny", image_size=64)
    target = copy.deepcopy(encoder)
    with torch.no_grad():  # the student's encoder drifted from the frozen target copy
        encoder.vit.patch_embed.proj.weight.mul_(1.1)
    model = SPOT(encoder, config, target).eval()
    official, fresh = tiny_official(model)
    assert any(k.startswith("second_encoder.") for k in official)
    imported = load_official_checkpoint(official, fresh, config.replace(truncate="none"))
    assert imported.target_encoder is not None and imported.config.truncate == "bi-level"
    same_outputs(model, imported, torch.randn(2, 3, 64, 64), orders=("standard", "all"))


def test_mlp_decoder_layout_with_its_unused_bos_token():
    model = tiny_model(dec_type="mlp", train_orders="standard").eval()
    official, encoder = tiny_official(model)
    official["bos_tokens"] = torch.randn(1, 1, 1, 64)  # stored by the authors, unused
    official["input_proj.0.weight"] = torch.randn(64, 64)
    imported = load_official_checkpoint(official, encoder, get_preset("tiny"))
    assert imported.config.dec_type == "mlp" and imported.config.num_orders == 1
    same_outputs(model, imported, torch.randn(2, 3, 64, 64))


def test_gaussian_slot_count_comes_from_the_caller_and_stored_counts_refuse_another():
    from spot_tutorial.io.official import official_assumptions

    gaussian = tiny_model(num_slots=4).eval()
    official, encoder = tiny_official(gaussian)
    assert official_assumptions(official, get_preset("tiny", num_slots=4)) == {
        "num_slots": 4, "num_iterations": 3, "slot_att_heads": 1, "num_heads": 4}
    imported = load_official_checkpoint(official, encoder, get_preset("tiny"), num_slots=4)
    assert imported.config.num_slots == 4
    same_outputs(gaussian, imported, torch.randn(2, 3, 64, 64))
    embedding = tiny_model(init_method="embedding")  # 5 learned slot vectors
    official, encoder = tiny_official(embedding)
    assert "num_slots" not in official_assumptions(official, embedding.config)
    with pytest.raises(CheckpointError, match="stores 5 learned slot vectors.*--num-slots 5"):
        load_official_checkpoint(official, encoder, embedding.config, num_slots=7)


def test_our_checkpoints_from_before_num_bos_tokens_still_load(tmp_path):
    for overrides in (dict(init_method="embedding"), dict(dec_type="mlp", train_orders="standard")):
        model = tiny_model(**overrides).eval()
        path = tmp_path / "old.pt"
        payload = format1_payload(model)  # the flat "config" of the files from before format 2
        del payload["config"]["num_bos_tokens"]  # written before the field existed
        atomic_save(payload, path)
        loaded = load_model(path)
        assert loaded.config.num_bos_tokens == (1 if overrides.get("dec_type") == "mlp" else 9)
        same_outputs(model, loaded, torch.randn(1, 3, 64, 64))


def test_load_model_changes_the_slot_count_of_gaussian_models_only(tmp_path):
    save_model(tiny_model(), tmp_path / "gaussian.pt")
    assert load_model(tmp_path / "gaussian.pt", num_slots=3).config.num_slots == 3
    save_model(tiny_model(init_method="embedding"), tmp_path / "embedding.pt")
    with pytest.raises(CheckpointError, match="stores 5 learned slot vectors"):
        load_model(tmp_path / "embedding.pt", num_slots=3)


# ---------------------------------------------------------------------------------------------
# the model's architecture is stored with its weights (format 2); format 1 files still load
ROOT = Path(__file__).resolve().parents[1]


def format1_payload(model):
    """What save_model wrote before format 2: one flat "config" with every field."""
    return {"format": "spot-tutorial", "version": 1, "config": model.config.to_dict(),
            "model": model.state_dict()}


def test_a_checkpoint_stores_the_architecture_apart_from_the_settings(tmp_path):
    model = tiny_model(init_method="embedding", num_slots=4, lr_main=1e-3, num_workers=2).eval()
    save_model(model, tmp_path / "model.pt")
    payload = safe_load(tmp_path / "model.pt")
    assert payload["version"] == 2 and "config" not in payload
    assert Architecture(**payload["architecture"]) == model.config.architecture
    assert payload["architecture"]["num_slots"] == 4 and payload["architecture"]["num_bos_tokens"] == 9
    assert payload["settings"]["lr_main"] == 1e-3 and "num_slots" not in payload["settings"]
    assert checkpoint_config(payload) == model.config
    loaded = load_model(tmp_path / "model.pt")
    assert loaded.config == model.config
    same_outputs(model, loaded, torch.randn(1, 3, 64, 64))


@pytest.mark.parametrize("overrides", [dict(init_method="embedding"),
                                       dict(train_orders="standard", num_bos_tokens=1),
                                       dict(dec_type="mlp", train_orders="standard")])
def test_the_architecture_alone_rebuilds_the_model(tmp_path, overrides):
    model = tiny_model(**overrides).eval()
    save_model(model, tmp_path / "model.pt")
    payload = safe_load(tmp_path / "model.pt")
    del payload["settings"]  # no preset, no training settings: only the shape and the weights
    atomic_save(payload, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert loaded.config.architecture == model.config.architecture
    assert loaded.config.lr_main == SPOTConfig().lr_main  # settings not stored: defaults
    same_outputs(model, loaded, torch.randn(1, 3, 64, 64))


def test_a_stored_format1_checkpoint_loads_and_gives_its_stored_masks():
    """tests/data/checkpoint_format1_tiny.pt was written by save_model of spot-tutorial 5931fc5
    (format 1), with the masks that model gave for the images stored next to it."""
    path = ROOT / "tests" / "data" / "checkpoint_format1_tiny.pt"
    stored = safe_load(path)
    assert stored["version"] == 1 and "config" in stored and "architecture" not in stored
    model = load_model(path)
    assert model.config.num_slots == 4 and model.config.init_method == "embedding"
    # written before the order settings were renamed: their old names map to the new ones
    assert model.config.train_orders == stored["config"]["train_permutations"]
    assert model.config.eval_orders == stored["config"]["eval_permutations"]
    with torch.no_grad():
        output = model(stored["images"], orders="standard")
    torch.testing.assert_close(output.slot_masks, stored["slot_masks"], rtol=0, atol=1e-6)
    torch.testing.assert_close(output.decoder_masks, stored["decoder_masks"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["tiny_teacher.pt", "tiny_student.pt", "tiny_raster.pt"])
def test_the_tutorials_stored_checkpoints_still_load(name):
    path = ROOT / "notebooks" / "checkpoints" / name
    payload = safe_load(path)
    model = load_model(path)  # strict: every stored tensor fits the rebuilt model
    assert model.config == SPOTConfig.from_dict(payload["config"])
    assert model.config.architecture.which_encoder == "tiny"


def test_a_format2_checkpoint_with_the_old_order_names_loads_them(tmp_path):
    model = tiny_model(train_orders=[0, 4], eval_orders="all").eval()
    save_model(model, tmp_path / "model.pt")
    payload = safe_load(tmp_path / "model.pt")
    for old, new in (("train_permutations", "train_orders"), ("eval_permutations", "eval_orders")):
        payload["settings"][old] = payload["settings"].pop(new)  # as written before the rename
    atomic_save(payload, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert loaded.train_orders == [0, 4] and loaded.eval_orders == "all"
    assert loaded.config == model.config


def test_a_checkpoint_from_a_newer_format_is_refused():
    with pytest.raises(CheckpointError, match="format-3 checkpoint.*update spot-tutorial"):
        checkpoint_config({"format": "spot-tutorial", "version": 3, "architecture": {}}, "new.pt")
    with pytest.raises(CheckpointError, match="no model architecture"):
        checkpoint_config({"format": "spot-tutorial", "version": 2}, "empty.pt")
