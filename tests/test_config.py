"""SPOTConfig: the [BOS] count as part of the model's shape, and the error types of validation."""

import pytest

from spot_tutorial import SPOTConfig, get_preset
from spot_tutorial.errors import ConfigError, SpotUserError


def test_bos_token_count_is_a_validated_model_shape():
    assert SPOTConfig().num_bos_tokens == 9 and SPOTConfig().num_orders == 9
    raster = SPOTConfig(num_bos_tokens=1, train_orders="standard")
    assert raster.num_orders == 1 and SPOTConfig.from_dict(raster.to_dict()) == raster
    assert SPOTConfig(num_bos_tokens=1, train_orders=[0], eval_orders=[0]).num_orders == 1
    with pytest.raises(ConfigError,
                       match="1 \\[BOS\\] token decodes raster order only: set train_orders"):
        SPOTConfig(num_bos_tokens=1)  # train_orders='random' needs all nine
    with pytest.raises(ConfigError, match="1 \\[BOS\\] token.*eval_orders"):
        SPOTConfig(num_bos_tokens=1, train_orders="standard", eval_orders="all")
    with pytest.raises(ConfigError, match="num_bos_tokens must be 9 .* or 1"):
        SPOTConfig(num_bos_tokens=4)


def test_mlp_decoder_has_one_order_and_old_configs_load():
    mlp = SPOTConfig(dec_type="mlp", train_orders="standard")
    assert mlp.num_bos_tokens == 1 and mlp.num_orders == 1
    old = get_preset("coco").to_dict()
    del old["num_bos_tokens"]  # a config written before the field existed
    assert SPOTConfig.from_dict(old).num_bos_tokens == 9


def test_validation_raises_config_errors_that_are_user_errors():
    for bad in (dict(num_slots=0), dict(truncate="full"), dict(eval_orders=[0, 12])):
        with pytest.raises(ConfigError) as error:
            SPOTConfig(**bad)
        assert isinstance(error.value, SpotUserError) and isinstance(error.value, ValueError)
    with pytest.raises(ConfigError, match="unknown preset"):
        get_preset("imagenet")


def test_presets_carry_the_papers_slot_counts():
    counts = {name: get_preset(name).num_slots for name in ("coco", "voc", "movi_c", "movi_e")}
    assert counts == {"coco": 7, "voc": 6, "movi_c": 11, "movi_e": 24}


def test_the_fields_split_into_architecture_runtime_and_training_settings():
    import dataclasses

    from spot_tutorial.config import ARCHITECTURE_FIELDS, RUNTIME_FIELDS

    fields = {f.name for f in dataclasses.fields(SPOTConfig)}
    assert set(ARCHITECTURE_FIELDS) <= fields and set(RUNTIME_FIELDS) <= fields
    assert not set(ARCHITECTURE_FIELDS) & set(RUNTIME_FIELDS)
    config = get_preset("voc", num_slots=4, lr_main=1e-3)
    assert set(config.settings()) == fields - set(ARCHITECTURE_FIELDS)
    assert config.architecture.num_slots == 4 and config.settings()["lr_main"] == 1e-3
    assert SPOTConfig.from_architecture(config.architecture, **config.settings()) == config


def test_an_architecture_alone_gives_a_valid_config_with_the_orders_it_can_decode():
    from spot_tutorial.config import Architecture

    raster = get_preset("tiny", train_orders="standard", num_bos_tokens=1).architecture
    assert SPOTConfig.from_architecture(raster).train_orders == "standard"   # one [BOS]: order 0
    nine = SPOTConfig.from_architecture(get_preset("tiny").architecture)
    assert nine.train_orders == "random" and nine.architecture == get_preset("tiny").architecture
    with pytest.raises(ValueError, match="unknown architecture field"):
        SPOTConfig.from_architecture({**raster.to_dict(), "num_layers": 3})
    assert isinstance(raster, Architecture)


def test_a_registered_preset_is_built_by_get_preset_and_checked_when_registered():
    from spot_tutorial.recipes import PRESETS, list_presets, register_preset

    try:
        register_preset("my_voc_eight", dataset="voc", num_slots=8)
        assert "my_voc_eight" in list_presets()
        config = get_preset("my_voc_eight", epochs=3)
        assert (config.dataset, config.num_slots, config.epochs) == ("voc", 8, 3)
        with pytest.raises(ConfigError, match="exists already"):
            register_preset("coco", num_slots=3)
        with pytest.raises(ConfigError, match="not SPOTConfig fields"):
            register_preset("typo", num_slot=3)
        with pytest.raises(ConfigError):
            register_preset("bad", truncate="sometimes")
        assert "typo" not in PRESETS and "bad" not in PRESETS
    finally:
        PRESETS.pop("my_voc_eight", None)


def test_num_slots_is_bounded_where_it_is_set_by_what_label_maps_hold(tmp_path, capsys):
    from spot_tutorial.apps.cli import main

    with pytest.raises(ConfigError, match="num_slots=1000 is more than 255"):
        get_preset("tiny", num_slots=1000)
    assert get_preset("tiny", num_slots=255).num_slots == 255
    assert main(["train", "--preset", "synthetic", "--num-slots", "1000", "--output-dir",
                 str(tmp_path / "run")]) == 1
    assert "num_slots=1000" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
