"""SPOTConfig: the [BOS] count as part of the model's shape, and the error types of validation."""

import pytest

from spot_tutorial import SPOTConfig, get_preset
from spot_tutorial.errors import ConfigError, SpotUserError


def test_bos_token_count_is_a_validated_model_shape():
    assert SPOTConfig().num_bos_tokens == 9 and SPOTConfig().num_orders == 9
    raster = SPOTConfig(num_bos_tokens=1, train_permutations="standard")
    assert raster.num_orders == 1 and SPOTConfig.from_dict(raster.to_dict()) == raster
    assert SPOTConfig(num_bos_tokens=1, train_permutations=[0], eval_permutations=[0]).num_orders == 1
    with pytest.raises(ConfigError, match="1 \\[BOS\\] token decodes raster order only: set train_permutations"):
        SPOTConfig(num_bos_tokens=1)  # train_permutations='random' needs all nine
    with pytest.raises(ConfigError, match="1 \\[BOS\\] token.*eval_permutations"):
        SPOTConfig(num_bos_tokens=1, train_permutations="standard", eval_permutations="all")
    with pytest.raises(ConfigError, match="num_bos_tokens must be 9 .* or 1"):
        SPOTConfig(num_bos_tokens=4)


def test_mlp_decoder_has_one_order_and_old_configs_load():
    mlp = SPOTConfig(dec_type="mlp", train_permutations="standard")
    assert mlp.num_bos_tokens == 1 and mlp.num_orders == 1
    old = get_preset("coco").to_dict()
    del old["num_bos_tokens"]  # a config written before the field existed
    assert SPOTConfig.from_dict(old).num_bos_tokens == 9


def test_validation_raises_config_errors_that_are_user_errors():
    for bad in (dict(num_slots=0), dict(truncate="full"), dict(eval_permutations=[0, 12])):
        with pytest.raises(ConfigError) as error:
            SPOTConfig(**bad)
        assert isinstance(error.value, SpotUserError) and isinstance(error.value, ValueError)
    with pytest.raises(ConfigError, match="unknown preset"):
        get_preset("imagenet")


def test_presets_carry_the_papers_slot_counts():
    counts = {name: get_preset(name).num_slots for name in ("coco", "voc", "movi_c", "movi_e")}
    assert counts == {"coco": 7, "voc": 6, "movi_c": 11, "movi_e": 24}
