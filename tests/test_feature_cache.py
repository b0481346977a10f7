"""Frozen encoder features computed once give the same training step as computing them per batch."""

import pytest
import torch
from conftest import tiny_model

from spot_tutorial.data import SyntheticShapes
from spot_tutorial.errors import ConfigError, InputError
from spot_tutorial.training.feature_cache import FeatureCache
from spot_tutorial.training.objective import batch_loss


def test_cached_features_are_the_encoders_and_give_the_same_output_and_loss():
    model = tiny_model()
    scenes = SyntheticShapes(10, 64, seed=5)
    cache = FeatureCache(scenes, model.encoder, batch_size=4)   # batches of 4, 4, 2
    assert len(cache) == 10 and set(cache[3]) == {"image", "features"}
    assert torch.equal(cache[3]["image"], scenes[3]["image"])  # the very images, kept from the one pass
    images = torch.stack([cache[i]["image"] for i in range(6)])
    features = torch.stack([cache[i]["features"] for i in range(6)])
    with torch.no_grad():
        assert torch.allclose(features, model.encoder(images), atol=1e-6)
    model.train()
    torch.manual_seed(0)
    direct = model(images)
    torch.manual_seed(0)
    cached = model(images, features=features)
    assert torch.allclose(direct.loss, cached.loss, atol=1e-6)
    assert torch.allclose(direct.slot_masks, cached.slot_masks, atol=1e-5)
    torch.manual_seed(1)
    loss, record = batch_loss(model, images)
    torch.manual_seed(1)
    cached_loss, _ = batch_loss(model, images, features=features)
    assert torch.allclose(loss, cached_loss, atol=1e-6) and "mse" in record


def test_the_cache_renders_each_scene_once_and_keeps_no_second_copy_of_rendered_scenes(monkeypatch):
    from spot_tutorial.data import RenderedScenes

    model = tiny_model()
    scenes = SyntheticShapes(6, 64, seed=5)
    calls = []
    render = SyntheticShapes.render
    monkeypatch.setattr(SyntheticShapes, "render", lambda self, i: calls.append(i) or render(self, i))
    cache = FeatureCache(scenes, model.encoder, batch_size=4)
    assert sorted(calls) == list(range(6))
    for _epoch in range(2):  # training reads every item each epoch: nothing is rendered again
        items = [cache[i] for i in range(6)]
    assert sorted(calls) == list(range(6)) and items[5]["features"].shape == (64, 64)
    rendered = RenderedScenes(scenes)
    in_memory = FeatureCache(rendered, model.encoder)
    assert in_memory.images is None  # RenderedScenes holds its 8-bit images already
    assert torch.equal(in_memory[2]["image"], rendered[2]["image"])


def test_cached_features_are_refused_where_they_would_be_wrong():
    scenes = SyntheticShapes(2, 64, seed=5)
    model = tiny_model()
    with pytest.raises(InputError, match=r"\[B, 64, 64\]"):
        model(torch.zeros(2, 3, 64, 64), features=torch.zeros(2, 16, 64))
    model.encoder.vit.patch_embed.proj.weight.requires_grad_(True)  # an encoder that trains
    with pytest.raises(ConfigError, match="frozen encoder"):
        FeatureCache(scenes, model.encoder)
    with pytest.raises(ConfigError, match="frozen encoder"):
        model(torch.zeros(2, 3, 64, 64), features=torch.zeros(2, 64, 64))


@pytest.mark.parametrize("stage", [1, 2])
def test_training_with_cached_features_takes_the_same_steps(tmp_path, stage):
    from spot_tutorial.recipes import get_preset, student_config
    from spot_tutorial.training.loop import Trainer

    def config(**overrides):
        base = get_preset("tiny", train_images=32, eval_images=4, batch_size=8, max_steps=4, log_every=1,
                          lr_warmup_steps=2, checkpoint_every=0, eval_every=1000, seed=0, **overrides)
        return base if stage == 1 else student_config(base)

    teacher = None
    if stage == 2:
        teacher = Trainer(config().replace(init_method="shared_gaussian", truncate="none"),
                          output_dir=tmp_path / "t", progress=False).fit().last_checkpoint
    weights = {}
    for cache in (False, True):
        trainer = Trainer(config(cache_features=cache), stage=stage, output_dir=tmp_path / str(cache),
                          teacher=teacher, progress=False)
        assert isinstance(trainer.train_set, FeatureCache) == cache
        trainer.fit()
        weights[cache] = trainer.model.state_dict()
    for name, value in weights[False].items():
        assert torch.allclose(value, weights[True][name], atol=1e-5), name


def test_cache_features_is_refused_for_augmented_datasets():
    from spot_tutorial.training.feature_cache import cached_features

    model = tiny_model()
    with pytest.raises(ConfigError, match="crops and flips"):
        cached_features(SyntheticShapes(2, 64), model.encoder, model.config.replace(dataset="coco"))


def test_a_cache_is_reused_by_an_encoder_with_its_weights_and_recomputed_for_other_weights():
    from spot_tutorial.recipes import get_preset
    from spot_tutorial.training.feature_cache import cached_features

    config = get_preset("tiny")
    model = tiny_model()
    scenes = SyntheticShapes(6, 64, seed=2)
    cache = cached_features(scenes, model.encoder, config)
    same = tiny_model()
    same.encoder.load_state_dict(model.encoder.state_dict())
    assert cached_features(cache, same.encoder, config) is cache
    other = tiny_model()
    with torch.no_grad():
        next(other.encoder.parameters()).add_(1.0)  # another frozen encoder
    recomputed = cached_features(cache, other.encoder, config)
    assert recomputed is not cache and recomputed.dataset is scenes
    with torch.no_grad():
        assert torch.allclose(recomputed.features, other.encoder(torch.stack([s["image"] for s in scenes])),
                              atol=1e-6)
        assert not torch.allclose(recomputed.features, cache.features)
