"""Tests for spot_tutorial.training.logs: what a run writes for people to read."""

import csv
import json

from spot_tutorial.training.logs import RunLog

METRICS = {"fg_ari": 50.0, "mbo_i": 40.0, "mbo_c": 41.0, "miou": 39.0, "num_images": 8}


def test_records_go_to_jsonl_csv_and_tensorboard(tmp_path):
    log = RunLog(tmp_path)
    log.open('{"seed": 0}', step=0)
    log.train(1, 0, {"loss": 0.5, "lr": 1e-4})
    log.evaluation("eval", 10, 1, {"slot": METRICS, "decoder": {**METRICS, "mbo_i": 45.0}})
    log.evaluation("selection", 10, 1, {"slot": METRICS, "decoder": METRICS})
    log.summary({"steps": 10})
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in records] == ["train", "eval", "selection"]
    assert records[0] == {"kind": "train", "step": 1, "epoch": 0, "loss": 0.5, "lr": 1e-4}
    assert records[1]["decoder"]["mbo_i"] == 45.0
    rows = list(csv.reader(open(tmp_path / "eval.csv")))
    assert rows[0] == ["step", "epoch", "masks", "fg_ari", "mbo_i", "mbo_c", "miou", "num_images"]
    assert rows[1:] == [["10", "1", "slot", "50.0", "40.0", "41.0", "39.0", "8"],
                        ["10", "1", "decoder", "50.0", "45.0", "41.0", "39.0", "8"]]  # no selection rows
    assert json.loads((tmp_path / "config.json").read_text()) == {"seed": 0}
    assert json.loads((tmp_path / "summary.json").read_text()) == {"steps": 10}
    assert list((tmp_path / "tensorboard").iterdir()) and log.writer is None


def test_only_the_main_process_writes(tmp_path):
    log = RunLog(tmp_path / "run", enabled=False)
    log.open("{}", step=0)
    log.train(1, 0, {"loss": 0.5})
    log.evaluation("eval", 1, 0, {"slot": METRICS})
    log.summary({})
    assert not (tmp_path / "run").exists()
