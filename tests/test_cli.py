"""Tests for the `spot` command (spot_tutorial.apps.cli, spot_tutorial.apps.quickstart)."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spot_tutorial.apps.cli import build_parser, config_from_args, main
from spot_tutorial.apps.quickstart import (
    QUICKSTART_SETTINGS,
    QUICKSTART_STUDENT_SETTINGS,
    choose_thread_count,
    finding_line,
)
from spot_tutorial.config import SPOTConfig
from spot_tutorial.errors import ConfigError
from spot_tutorial.evaluation.baselines import grid_masks
from spot_tutorial.io.checkpoint_file import load_model, safe_load
from spot_tutorial.recipes import get_preset

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def parse_config(*argv):
    return config_from_args(build_parser().parse_args(["train", *argv]))


def test_every_config_field_is_an_option():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    flags = {flag for action in train._actions for flag in action.option_strings}
    for spec in dataclasses.fields(SPOTConfig):
        assert "--" + spec.name.replace("_", "-") in flags, spec.name


def test_overrides_reach_the_config_with_their_types():
    config = parse_config("--preset", "voc", "--num-slots", "9", "--lr-main", "1e-3", "--no-bf16",
                          "--train-orders", "0", "5", "8", "--eval-orders", "all",
                          "--which-encoder", "dino_vits8", "--extra", '{"note": 1}')
    assert config.dataset == "voc" and config.epochs == 560          # from the preset
    assert config.num_slots == 9 and config.lr_main == 1e-3 and config.bf16 is False
    assert config.train_orders == [0, 5, 8] and config.eval_orders == "all"
    assert config.which_encoder == "dino_vits8" and config.extra == {"note": 1}
    assert parse_config() == SPOTConfig()                             # coco = the defaults


def test_the_old_order_flags_still_work():
    config = parse_config("--train-permutations", "0", "3", "--eval-permutations", "all")
    assert config.train_orders == [0, 3] and config.eval_orders == "all"
    evaluate = build_parser().parse_args(["evaluate", "model.pt", "--eval-permutations", "random"])
    assert evaluate.eval_orders == "random"


def test_stage_two_applies_the_student_settings_which_options_still_override():
    config = parse_config("--stage", "2", "--preset", "coco")
    assert (config.init_method, config.truncate, config.finetune_blocks_after) == ("embedding", "bi-level", 8)
    config = parse_config("--stage", "2", "--truncate", "fixed-point")
    assert config.truncate == "fixed-point" and config.init_method == "embedding"


def test_bad_options_are_refused_with_a_message(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--train-orders", "0", "x"])
    assert "order ids 0..8" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--num-slots", "many"])
    # a value argparse accepts but SPOTConfig refuses: exit code 1 and the config's message
    assert main(["train", "--preset", "synthetic", "--truncate", "sideways", "--no-progress"]) == 1
    assert "truncate='sideways'" in capsys.readouterr().err
    assert main(["train", "--stage", "2", "--preset", "synthetic"]) == 1
    assert "--teacher" in capsys.readouterr().err


@pytest.mark.slow
def test_train_both_stages_from_the_command_line(tmp_path):
    common = ["--preset", "synthetic", "--train-images", "32", "--eval-images", "8", "--batch-size", "8",
              "--max-steps", "3", "--device", "cpu", "--no-progress"]
    assert main(["train", "--stage", "1", "--output-dir", str(tmp_path / "t"), *common]) == 0
    assert main(["train", "--stage", "2", "--teacher", str(tmp_path / "t" / "last.pt"),
                 "--output-dir", str(tmp_path / "s"), *common]) == 0
    student = load_model(tmp_path / "s" / "last.pt")
    assert not (tmp_path / "s" / "best.pt").exists()  # no model selection unless asked for
    assert student.config.init_method == "embedding" and student.config.truncate == "bi-level"
    assert json.loads((tmp_path / "s" / "config.json").read_text())["max_steps"] == 3
    # --resume continues the finished run for more steps
    assert main(["train", "--stage", "1", "--output-dir", str(tmp_path / "t"), "--resume",
                 *common[:-5], "--max-steps", "5", "--device", "cpu", "--no-progress"]) == 0
    assert safe_load(tmp_path / "t" / "last.pt")["progress"]["step"] == 5


def test_grid_baseline_masks():
    masks = grid_masks(batch_size=2, num_slots=5, height=4, width=4)   # 2x2 grid, slot 4 unused
    assert masks.shape == (2, 5, 4, 4)
    assert masks[0].argmax(0).tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    assert masks[:, 4].sum() == 0


@pytest.mark.slow
def test_quickstart_findings_follow_the_rows():
    from spot_tutorial.apps.quickstart import quickstart_findings

    def rows(teacher_slot, teacher_decoder, student_slot, student_decoder, grid=17.5):
        values = {"grid": grid, "teacher slot masks": teacher_slot, "teacher decoder masks": teacher_decoder,
                  "student slot masks": student_slot, "student decoder masks": student_decoder}
        return {name: {"mbo_i": value} for name, value in values.items()}

    held = {f["finding"]: f["held"] for f in quickstart_findings(rows(30, 34, 36, 35), "grid")}
    assert held == {"F2": True, "F3": True, "F4": True}
    held = {f["finding"]: f["held"] for f in quickstart_findings(rows(58.8, 49.8, 47.7, 45.4), "grid")}
    assert held == {"F2": False, "F3": False, "F4": True}
    findings = quickstart_findings(rows(20, 16, 21, 19), "grid")
    assert not findings[2]["held"] and findings[2]["values"] == {"teacher decoder masks": 16, "grid": 17.5}
    assert finding_line(findings[0]) == ("F2 did not hold: the teacher's decoder masks beat its slot masks "
                                         "(mBO^i 16.0 vs 20.0)")


def test_quickstart_runs_end_to_end_as_a_module(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "spot_tutorial", "quickstart", "--minutes", "0.03",
               "--train-images", "128", "--eval-images", "8", "--output-dir", str(tmp_path), "--no-progress"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "teacher decoder masks" in done.stdout and "grid 2x2 (baseline)" in done.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    # one line per finding the run can check, held or not as its own numbers say
    assert [f["finding"] for f in report["findings"]] == ["F2", "F3", "F4"]
    rows = report["results"]
    f2 = report["findings"][0]
    assert f2["held"] == (rows["teacher decoder masks"]["mbo_i"] > rows["teacher slot masks"]["mbo_i"])
    for finding in report["findings"]:
        assert finding_line(finding) in done.stdout
    assert set(report["results"]) == {"grid 2x2 (baseline)", "teacher slot masks", "teacher decoder masks",
                                      "student slot masks", "student decoder masks"}
    for metrics in report["results"].values():
        assert metrics["num_images"] == 8 and set(metrics) >= {"fg_ari", "mbo_i", "miou"}
    assert report["teacher"]["steps"] > 0 and report["student"]["steps"] > 0
    assert report["teacher"]["stopped_by"] == "time"
    assert report["config"]["student"]["init_method"] == "embedding"
    # each stage trains with its own batch size (the student does not inherit the teacher's)
    assert report["config"]["teacher"]["batch_size"] == QUICKSTART_SETTINGS["batch_size"]
    assert report["config"]["student"]["batch_size"] == QUICKSTART_STUDENT_SETTINGS["batch_size"]
    # by default the scenes are rendered once, and the faster of 1 and 2 threads (2 on a near-tie)
    # was timed and used
    assert report["environment"]["prerendered"] and report["environment"]["data_workers"] == 0
    assert report["config"]["teacher"]["num_workers"] == report["config"]["student"]["num_workers"] == 0
    timings = report["environment"]["thread_step_ms"]
    assert "1" in timings and all(ms > 0 for ms in timings.values())
    chosen = choose_thread_count({int(n): ms for n, ms in timings.items()})
    assert report["environment"]["threads"] == chosen
    assert "torch thread(s): a teacher step took" in done.stdout
    assert (tmp_path / "masks.png").stat().st_size > 1000
    assert (tmp_path / "teacher" / "last.pt").is_file() and (tmp_path / "student" / "last.pt").is_file()


def test_quickstart_on_camouflage_scenes_uses_the_self_supervised_encoder(tmp_path, monkeypatch):
    from spot_tutorial.apps.options import QUICKSTART as QUICKSTART_COMMAND
    from spot_tutorial.apps.quickstart import CAMOUFLAGE_SETTINGS, QUICKSTART_SCENES, run_quickstart
    from spot_tutorial.training import feature_cache

    scene_option = next(o for o in QUICKSTART_COMMAND.options if o.flag == "--scenes")
    assert set(scene_option.choices) == set(QUICKSTART_SCENES)
    caches = []
    counted = _counted(feature_cache.FeatureCache.__init__, caches)
    monkeypatch.setattr(feature_cache.FeatureCache, "__init__", counted)
    result = run_quickstart(tmp_path, minutes=0.02, student_minutes=0.02, train_images=64, eval_images=8,
                            scenes="camouflage", threads=1, progress=False, verbose=False)
    report = result.report
    assert report["scenes"] == "camouflage" and result.table.startswith("Quickstart: camouflage scenes")
    for stage in ("teacher", "student"):
        config = report["config"][stage]
        assert config["which_encoder"] == "tiny-dino" and config["synthetic_difficulty"] == "camouflage"
        assert config["num_slots"] == 7 and config["cache_features"]
    assert report["config"]["teacher"]["lr_main"] == CAMOUFLAGE_SETTINGS["lr_main"]
    assert report["config"]["teacher"]["batch_size"] == CAMOUFLAGE_SETTINGS["batch_size"]
    assert report["teacher"]["steps"] > 0 and report["student"]["steps"] > 0
    assert [f["finding"] for f in report["findings"]] == ["F2", "F3", "F4"]
    assert len(caches) == 1  # the student reads the teacher's features: one frozen encoder, one pass


def test_each_kind_of_scenes_brings_its_own_minutes_and_the_cli_leaves_them_to_it(monkeypatch):
    from spot_tutorial.apps import quickstart

    shapes, camouflage = quickstart.QUICKSTART_SCENES["shapes"], quickstart.QUICKSTART_SCENES["camouflage"]
    assert shapes.minutes + shapes.student_minutes < 9 and camouflage.minutes + camouflage.student_minutes < 9
    assert camouflage.teacher_settings["batch_size"] == camouflage.student_settings["batch_size"] == 16
    # given only the teacher's minutes, the student's follow the scenes' own split
    assert quickstart.default_student_minutes(12.0, "shapes") == 2 * shapes.student_minutes
    assert quickstart.default_student_minutes(2 * camouflage.minutes, "camouflage") == pytest.approx(
        2 * camouflage.student_minutes)
    calls = []
    monkeypatch.setattr(quickstart, "run_quickstart", lambda **kwargs: calls.append(kwargs))
    main(["quickstart", "--scenes", "camouflage"])
    assert calls[0]["minutes"] is None and calls[0]["scenes"] == "camouflage"  # the scenes' own


def _counted(function, calls: list):
    def counted(*args, **kwargs):
        calls.append(1)
        return function(*args, **kwargs)
    return counted


def test_quickstart_refuses_unknown_scenes_before_training(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["quickstart", "--scenes", "checkerboard", "--output-dir", str(tmp_path)])
    assert "camouflage" in capsys.readouterr().err
    from spot_tutorial.apps.quickstart import quickstart_config
    with pytest.raises(ConfigError, match="unknown quickstart scenes 'checkerboard'"):
        quickstart_config(1.0, scenes="checkerboard")


@pytest.mark.slow
def test_quickstart_without_prerendering_renders_in_a_data_worker_in_both_stages(tmp_path):
    from spot_tutorial.apps.quickstart import run_quickstart

    result = run_quickstart(tmp_path, minutes=0.02, student_minutes=0.02, train_images=64, eval_images=8,
                            prerender=False, data_workers=1, progress=False, verbose=False)
    report = result.report
    assert not report["environment"]["prerendered"] and report["environment"]["data_workers"] == 1
    assert report["config"]["teacher"]["num_workers"] == report["config"]["student"]["num_workers"] == 1
    assert report["environment"]["threads"] == 1 and report["environment"]["thread_step_ms"] == {}
    assert report["teacher"]["steps"] > 0 and report["student"]["steps"] > 0
    assert report["results"]["teacher slot masks"]["num_images"] == 8


def test_more_threads_win_a_near_tie_and_fewer_win_only_when_clearly_faster():
    # the timing that picked one thread on a 2-core machine, where two make 1.8x the steps
    assert choose_thread_count({1: 45.0, 2: 46.0}) == 2
    assert choose_thread_count({1: 60.0, 2: 40.0}) == 2
    assert choose_thread_count({1: 30.0, 2: 40.0}) == 1      # a busy or hyper-threaded second core
    assert choose_thread_count({1: 30.0, 2: 40.0}, margin=0.5) == 2
    assert choose_thread_count({1: 50.0}) == 1


def test_timing_a_thread_count_stops_early_once_it_is_far_slower_than_another():
    from spot_tutorial.apps.quickstart import step_time

    calls = []
    assert step_time(lambda: calls.append(1), steps=10) >= 0 and len(calls) == 12  # 2 warm-up + 10
    calls.clear()
    assert step_time(lambda: calls.append(1), steps=10, give_up_s=0.0) >= 0 and len(calls) == 1


@pytest.mark.parametrize("threads", ["two", -1, 1.5])
def test_quickstart_refuses_a_bad_thread_count_before_training(tmp_path, threads):
    from spot_tutorial.apps.quickstart import run_quickstart
    from spot_tutorial.errors import ConfigError

    with pytest.raises(ConfigError, match="threads must be 'auto' or an integer"):
        run_quickstart(tmp_path / "q", minutes=0.02, threads=threads, progress=False, verbose=False)
    assert not (tmp_path / "q").exists()


def test_quickstart_refuses_data_workers_with_prerendered_scenes(tmp_path):
    from spot_tutorial.apps.quickstart import run_quickstart
    from spot_tutorial.errors import ConfigError

    with pytest.raises(ConfigError, match="--no-prerender"):
        run_quickstart(tmp_path, minutes=0.02, data_workers=1, progress=False, verbose=False)


def test_threads_option_takes_auto_or_a_count():
    from spot_tutorial.apps.cli import build_parser

    parse = lambda *argv: build_parser().parse_args(["quickstart", *argv])  # noqa: E731
    assert parse().threads == "auto" and parse().prerender is True
    assert parse("--threads", "2").threads == 2 and parse("--threads", "AUTO").threads == "auto"
    assert parse("--no-prerender").prerender is False
    for bad in ("-1", "two"):
        with pytest.raises(SystemExit):
            parse("--threads", bad)


@pytest.mark.parametrize("argv, message", [
    (["--minutes", "0"], "needs minutes > 0"),
    (["--minutes", "1", "--student-minutes", "-1"], "needs student minutes > 0"),
    (["--data-workers", "-1"], "data_workers must be an integer >= 0"),
])
def test_quickstart_refuses_bad_budgets_before_training(tmp_path, capsys, argv, message):
    """A zero budget would train for 10^6 epochs: it is refused at once with a clear error."""
    output_dir = tmp_path / "quickstart"
    assert main(["quickstart", "--output-dir", str(output_dir), "--no-progress", *argv]) == 1
    assert message in capsys.readouterr().err
    assert not output_dir.exists()


def test_evaluate_command_prints_the_table_and_writes_files(tmp_path, capsys):
    from spot_tutorial import SPOT, get_preset, save_model
    from spot_tutorial.apps.cli import main

    model = SPOT.from_config(get_preset("tiny", init_method="embedding", eval_images=4))
    save_model(model, tmp_path / "model.pt")
    code = main(["evaluate", str(tmp_path / "model.pt"), "--eval-orders", "0", "8",
                 "--batch-size", "2", "--device", "cpu", "--num-workers", "0", "--figure-images", "2",
                 "--output-dir", str(tmp_path / "eval"), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "slot masks" in printed and "decoder masks" in printed and "FG-ARI" in printed
    for name in ("results.json", "results.csv", "masks.png"):
        assert (tmp_path / "eval" / name).exists()
    assert main(["evaluate", str(tmp_path / "missing.pt")]) == 1
    assert "checkpoint not found" in capsys.readouterr().err


@pytest.mark.parametrize("arguments, named", [
    (["--max-images", "-5"], "--max-images"),
    (["--batch-size", "0"], "--batch-size"),
    (["--num-workers", "-1"], "--num-workers"),
])
def test_evaluate_refuses_counts_that_would_give_nan_or_a_traceback(tmp_path, capsys, arguments, named):
    from spot_tutorial import SPOT, get_preset, save_model
    from spot_tutorial.apps.cli import main

    save_model(SPOT.from_config(get_preset("tiny", init_method="embedding", eval_images=4)),
               tmp_path / "model.pt")
    with pytest.raises(SystemExit) as stop:
        main(["evaluate", str(tmp_path / "model.pt"), "--device", "cpu", "--no-progress",
              "--output-dir", str(tmp_path / "eval"), *arguments])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert named in error and "Traceback" not in error
    assert not (tmp_path / "eval" / "results.json").exists()


def test_run_evaluation_refuses_bad_counts_from_python(tmp_path):
    from spot_tutorial.errors import ConfigError
    from spot_tutorial.evaluation.evaluate import run_evaluation

    for bad in (dict(max_images=-5), dict(batch_size=0), dict(num_workers=-2)):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            run_evaluation(tmp_path / "never-read.pt", **bad)


def test_stage_two_on_the_command_line_gets_the_datasets_stage_two_schedule():
    from spot_tutorial.apps.cli import config_from_args
    from spot_tutorial.recipes import student_config

    for preset in ("movi_c", "coco"):
        args = build_parser().parse_args(["train", "--stage", "2", "--preset", preset])
        assert config_from_args(args) == student_config(get_preset(preset))
    movi = config_from_args(build_parser().parse_args(["train", "--stage", "2", "--preset", "movi_c"]))
    assert (movi.epochs, movi.lr_min) == (30, 1.5e-4)


def test_internal_errors_keep_their_traceback_and_user_errors_print_one_line(monkeypatch, capsys):
    import spot_tutorial.evaluation.evaluate
    from spot_tutorial.io.checkpoint_file import CheckpointError

    def internal_bug(*args, **kwargs):
        raise ValueError("an internal bug, not the user's mistake")

    monkeypatch.setattr(spot_tutorial.evaluation.evaluate, "run_evaluation", internal_bug)
    with pytest.raises(ValueError, match="internal bug"):
        main(["evaluate", "model.pt", "--no-progress"])

    def user_mistake(*args, **kwargs):
        raise CheckpointError("model.pt does not fit: pass --num-slots 7")

    monkeypatch.setattr(spot_tutorial.evaluation.evaluate, "run_evaluation", user_mistake)
    assert main(["evaluate", "model.pt", "--no-progress"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "spot evaluate: error: model.pt does not fit: pass --num-slots 7"]


def test_a_missing_file_is_a_user_error_only_when_it_is_the_users(monkeypatch, capsys, tmp_path):
    import errno

    import spot_tutorial.evaluation.evaluate

    def raising(error):
        def run_evaluation(*args, **kwargs):
            raise error
        return run_evaluation

    internal = FileNotFoundError(errno.ENOENT, "No such file or directory", str(tmp_path / "internal.json"))
    monkeypatch.setattr(spot_tutorial.evaluation.evaluate, "run_evaluation", raising(internal))
    with pytest.raises(FileNotFoundError, match="internal.json"):   # a file of the library's own: a bug
        main(["evaluate", "model.pt", "--data-path", "my_data", "--no-progress"])

    named = FileNotFoundError(errno.ENOENT, "No such file or directory", "my_data")
    monkeypatch.setattr(spot_tutorial.evaluation.evaluate, "run_evaluation", raising(named))
    assert main(["evaluate", "model.pt", "--data-path", "my_data", "--no-progress"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "spot evaluate: error: --data-path my_data: no such file or folder; check the path"]

    reported = FileNotFoundError("COCO val2017 image folder not found: expected a folder at my_data/val2017")
    monkeypatch.setattr(spot_tutorial.evaluation.evaluate, "run_evaluation", raising(reported))
    assert main(["evaluate", "model.pt", "--data-path", "my_data", "--no-progress"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "spot evaluate: error: COCO val2017 image folder not found: expected a folder at my_data/val2017"]


def test_evaluate_an_authors_gaussian_checkpoint_with_num_slots(tmp_path, capsys):
    import torch
    from test_checkpoints import to_official

    from spot_tutorial import SPOT, get_preset

    model = SPOT.from_config(get_preset("tiny", num_slots=4))
    torch.save({"model": to_official(model.state_dict()), "epoch": 49}, tmp_path / "authors.pt")
    common = ["--dataset", "synthetic", "--encoder", "tiny", "--eval-orders", "all",
              "--max-images", "4", "--batch-size", "4", "--device", "cpu", "--num-workers", "0",
              "--figure-images", "0", "--no-progress"]
    assert main(["evaluate", str(tmp_path / "authors.pt"), "--num-slots", "4",
                 "--output-dir", str(tmp_path / "eval"), *common]) == 0
    printed = capsys.readouterr().out
    assert "num_slots = 4 (from --num-slots)" in printed
    assert "assumed: num_iterations = 3, slot_att_heads = 1, num_heads = 4" in printed
    written = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert written["num_slots"] == 4 and written["precision"] == "fp32"
    assert written["order_ids"] == list(range(9))
    # without --num-slots the dataset preset's count is used, and said
    assert main(["evaluate", str(tmp_path / "authors.pt"), "--output-dir", str(tmp_path / "e2"),
                 *common]) == 0
    assert "num_slots = 5 (from preset 'synthetic'" in capsys.readouterr().out


def test_evaluate_help_shows_num_slots_and_bf16(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--help"])
    text = capsys.readouterr().out
    assert "--num-slots" in text and "--bf16" in text
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "model.pt", "--num-slots", "0"])


def test_fine_tune_from_an_authors_checkpoint_and_refuse_one_that_does_not_fit(tmp_path, capsys):
    import torch
    from test_checkpoints import to_official

    from spot_tutorial import SPOT, get_preset

    authors = SPOT.from_config(get_preset("tiny"))  # a shared-Gaussian stage-1 model
    torch.save({"model": to_official(authors.state_dict())}, tmp_path / "authors.pt")
    common = ["--preset", "synthetic", "--train-images", "16", "--eval-images", "4", "--batch-size", "8",
              "--max-steps", "2", "--device", "cpu", "--no-progress"]
    assert main(["train", "--stage", "1", "--init-from", str(tmp_path / "authors.pt"),
                 "--output-dir", str(tmp_path / "ft"), *common]) == 0
    assert "(authors' checkpoint)" in capsys.readouterr().out
    assert safe_load(tmp_path / "ft" / "last.pt")["init_from"] == str(tmp_path / "authors.pt")
    # a stage-2 student from it: its learned slot embeddings are not in the file and stay fresh
    assert main(["train", "--stage", "2", "--teacher", str(tmp_path / "ft" / "last.pt"), "--init-from",
                 str(tmp_path / "authors.pt"), "--output-dir", str(tmp_path / "st"), *common]) == 0
    assert "kept as built: slot_attention.slots_init.weight" in capsys.readouterr().out
    assert main(["train", "--stage", "1", "--init-from", str(tmp_path / "authors.pt"), "--slot-size", "32",
                 "--output-dir", str(tmp_path / "bad"), *common]) == 1
    err = capsys.readouterr().err
    assert "does not fit the model being trained" in err and "slot_attention" in err


def test_evaluate_records_the_protocol_and_takes_another_mask_size(tmp_path):
    from spot_tutorial import SPOT, get_preset, save_model

    save_model(SPOT.from_config(get_preset("tiny", eval_images=4)), tmp_path / "model.pt")
    common = ["--eval-orders", "standard", "--batch-size", "4", "--device", "cpu", "--num-workers", "0",
              "--figure-images", "0", "--no-progress"]
    for size, folder in ((None, "default"), ("48", "small")):
        extra = ["--mask-size", size] if size else []
        assert main(["evaluate", str(tmp_path / "model.pt"), "--output-dir", str(tmp_path / folder),
                     *extra, *common]) == 0
    default = json.loads((tmp_path / "default" / "results.json").read_text())["protocol"]
    small = json.loads((tmp_path / "small" / "results.json").read_text())["protocol"]
    assert default["mask_size"] == 64 and small["mask_size"] == 48  # the tiny preset's own: 64
    for key in ("orders", "masks", "background", "ground_truth", "num_slots", "precision", "checkpoint"):
        assert key in default
    assert default["precision"] == "fp32" and default["order_ids"] == [0]
    assert main(["evaluate", str(tmp_path / "model.pt"), "--panoptic", *common]) == 1  # COCO only
