"""Local tracker files and the failure isolation of MultiTracker."""

from __future__ import annotations

import csv
import json
import math

from saferl.training.tracking import LocalTracker, MultiTracker, read_metrics


def _csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_one_row_per_epoch_in_csv_and_jsonl(tmp_path):
    t = LocalTracker(tmp_path)
    t.log_metrics({"epoch": 1, "ep_return": 1.5, "ep_cost": math.nan}, step=100)
    t.log_metrics({"epoch": 2, "ep_return": 2.25, "ep_cost": 3.0}, step=200)
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[0]["ep_cost"] is None  # JSON has no NaN
    assert rows[1]["env_steps"] == 200
    csv_rows = _csv_rows(tmp_path / "metrics.csv")
    assert [r["ep_return"] for r in csv_rows] == ["1.5", "2.25"]
    assert csv_rows[0]["ep_cost"] == ""


def test_new_column_rewrites_csv_header(tmp_path):
    t = LocalTracker(tmp_path)
    t.log_metrics({"epoch": 1, "a": 1.0}, step=1)
    t.log_metrics({"epoch": 2, "a": 2.0, "b": 5}, step=2)
    rows = _csv_rows(tmp_path / "metrics.csv")
    assert rows[0]["b"] == "" and rows[1]["b"] == "5"


def test_resume_truncates_rows_after_checkpoint_epoch(tmp_path):
    t = LocalTracker(tmp_path)
    for e in range(1, 6):
        t.log_metrics({"epoch": e, "x": float(e)}, step=e)
    # A partial line from a kill mid-write.
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 6, "x"')
    t2 = LocalTracker(tmp_path, resume_epoch=3)
    t2.log_metrics({"epoch": 4, "x": 40.0}, step=4)
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [(r["epoch"], r["x"]) for r in rows] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0)]
    assert [r["epoch"] for r in _csv_rows(tmp_path / "metrics.csv")] == ["1", "2", "3", "4"]


class _Broken:
    def __init__(self):
        self.calls = 0

    def log_params(self, params):
        pass

    def log_metrics(self, metrics, step):
        self.calls += 1
        raise ConnectionError("server down")

    def log_artifact(self, path):
        raise ConnectionError("server down")

    def close(self):
        pass


def test_failing_backend_reported_once_and_local_rows_kept(tmp_path, caplog):
    broken = _Broken()
    multi = MultiTracker([("local", LocalTracker(tmp_path)), ("remote", broken)])
    with caplog.at_level("WARNING"):
        for e in range(1, 4):
            multi.log_metrics({"epoch": e}, step=e)
        multi.log_artifact(tmp_path / "x.png")
        multi.close()
    assert len(read_metrics(tmp_path / "metrics.jsonl")) == 3
    assert broken.calls == 3  # still tried (it may recover)
    assert caplog.text.count("tracker 'remote' failed") == 1
    assert multi.failures["remote"] == 4


def test_jsonl_rows_are_valid_json_lines(tmp_path):
    t = LocalTracker(tmp_path)
    t.log_metrics({"epoch": 1, "case": "feasible", "inf": math.inf}, step=1)
    line = (tmp_path / "metrics.jsonl").read_text().splitlines()[0]
    assert json.loads(line) == {"epoch": 1, "case": "feasible", "inf": None, "env_steps": 1}
