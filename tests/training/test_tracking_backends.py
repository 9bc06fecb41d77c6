"""Tracking backends with real packages: TensorBoard event files read back with TensorBoard's
EventAccumulator, W&B offline run files read back from their record format, the delivery queue
(failing, recovering and overflowing backends) and the CLI's tracking flags. MLflow (which needs
a real server) is in test_tracking_mlflow.py."""

from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from _standins import HERE, toy_config, toy_overrides
from _tracking_helpers import wandb_config, wandb_history
from typer.testing import CliRunner

from saferl.registry import TRACKERS
from saferl.training.tracking import QueuedTracker, read_metrics, read_tracking_file
from saferl.training.trainer import Trainer

TOY_RUNNER = str(HERE / "_run_toy.py")


def _run(tmp_path, name="run", **extra):
    trainer = Trainer(toy_config(tmp_path, name, **extra), command=["test"])
    return trainer.train(), trainer.run_dir


def _numeric_csv(path: Path) -> list[dict[str, float]]:
    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            vals = {}
            for k, v in row.items():
                try:
                    vals[k] = float(v)
                except ValueError:
                    continue  # strings (e.g. an optimisation case name) and empty cells
            out.append(vals)
    return out


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment for a training subprocess: no W&B key (offline), no ~/.netrc, and not
    this process's W&B service (WANDB_SERVICE), which a subprocess would otherwise share."""
    env = {k: v for k, v in os.environ.items() if "WANDB" not in k}
    return {**env, "HOME": str(tmp_path), "OMP_NUM_THREADS": "1", **extra}


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


# --------------------------------------------------------------------------------------------
# TensorBoard
# --------------------------------------------------------------------------------------------


def _accumulator(log_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    ea.Reload()
    return ea


def test_tensorboard_scalars_match_metrics_csv_and_hparams_are_written(tmp_path):
    code, run = _run(tmp_path, "tb", **{"tracking.backends": "[tensorboard]"})
    assert code == 0
    rows = _numeric_csv(run / "metrics.csv")
    ea = _accumulator(run / "tensorboard")
    tags = set(ea.Tags()["scalars"])
    for column in ("ep_return", "ep_cost", "cost_limit", "epoch", "env_steps"):
        assert column in tags
    for column in rows[0]:
        if column in ("fps",) or column.startswith("time"):
            continue
        events = ea.Scalars(column)
        assert [e.step for e in events] == [int(r["env_steps"]) for r in rows], column
        for e, r in zip(events, rows, strict=True):
            assert _same(e.value, r[column]), (column, e.step, e.value, r[column])
    # hparams: the session start info names config values; final metrics are scalars too.
    from tensorboard.plugins.hparams import plugin_data_pb2

    contents = ea.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in contents
    data = plugin_data_pb2.HParamsPluginData.FromString(contents["_hparams_/session_start_info"])
    hp = data.session_start_info.hparams
    assert hp["algo.name"].string_value == "toy"
    assert hp["train.steps_per_epoch"].number_value == 64
    assert ea.Scalars("final/ep_return")[-1].value == pytest.approx(rows[-1]["ep_return"])


# --------------------------------------------------------------------------------------------
# W&B (offline)
# --------------------------------------------------------------------------------------------


def test_wandb_offline_run_files_hold_config_metrics_and_plots(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc key: auto mode is offline
    with caplog.at_level("INFO"):
        code, run = _run(tmp_path, "wb", **{"tracking.backends": "[wandb]", "train.plot_every": 5})
    assert code == 0
    info = read_tracking_file(run)["wandb"]
    assert info["mode"] == "offline"
    files = list((run / "wandb").glob(f"offline-run-*-{info['id']}/run-{info['id']}.wandb"))
    assert len(files) == 1
    assert f"wandb sync {files[0].parent}" in caplog.text  # how to upload it, once
    history = wandb_history(files[0])
    metric_rows = [h for h in history if "ep_return" in h]
    local = read_metrics(run / "metrics.jsonl")
    assert [h["_step"] for h in metric_rows] == [r["env_steps"] for r in local]
    for h, r in zip(metric_rows, local, strict=True):
        for k in ("epoch", "ep_return", "ep_cost", "cost_limit"):
            assert _same(float(h[k]), float(r[k])), (k, h[k], r[k])
    images = {k.split("/")[1] for h in history for k in h if k.startswith("plots/")}
    assert {"returns", "costs"} <= images
    config = wandb_config(files[0])
    assert config["algo"]["name"] == "toy" and config["env"]["id"] == "Toy-v0"


def test_wandb_online_without_a_key_falls_back_to_offline(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with caplog.at_level("WARNING"):
        code, run = _run(
            tmp_path,
            "wbon",
            **{"tracking.backends": "[wandb]", "tracking.wandb_mode": "online"},
        )
    assert code == 0
    assert read_tracking_file(run)["wandb"]["mode"] == "offline"
    assert caplog.text.count("no API key was found") == 1


# --------------------------------------------------------------------------------------------
# resume after SIGKILL: TensorBoard keeps each step once, W&B keeps its run id
# --------------------------------------------------------------------------------------------


def test_resume_after_sigkill_keeps_tensorboard_steps_once_and_the_wandb_run_id(tmp_path):
    env = _clean_env(tmp_path, SAFERL_TOY_SLEEP="0.25")
    sets = [
        a
        for o in toy_overrides(**{"tracking.backends": "[tensorboard, wandb]"})
        for a in ("--set", o)
    ]
    run = tmp_path / "k"
    proc = subprocess.Popen(
        [sys.executable, TOY_RUNNER, "--runs-dir", str(tmp_path), "--name", "k", *sets],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        n = len(read_metrics(run / "metrics.jsonl"))
        if n >= 4 and n % 3 != 0:  # checkpoint at epoch 3, rows after it
            break
        assert proc.poll() is None, "training ended before the kill"
        time.sleep(0.02)
    time.sleep(0.3)  # let the delivery threads write the row
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    wandb_id = read_tracking_file(run)["wandb"]["id"]
    res = subprocess.run(
        [sys.executable, TOY_RUNNER, "--resume", str(run)],
        env={**env, "SAFERL_TOY_SLEEP": "0"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    local = read_metrics(run / "metrics.jsonl")
    assert [r["epoch"] for r in local] == list(range(1, 11))
    ea = _accumulator(run / "tensorboard")
    events = ea.Scalars("epoch")
    assert [e.step for e in events] == [r["env_steps"] for r in local]  # purged, each step once
    assert [e.value for e in events] == [float(r["epoch"]) for r in local]
    assert read_tracking_file(run)["wandb"]["id"] == wandb_id
    segments = sorted((run / "wandb").glob(f"offline-run-*-{wandb_id}"))
    assert len(segments) == 2  # the killed process's and the resumed one's, one W&B run id
    resumed = wandb_history(segments[-1] / f"run-{wandb_id}.wandb")
    assert [h["epoch"] for h in resumed if "epoch" in h][-1] == 10


# --------------------------------------------------------------------------------------------
# failure isolation
# --------------------------------------------------------------------------------------------


class _AlwaysFails:
    def __init__(self, run_dir, tracking_config):
        self.calls = 0

    def _fail(self, *args):
        self.calls += 1
        raise ConnectionError("tracking server unreachable")

    log_params = log_metrics = log_artifact = close = _fail


def test_backend_raising_on_every_call_never_stops_training_and_is_reported_once(tmp_path, caplog):
    TRACKERS.register("always_fails", _AlwaysFails, overwrite=True)
    t0 = time.monotonic()
    with caplog.at_level("INFO"):
        code, run = _run(tmp_path, "fail", **{"tracking.backends": "[always_fails]"})
    elapsed = time.monotonic() - t0
    assert code == 0
    assert [r["epoch"] for r in read_metrics(run / "metrics.jsonl")] == list(range(1, 11))
    assert caplog.text.count("tracker 'always_fails' failed") == 1
    # The end-of-run report names what the backend does not hold.
    assert "tracker 'always_fails': NOT delivered: epochs 1-10" in caplog.text
    delivery = read_tracking_file(run)["always_fails"]["delivery"]
    assert delivery["delivered_rows"] == 0 and delivery["undelivered_epochs"] == "1-10"
    assert elapsed < 30  # the end of the run gives a dead backend a few quick retries only


class _Outage:
    """Fails while ``down`` is set; records what it received."""

    def __init__(self):
        self.down = threading.Event()
        self.down.set()
        self.rows: list[int] = []
        self.closed = False

    def log_params(self, params):
        pass

    def log_metrics(self, metrics, step):
        if self.down.is_set():
            raise ConnectionError("down")
        self.rows.append(metrics["epoch"])

    def log_artifact(self, path):
        pass

    def close(self):
        self.closed = True


def test_backend_that_comes_back_receives_its_backlog_in_order(caplog):
    backend = _Outage()
    q = QueuedTracker("outage", backend, queue_size=100, flush_timeout=30)
    with caplog.at_level("INFO"):
        t0 = time.perf_counter()
        for e in range(1, 6):
            q.log_metrics({"epoch": e}, step=e)
        enqueue = time.perf_counter() - t0
        time.sleep(1.0)  # a few failed attempts
        backend.down.clear()
        for e in range(6, 9):
            q.log_metrics({"epoch": e}, step=e)
        q.close()
    assert enqueue < 0.05  # the training loop's calls never wait for the backend
    assert backend.rows == list(range(1, 9)) and backend.closed
    assert q.report.complete and q.report.delivered == list(range(1, 9))
    assert caplog.text.count("tracker 'outage' failed") == 1
    assert "tracker 'outage' is back" in caplog.text


def test_full_queue_drops_the_oldest_rows_and_the_report_names_them():
    backend = _Outage()
    q = QueuedTracker("small", backend, queue_size=3, flush_timeout=0.5)
    for e in range(1, 8):
        q.log_metrics({"epoch": e}, step=e)
    q.close()  # still down: nothing delivered
    assert q.report.dropped == [1, 2, 3, 4]
    assert q.report.pending == [5, 6, 7]
    assert not q.report.complete
    assert "epochs 1-7" in q.report.lines()[1]


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _cli(args, monkeypatch, hide=()):
    from saferl.cli import app

    for module in hide:
        monkeypatch.setitem(sys.modules, module, None)  # find_spec -> None: "not installed"
    return CliRunner().invoke(app, args)


@pytest.mark.parametrize(
    ("flag", "package", "extra"),
    [
        ("--use-mlflow", "mlflow", "mlflow"),
        ("--use-wandb", "wandb", "wandb"),
        ("--use-tensorboard", "tensorboard", "tensorboard"),
    ],
)
def test_backend_without_its_package_is_one_line_naming_the_extra(
    tmp_path, monkeypatch, flag, package, extra
):
    res = _cli(["train", flag, "--runs-dir", str(tmp_path)], monkeypatch, hide=[package])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert lines == [
        f"error: tracking backend '{package}' needs the {package} package: "
        f"pip install 'saferl[{extra}]'"
    ]
    assert not any(tmp_path.iterdir())  # no run directory


def test_settings_that_would_do_nothing_are_refused(tmp_path, monkeypatch):
    res = _cli(
        ["train", "--tracking-uri", "http://127.0.0.1:1", "--runs-dir", str(tmp_path)], monkeypatch
    )
    assert res.exit_code == 2
    assert "--tracking-uri is the MLflow tracking URI; add --use-mlflow" in res.output
    res = _cli(
        ["train", "--set", "tracking.wandb_entity=me", "--runs-dir", str(tmp_path)], monkeypatch
    )
    assert res.exit_code == 2
    assert "tracking.wandb_entity: only used by the wandb backend" in res.output
    res = _cli(
        ["train", "--set", "tracking.backends=[nope]", "--runs-dir", str(tmp_path)], monkeypatch
    )
    assert res.exit_code == 2 and "unknown tracker 'nope'" in res.output
    assert not any(tmp_path.iterdir())


def test_use_flags_add_to_the_configs_backends(tmp_path):
    """--use-tensorboard on a config that already asks for W&B runs both."""
    from saferl.config import dump_config

    config = tmp_path / "toy.yaml"
    dump_config(
        toy_config(
            tmp_path, "unused", **{"tracking.backends": "[wandb]", "train.total_steps": 128}
        ),
        config,
    )
    res = subprocess.run(
        [
            sys.executable,
            str(HERE / "_run_toy_cli.py"),
            "train",
            "--use-tensorboard",
            "--runs-dir",
            str(tmp_path),
            "--name",
            "both",
            "--config",
            str(config),
        ],
        env=_clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert set(read_tracking_file(tmp_path / "both")) >= {"wandb", "tensorboard"}
    import yaml

    cfg = yaml.safe_load((tmp_path / "both" / "config.yaml").read_text())
    assert cfg["tracking"]["backends"] == ["wandb", "tensorboard"]
