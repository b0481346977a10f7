"""Tests for spot_tutorial.training.loop: clipping, learning, resumption, NaN stop, DDP (the schedules and
the data order: test_schedules.py, test_distributed.py).

Everything runs on the CPU with the tiny model and a few dozen synthetic images.
"""

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from spot_tutorial import get_preset
from spot_tutorial.io.checkpoint_file import safe_load
from spot_tutorial.recipes import student_config
from spot_tutorial.training.loop import NonFiniteLossError, Trainer

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_config(**overrides):
    settings = dict(train_images=64, eval_images=8, batch_size=8, max_steps=6, log_every=1,
                    lr_warmup_steps=2, checkpoint_every=0, eval_every=1000, seed=0)
    return get_preset("tiny", **{**settings, **overrides})


def read_log(run_dir, kind="train"):
    lines = (Path(run_dir) / "log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


# ---------------------------------------------------------------------------------------------
# one step, a few steps
def test_gradient_is_clipped_in_the_infinity_norm(tmp_path):
    trainer = Trainer(tiny_config(clip=1e-4, lr_warmup_steps=0), output_dir=tmp_path, progress=False)
    images = torch.stack([trainer.train_set[i]["image"] for i in range(8)])
    values = trainer.train_step(images)
    grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
    largest = max(g.abs().max().item() for g in grads)
    assert values["grad_norm"] > 1e-4               # the raw gradient was larger ...
    assert largest == pytest.approx(1e-4, rel=1e-4)  # ... and its largest entry is now exactly `clip`
    assert all(not p.requires_grad for p in trainer.model.encoder.parameters())  # frozen ViT


def test_a_few_steps_reduce_the_loss_and_write_logs_checkpoints_and_figures(tmp_path):
    config = tiny_config(train_images=80, batch_size=8, max_steps=20, lr_main=1e-3,
                         lr_warmup_steps=5, eval_every=1)
    result = Trainer(config, output_dir=tmp_path, progress=False).fit()
    losses = [r["loss"] for r in read_log(tmp_path)]
    assert len(losses) == 20
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    assert result.steps == 20 and result.stopped_by == "steps"
    for name in ("last.pt", "config.json", "eval.csv", "summary.json"):
        assert (tmp_path / name).is_file(), name
    # no model selection unless asked for: the evaluation split never chooses a checkpoint
    assert not (tmp_path / "best.pt").exists() and result.best_checkpoint is None
    assert list((tmp_path / "tensorboard").iterdir())
    assert len(list((tmp_path / "figures").glob("*.png"))) == 2       # epoch 1 ends at 10, final at 20
    evals = read_log(tmp_path, "eval")
    assert [e["step"] for e in evals] == [10, 20]
    assert set(result.final_metrics) == {"slot", "decoder"}
    assert result.final_metrics["decoder"]["num_images"] == 8
    assert json.loads((tmp_path / "config.json").read_text())["max_steps"] == 20


def test_stage_two_distils_a_frozen_teacher(tmp_path):
    teacher_run = Trainer(tiny_config(max_steps=3), output_dir=tmp_path / "t", progress=False).fit()
    teacher_weights = safe_load(teacher_run.last_checkpoint)["model"]
    trainer = Trainer(student_config(tiny_config(max_steps=4)), stage=2, output_dir=tmp_path / "s",
                      teacher=teacher_run.last_checkpoint, progress=False)
    # the student starts from the teacher's (frozen) encoder, as from the same pretrained ViT
    for name, value in trainer.model.encoder.state_dict().items():
        assert torch.equal(value, teacher_weights["encoder." + name])
    trainer.fit()
    records = read_log(tmp_path / "s")
    assert all(r["ce"] > 0 and r["ce_weight"] == pytest.approx(0.005) for r in records)
    assert all(math.isclose(r["loss"], r["mse"] + r["ce_weight"] * r["ce"], rel_tol=1e-5) for r in records)
    for name, value in trainer.teacher.state_dict().items():  # the teacher did not move
        assert torch.equal(value, teacher_weights[name])


def test_stage_two_refuses_a_teacher_with_other_slots(tmp_path):
    teacher_run = Trainer(tiny_config(max_steps=1), output_dir=tmp_path / "t", progress=False).fit()
    with pytest.raises(ValueError, match="num_slots"):
        Trainer(student_config(tiny_config(num_slots=4)), stage=2, output_dir=tmp_path / "s",
                teacher=teacher_run.last_checkpoint, progress=False)


def test_existing_run_is_not_overwritten_and_resume_checks_the_config(tmp_path):
    Trainer(tiny_config(max_steps=2), output_dir=tmp_path, progress=False).fit()
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer(tiny_config(max_steps=2), output_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="lr_main"):
        Trainer(tiny_config(max_steps=2, lr_main=1.0), output_dir=tmp_path, resume=True, progress=False)


@pytest.mark.slow
def test_time_budget_stops_the_run(tmp_path):
    config = tiny_config(max_steps=0, epochs=10**6, max_minutes=0.02)
    result = Trainer(config, output_dir=tmp_path, progress=False).fit()
    assert result.stopped_by == "time"
    assert (tmp_path / "last.pt").is_file()


# ---------------------------------------------------------------------------------------------
# nothing lost
def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = Trainer(tiny_config(max_steps=10, checkpoint_every=2), output_dir=tmp_path, progress=False)
    calls = []

    def poison_fifth_call(module, inputs, output):
        calls.append(1)
        if len(calls) == 5:  # the 5th training step: after the checkpoint of step 4
            output.reconstruction = output.reconstruction * float("nan")
        return output

    trainer.model.decoder.register_forward_hook(poison_fifth_call)
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 4 .*last good checkpoint"):
        trainer.fit()
    saved = safe_load(tmp_path / "last.pt")
    assert saved["progress"]["step"] == 4
    assert all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())


RUN_SCRIPT = textwrap.dedent("""
    import json, os, signal, sys
    import torch
    torch.set_num_threads(1)
    from spot_tutorial import get_preset
    from spot_tutorial.training.loop import Trainer

    output_dir, mode, overrides = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])  # mode: 'kill'
    config = get_preset("tiny", **overrides)

    def kill_after_step_8(step):
        if mode == "kill" and step == 8:
            os.kill(os.getpid(), signal.SIGKILL)  # as hard as a power cut: no cleanup at all

    Trainer(config, output_dir=output_dir, progress=False, on_checkpoint=kill_after_step_8).fit()
""")


def _start_run(script, output_dir, mode, overrides):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script), str(output_dir), mode, json.dumps(overrides)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_run_killed_with_sigkill_and_resumed_ends_with_identical_weights(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RUN_SCRIPT)
    # 6 batches per epoch; checkpoints at steps 4, 6 (epoch end, after evaluation), 8, 12;
    # killed right after step 8, i.e. in the middle of the second epoch.
    overrides = dict(train_images=48, eval_images=8, batch_size=8, max_steps=14, checkpoint_every=4,
                     eval_every=1, log_every=1, lr_warmup_steps=3)
    killed = _start_run(script, tmp_path / "killed", "kill", overrides)
    # meanwhile, the same run without interruption, in this process (also one thread)
    config = get_preset("tiny", **overrides)
    Trainer(config, output_dir=tmp_path / "straight", progress=False).fit()
    assert killed.wait(timeout=120) == -9, killed.stdout.read()
    assert safe_load(tmp_path / "killed" / "last.pt")["progress"]["step"] == 8
    Trainer(config, output_dir=tmp_path / "killed", resume=True, progress=False).fit()

    final_a = safe_load(tmp_path / "straight" / "last.pt")
    final_b = safe_load(tmp_path / "killed" / "last.pt")
    assert final_a["progress"]["step"] == final_b["progress"]["step"] == 14
    for name, value in final_a["model"].items():
        assert torch.equal(value, final_b["model"][name]), name
    adam_a, adam_b = final_a["optimizer"]["state"], final_b["optimizer"]["state"]
    for key in adam_a:
        assert torch.equal(adam_a[key]["exp_avg"], adam_b[key]["exp_avg"])
    # the logged losses after the resume point agree too
    losses_a = {r["step"]: r["loss"] for r in read_log(tmp_path / "straight")}
    losses_b = {r["step"]: r["loss"] for r in read_log(tmp_path / "killed")}
    assert all(losses_a[s] == losses_b[s] for s in range(9, 15))


# ---------------------------------------------------------------------------------------------
# several processes
DDP_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import torch
    torch.set_num_threads(1)
    from spot_tutorial import get_preset
    from spot_tutorial.training.loop import train

    output_dir = sys.argv[1]
    config = get_preset("tiny", train_images=64, eval_images=10, batch_size=8, max_steps=5,
                        log_every=1, lr_warmup_steps=1, eval_every=1000)
    result = train(config, output_dir=output_dir, device="cpu", progress=False)
    import spot_tutorial.training.loop as t
    rank = int(os.environ["RANK"])
    # every rank reports what it ended with
    from spot_tutorial.io.checkpoint_file import load_model
    json.dump({"metrics": result.final_metrics, "steps": result.steps,
               "param_sum": sum(float(p.double().sum())
                                for p in load_model(result.last_checkpoint).parameters())},
              open(os.path.join(output_dir, f"rank{rank}.json"), "w"))
""")


@pytest.mark.slow
def test_two_gloo_processes_train_in_sync_and_reduce_metrics(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(script), str(tmp_path / "run")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    reports = [json.loads((tmp_path / "run" / f"rank{r}.json").read_text()) for r in range(2)]
    for report in reports:
        assert report["steps"] == 5
        # 10 evaluation images split 5 + 5 across the ranks, reduced to all 10 on each
        assert report["metrics"]["decoder"]["num_images"] == 10
        assert report["metrics"]["slot"]["num_images"] == 10
    assert reports[0]["metrics"] == reports[1]["metrics"]
    checkpoint = safe_load(tmp_path / "run" / "last.pt")
    assert len(checkpoint["rng"]) == 2                       # one random state per process
    # 64 images / (8 per batch x 2 processes) = 4 steps per epoch: step 5 is in epoch 1
    assert checkpoint["progress"]["epoch"] == 1 and checkpoint["progress"]["batch_in_epoch"] == 1
    # the DDP processes trained the same weights: each rank wrote only one log
    assert len(read_log(tmp_path / "run")) == 5


def test_stage2_teacher_reuses_the_student_targets_with_identical_loss():
    from spot_tutorial import SPOT, get_preset
    from spot_tutorial.training.loop import (
        batch_loss,
        copy_encoder_from_teacher,
        teacher_sees_student_targets,
    )

    torch.manual_seed(0)
    teacher = SPOT.from_config(get_preset("tiny")).eval().requires_grad_(False)
    student = SPOT.from_config(get_preset("tiny", init_method="embedding", truncate="bi-level"))
    assert not teacher_sees_student_targets(teacher, student)  # different random ViTs
    copy_encoder_from_teacher(student, teacher)
    assert teacher_sees_student_targets(teacher, student)
    images = torch.randn(4, 3, 64, 64)
    losses = []
    for reuse in (False, True):
        torch.manual_seed(7)  # the same random order and slot noise for the teacher
        loss, record = batch_loss(student, images, teacher, weight=0.5, teacher_on_targets=reuse)
        losses.append((loss.detach(), record["ce"]))
    torch.testing.assert_close(losses[0], losses[1], rtol=0, atol=0)


def test_cpu_bf16_autocast_keeps_the_loss_and_masks_close_to_fp32(tmp_path):
    """`cpu_bf16` runs the training step's forward pass under CPU bf16 autocast; the loss and
    masks stay close to fp32."""
    images = torch.randn(4, 3, 64, 64)
    outputs = {}
    for cpu_bf16 in (False, True):
        trainer = Trainer(tiny_config(cpu_bf16=cpu_bf16), output_dir=tmp_path / str(cpu_bf16), progress=False)
        torch.manual_seed(0)
        with trainer.autocast():
            assert torch.is_autocast_enabled("cpu") == cpu_bf16
            output = trainer.model(images)
        outputs[cpu_bf16] = output
    fp32, bf16 = outputs[False], outputs[True]
    assert bf16.reconstruction.dtype == torch.bfloat16 and fp32.reconstruction.dtype == torch.float32
    assert abs(bf16.loss.item() - fp32.loss.item()) / fp32.loss.item() < 0.05
    agreement = (bf16.slot_masks.argmax(1) == fp32.slot_masks.argmax(1)).float().mean()
    assert agreement > 0.9


@pytest.mark.slow
def test_a_data_loading_worker_trains_the_same_weights(tmp_path):
    """Rendering the batches in a worker process (the quickstart's second core) changes nothing."""
    weights = []
    for workers in (0, 1):
        trainer = Trainer(tiny_config(num_workers=workers, max_steps=4), output_dir=tmp_path / str(workers),
                          progress=False)
        initial = {name: tensor.clone() for name, tensor in trainer.model.state_dict().items()}
        trainer.fit()
        weights.append({name: tensor.clone() for name, tensor in trainer.model.state_dict().items()})
        assert any(not torch.equal(initial[name], weights[-1][name]) for name in initial), "nothing trained"
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name], rtol=0, atol=0, msg=name)


# ---------------------------------------------------------------------------------------------
# model selection: only on held-out training images, only when asked for
def test_selection_needs_held_out_training_images(tmp_path):
    with pytest.raises(ValueError, match="selection_images"):
        Trainer(tiny_config(), output_dir=tmp_path, progress=False, select_by="decoder/mbo_i")


@pytest.mark.slow
def test_best_checkpoint_is_chosen_on_held_out_training_images(tmp_path):
    config = tiny_config(train_images=48, eval_images=8, selection_images=16, max_steps=12, eval_every=1)
    trainer = Trainer(config, output_dir=tmp_path, progress=False)
    assert len(trainer.train_set) == 32 and len(trainer.selection_set) == 16
    # the held-out scenes are training scenes (the training seed), not the evaluation split's
    held = trainer.selection_set[0]["image"]
    assert torch.equal(held, trainer.train_set.dataset.dataset[32]["image"])
    assert not torch.equal(held, trainer.eval_set[0]["image"])
    result = trainer.fit()
    best = safe_load(tmp_path / "best.pt")
    selections = read_log(tmp_path, "selection")
    evaluations = read_log(tmp_path, "eval")
    assert [r["step"] for r in selections] == [r["step"] for r in evaluations] == [4, 8, 12]
    chosen = max(selections, key=lambda r: r["decoder"]["mbo_i"])    # first of equal scores wins
    assert best["step"] == chosen["step"] and best["metrics"] == {k: chosen[k] for k in ("slot", "decoder")}
    assert best["metrics"]["decoder"]["num_images"] == 16 and "held-out" in best["selected_on"]
    assert result.best_checkpoint == tmp_path / "best.pt"
    assert result.final_metrics["decoder"]["num_images"] == 8       # reported: last model, eval split


def test_fused_adam_takes_the_same_steps_as_plain_adam():
    from spot_tutorial.training.loop import (
        adam,
        apply_gradients,
        batch_loss,
        build_model,
        trainable_parameters,
    )

    config = tiny_config()
    images = torch.randn(8, 3, 64, 64)
    weights = []
    fused_adam = lambda params: adam(params, 1e-3)  # noqa: E731
    plain_adam = lambda params: torch.optim.Adam(params, lr=1e-3, foreach=False)  # noqa: E731
    for make in (fused_adam, plain_adam):
        torch.manual_seed(0)
        model = build_model(config, pretrained=False)
        optimizer = make(trainable_parameters(model))
        for _ in range(5):
            torch.manual_seed(1)  # the same orders and slot noise in both runs
            loss, _ = batch_loss(model, images)
            apply_gradients(model, optimizer, loss, clip=0.3)
        weights.append([p.detach().clone() for p in trainable_parameters(model)])
    initial = trainable_parameters(build_model(config, pretrained=False))
    assert weights[0] and not torch.equal(torch.cat([w.flatten() for w in weights[0]]),
                                          torch.cat([p.detach().flatten() for p in initial]))
    for fused, plain in zip(*weights, strict=False):  # rounding only: well under 1% of one step (lr 1e-3)
        torch.testing.assert_close(fused, plain, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_a_resumed_fp16_run_continues_with_its_loss_scale(tmp_path, monkeypatch):
    """fp16 (GPUs without bf16) trains with a GradScaler; its state is in last.pt. On the CPU the
    same path runs by asking for fp16 autocast, as `precision.training_precision` does on a T4."""
    import spot_tutorial.training.loop as train_module

    monkeypatch.setattr(train_module, "training_precision", lambda device, bf16, cpu_bf16: "fp16")
    straight = Trainer(tiny_config(max_steps=6), output_dir=tmp_path / "straight", progress=False)
    assert straight.scaler.is_enabled()
    straight.fit()
    Trainer(tiny_config(max_steps=3), output_dir=tmp_path / "resumed", progress=False).fit()
    saved = safe_load(tmp_path / "resumed" / "last.pt")["scaler"]
    assert saved["_growth_tracker"] == 3  # three good steps since the scale last changed
    resumed = Trainer(tiny_config(max_steps=6), output_dir=tmp_path / "resumed", resume=True, progress=False)
    assert resumed.scaler.state_dict() == saved
    resumed.fit()
    assert resumed.scaler.state_dict() == straight.scaler.state_dict()
    final_a = safe_load(tmp_path / "straight" / "last.pt")
    final_b = safe_load(tmp_path / "resumed" / "last.pt")
    assert final_a["scaler"] == final_b["scaler"]
    for name, value in final_a["model"].items():
        assert torch.equal(value, final_b["model"][name]), name
