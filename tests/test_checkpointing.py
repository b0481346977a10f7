"""Tests for spot_tutorial.training.run_state: a run's files, resume rules and model selection
(the end-to-end resume, SIGKILL included, is in tests/test_train.py)."""

import math

import pytest
import torch

from spot_tutorial import SPOT, get_preset
from spot_tutorial.config import RUNTIME_FIELDS
from spot_tutorial.io.checkpoint_file import atomic_save, config_payload, safe_load
from spot_tutorial.training.run_state import (
    RUN_FILES,
    Progress,
    check_resumable,
    check_selection,
    clear_previous_run,
    restore_run_state,
    run_state,
    selection_improves,
)


def test_a_run_state_round_trips_through_a_safe_load(tmp_path):
    config = get_preset("tiny")
    torch.manual_seed(0)
    model = SPOT.from_config(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 64, 64)).loss.backward()
    optimizer.step()
    progress = Progress(step=7, epoch=1, batch_in_epoch=2, total_steps=20.0)
    rng_states = [{"torch": torch.get_rng_state()}]
    state = run_state(1, config, model, optimizer, progress, rng_states, None, None)
    atomic_save(state, tmp_path / "last.pt")
    payload = safe_load(tmp_path / "last.pt")
    check_resumable(payload, config.replace(num_workers=3, max_steps=40), stage=1, path=tmp_path)
    torch.manual_seed(1)
    fresh = SPOT.from_config(config)
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    restored = restore_run_state(payload, fresh, fresh_optimizer, source="last.pt")
    assert restored == progress
    for name, value in model.state_dict().items():
        assert torch.equal(value, fresh.state_dict()[name]), name
    saved_adam, restored_adam = optimizer.state_dict()["state"], fresh_optimizer.state_dict()["state"]
    assert saved_adam and saved_adam.keys() == restored_adam.keys()
    for key in saved_adam:
        assert torch.equal(saved_adam[key]["exp_avg"], restored_adam[key]["exp_avg"])


@pytest.mark.parametrize("checkpoint_format", [1, 2])
def test_resume_refuses_another_architecture_other_math_or_another_stage(tmp_path, checkpoint_format):
    config = get_preset("tiny")
    header = {"config": config.to_dict()} if checkpoint_format == 1 else config_payload(config)
    payload = {**header, "stage": 1}
    with pytest.raises(ValueError, match="lr_main: checkpoint"):                # training math
        check_resumable(payload, config.replace(lr_main=1.0), stage=1, path=tmp_path)
    with pytest.raises(ValueError, match="num_slots: checkpoint"):              # architecture
        check_resumable(payload, config.replace(num_slots=4), stage=1, path=tmp_path)
    with pytest.raises(ValueError, match="--stage 1"):
        check_resumable(payload, config, stage=2, path=tmp_path)
    runtime = dict(num_workers=3, decode="gpu", log_every=7, checkpoint_every=9, eval_every=2,
                   max_minutes=1.0, epochs=5, max_steps=40, torch_compile=True, cpu_bf16=True)
    assert set(runtime) == set(RUNTIME_FIELDS)
    check_resumable(payload, config.replace(**runtime), stage=1, path=tmp_path)  # runtime may change


def test_clear_previous_run_removes_run_files_only(tmp_path):
    for name in RUN_FILES:
        (tmp_path / name).mkdir() if name in ("tensorboard", "figures") else (tmp_path / name).write_text("x")
    (tmp_path / "figures" / "step_0000001.png").write_text("x")
    (tmp_path / "notes.txt").write_text("mine")
    clear_previous_run(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_selection_keeps_the_first_of_equal_scores_and_skips_nan():
    progress = Progress(step=4)
    scores = {"slot": {"mbo_i": 30.0}, "decoder": {"mbo_i": 40.0}}
    assert selection_improves(scores, "decoder/mbo_i", progress)
    assert (progress.best_score, progress.best_step) == (40.0, 4)
    progress.step = 8
    assert not selection_improves(scores, "decoder/mbo_i", progress)             # equal: keep step 4
    assert not selection_improves({"decoder": {"mbo_i": math.nan}}, "decoder/mbo_i", progress)
    assert selection_improves({"decoder": {"mbo_i": 41.0}}, "decoder/mbo_i", progress)
    assert progress.best_step == 8


def test_selection_needs_held_out_images_and_a_known_metric():
    assert check_selection(None, get_preset("tiny")) is None
    assert check_selection(None, get_preset("tiny", selection_images=8)) == "decoder/mbo_i"
    with pytest.raises(ValueError, match="selection_images"):
        check_selection("slot/mbo_i", get_preset("tiny"))
    with pytest.raises(ValueError, match="fg_ari"):
        check_selection("slot/accuracy", get_preset("tiny", selection_images=8))


def _scaler_after_real_steps() -> torch.amp.GradScaler:
    """A CPU GradScaler whose state moved as in fp16 training: one overflow, then good steps."""
    from spot_tutorial.training.optimizers import apply_gradients

    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=5)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for scale in (float("inf"), 1.0, 1.0, 1.0):  # the overflow halves the scale; 3 good steps follow
        loss = (model(torch.randn(8, 4)) ** 2).mean() * scale
        apply_gradients(model, optimizer, loss, clip=0.3, scaler=scaler)
    return scaler


def test_the_fp16_loss_scale_is_saved_and_restored(tmp_path):
    config = get_preset("tiny")
    model = SPOT.from_config(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = _scaler_after_real_steps()
    assert scaler.get_scale() == 512.0 and scaler.state_dict()["_growth_tracker"] == 3
    state = run_state(1, config, model, optimizer, Progress(), [], None, None, scaler)
    atomic_save(state, tmp_path / "last.pt")
    payload = safe_load(tmp_path / "last.pt")   # weights_only: the scaler state is plain numbers
    fresh = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=5)
    restore_run_state(payload, model, optimizer, "last.pt", fresh)
    assert fresh.state_dict() == scaler.state_dict()
    # fp32 / bf16 runs (a disabled scaler) and older checkpoints (no "scaler") keep the default
    assert run_state(1, config, model, optimizer, Progress(), [], None, None,
                     torch.amp.GradScaler("cpu", enabled=False))["scaler"] == {}
    payload.pop("scaler")
    untouched = torch.amp.GradScaler("cpu", init_scale=1024.0)
    restore_run_state(payload, model, optimizer, "last.pt", untouched)
    assert untouched.get_scale() == 1024.0
