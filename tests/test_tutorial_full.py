"""Full mode of every lesson on fakes: the calls each notebook makes when MODE is 'full', run on a
pre-filled download cache (a few generated COCO-format images, a tiny model in the authors'
checkpoint format) with the tiny model and a demonstration budget of a few steps. No network:
a download attempt fails the test. COCO train2017 is absent, so nothing may need it."""

from __future__ import annotations

import pytest
import torch
from fakes import full_mode_cache

from spot_tutorial import get_preset, tutorial
from spot_tutorial.evaluation.evaluate import evaluate_model, results_table
from spot_tutorial.io import downloads
from spot_tutorial.recipes import STUDENT_SETTINGS, student_config

NUM_IMAGES = 12


def _no_network(*args, **kwargs):
    raise AssertionError("full mode tried to download although the cache is filled")


@pytest.fixture
def T(tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.setenv("SPOT_DATA", str(tmp_path))
    for name in ("SPOT_COCO_ROOT", "SPOT_CHECKPOINT", "SPOT_TEACHER_CHECKPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(downloads, "download_url", _no_network)
    monkeypatch.setattr(downloads, "gdown_fetch", _no_network)
    full_mode_cache(tmp_path, NUM_IMAGES)
    config = get_preset("tiny", num_workers=0, batch_size=4)
    budget = dict(max_steps=2, epochs=1, checkpoint_every=0, eval_every=10**6)
    return tutorial.Tutorial(mode="full", device=torch.device("cpu"), config=config,
                             demo_budget=budget, demo_holdout=4)


def test_full_mode_reads_the_cache_and_holds_out_the_lesson_images(T, tmp_path):
    assert T.coco_root == tmp_path / "COCO2017" and not (tmp_path / "COCO2017" / "train2017").exists()
    train_set, eval_set = T.demo_datasets()
    assert len(train_set) == NUM_IMAGES - 4 and len(eval_set) > 0
    held_out = {f"{i:012d}.jpg" for i in range(1, 5)}
    assert not held_out & {train_set.dataset.image_files[i] for i in train_set.indices}


def test_lesson1_demo_teacher_is_trained_once_and_reused(T, tmp_path, monkeypatch):
    model = T.teacher()
    assert (tmp_path / "demo_models" / "coco_teacher.pt").is_file()
    assert model.config.train_orders == "random" and hasattr(model.slot_attention, "slot_mu")
    monkeypatch.setattr(tutorial.Tutorial, "train_demo", _no_network)
    again = T.teacher()
    pairs = zip(model.state_dict().values(), again.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    batch = T.batch(6)
    with torch.no_grad():
        features = model.encoder(batch["image"])
        out = model.slot_attention(features)
    assert out.slots.shape[:2] == (6, T.config.num_slots)


def test_lesson2_shows_the_authors_model(T):
    model = T.spot_model()
    assert model.config.init_method == "embedding"   # the released stage-2 model, not a demo one
    batch = T.batch(6)
    with torch.no_grad():
        out = model(batch["image"])
        inputs = model.decoder.decoder_inputs(out.target, [0])
    assert inputs.shape == out.target.shape[:2] + (inputs.shape[-1],)
    results = evaluate_model(model, T.loader(256), T.device, orders="standard", progress=False)
    assert results["slot"]["num_images"] == NUM_IMAGES and "decoder masks" in results_table(
        {"decoder masks": results["decoder"]})


@pytest.mark.slow
def test_lesson3_two_demo_models_and_the_nine_orders_of_the_authors_model(T):
    for kind in ("teacher", "raster"):
        assert T.recipe(kind).max_steps == 2
    models = {"random": T.load("teacher"), "raster": T.load("raster")}
    assert models["raster"].config.train_orders == "standard"
    images = T.batch(8)["image"]
    for model in models.values():
        with torch.no_grad():
            out = model(images, orders="standard")
            wrong = model.decoder(out.slots.roll(1, dims=0), out.target, [0]).reconstruction
        assert wrong.shape == out.target.shape
    loader = T.loader(256)
    for orders in ("standard", "all"):
        results = evaluate_model(T.official_model(), loader, T.device, orders=orders, progress=False)
        assert results["decoder"]["num_images"] == NUM_IMAGES


@pytest.mark.slow
def test_lesson4_demo_student_from_the_demo_teacher(T, tmp_path):
    teacher = T.teacher()
    student = T.new_model(**STUDENT_SETTINGS)
    assert student.config.init_method == "embedding"
    recipe = T.recipe("student")
    assert recipe.max_steps == 2 and recipe == student_config(T.config.replace(**T.demo_budget)).replace(
        **T.demo_budget)
    trained = T.load("student")
    assert (tmp_path / "demo_models" / "coco_student.pt").is_file()
    models = {"teacher": teacher, "student": trained, "authors": T.official_model()}
    table = {name: evaluate_model(m, T.loader(256), T.device, progress=False)["slot"]
             for name, m in models.items()}
    assert set(table) == {"teacher", "student", "authors"}


def test_lesson5_evaluates_every_val_image_with_the_authors_model(T):
    model = T.official_model()
    loader = T.loader(5000, batch_size=4)
    for orders in ("standard", "all"):
        results = evaluate_model(model, loader, T.device, orders=orders, progress=False)
        assert results["slot"]["num_images"] == NUM_IMAGES
    with torch.no_grad():
        out = model(T.batch(6)["image"], orders="all")
    assert out.decoder_masks.shape[:2] == (6, model.config.num_slots)
