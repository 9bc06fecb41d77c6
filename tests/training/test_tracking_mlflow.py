"""MLflow with real components: a real ``mlflow server`` process on 127.0.0.1 that a test kills
mid-run and restarts, a real SQLite store, the policy logged as a pyfunc model and loaded back.

Marked ``mlflow`` (excluded from the default run: the server takes 10-40 s to start); ``.ci/run``
runs them as its second step: ``pytest -n 2 -m mlflow``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _standins import HERE, toy_overrides
from _tracking_helpers import MLflowServer, free_port

from saferl.training.tracking import read_metrics, read_tracking_file

pytestmark = pytest.mark.mlflow
mlflow = pytest.importorskip("mlflow", reason="the mlflow extra: pip install 'saferl[mlflow]'")

TOY_RUNNER = str(HERE / "_run_toy.py")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "WANDB" not in k and "MLFLOW" not in k}
    return {**env, "HOME": str(tmp_path), "OMP_NUM_THREADS": "1", **extra}


def _sets(**extra: object) -> list[str]:
    return [a for o in toy_overrides(**extra) for a in ("--set", o)]


def _epoch_history(uri: str, run_id: str) -> list[tuple[int, float]]:
    client = mlflow.tracking.MlflowClient(uri)
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, "epoch"))


def _wait(predicate, timeout: float, proc: subprocess.Popen | None = None, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"training ended while waiting for {what}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_server_killed_mid_run_and_restarted_ends_with_every_epoch_once(tmp_path):
    """Training against a real server that is SIGKILLed and restarted: training never stops,
    the local files keep every row, the backlog reaches the server when it is back, one warning."""
    server = MLflowServer(tmp_path / "server")
    started = server.start()
    run = tmp_path / "live"
    proc = subprocess.Popen(
        [
            sys.executable,
            TOY_RUNNER,
            "--runs-dir",
            str(tmp_path),
            "--name",
            "live",
            *_sets(
                **{
                    "train.total_steps": 64 * 100_000,  # ended by SIGTERM below
                    "tracking.backends": "[mlflow]",
                    "tracking.mlflow_uri": server.uri,
                    "tracking.mlflow_log_model": "false",
                    "tracking.flush_timeout": 60,
                }
            ),
        ],
        env=_env(tmp_path, SAFERL_TOY_SLEEP="0.1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        run_id = _wait(
            lambda: (read_tracking_file(run).get("mlflow") or {}).get("run_id"), 120, proc, "run"
        )
        _wait(lambda: len(_epoch_history(server.uri, run_id)) >= 3, 60, proc, "3 epochs")
        server.kill()
        rows_at_kill = len(read_metrics(run / "metrics.jsonl"))
        # Training goes on while the server is down.
        _wait(
            lambda: len(read_metrics(run / "metrics.jsonl")) >= rows_at_kill + 10,
            120,
            proc,
            "rows while the server is down",
        )
        restarted = server.start()
        target = len(read_metrics(run / "metrics.jsonl"))
        # The backlog reaches the server while training still runs.
        _wait(lambda: len(_epoch_history(server.uri, run_id)) >= target, 60, proc, "the backlog")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
        local = read_metrics(run / "metrics.jsonl")
        history = _epoch_history(server.uri, run_id)
        assert history == [(r["env_steps"], float(r["epoch"])) for r in local]  # each once
        client = mlflow.tracking.MlflowClient(server.uri)
        returns = {m.step: m.value for m in client.get_metric_history(run_id, "ep_return")}
        assert returns == {r["env_steps"]: r["ep_return"] for r in local}
        assert client.get_run(run_id).info.status == "FINISHED"
        log = (run / "log.jsonl").read_text()
        assert log.count("tracker 'mlflow' failed") == 1
        assert "tracker 'mlflow' is back" in log
        delivery = read_tracking_file(run)["mlflow"]["delivery"]
        assert delivery["undelivered_epochs"] == "" and delivery["failures"] >= 1
        print(f"server start {started:.1f} s, restart {restarted:.1f} s, {len(local)} epochs")
    finally:
        if proc.poll() is None:
            proc.kill()
        server.kill()


def test_resume_after_sigkill_reopens_the_same_mlflow_run_with_each_epoch_once(tmp_path):
    store = f"sqlite:///{tmp_path / 'store.db'}"
    run = tmp_path / "k"
    proc = subprocess.Popen(
        [
            sys.executable,
            TOY_RUNNER,
            "--runs-dir",
            str(tmp_path),
            "--name",
            "k",
            *_sets(
                **{
                    "tracking.backends": "[mlflow]",
                    "tracking.mlflow_uri": store,
                    "tracking.mlflow_log_model": "false",
                }
            ),
        ],
        env=_env(tmp_path, SAFERL_TOY_SLEEP="0.4"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def rows_after_checkpoint():
        info = read_tracking_file(run).get("mlflow") or {}
        n = len(read_metrics(run / "metrics.jsonl"))
        return info.get("run_id") and n >= 4 and n % 3 != 0

    _wait(rows_after_checkpoint, 120, proc, "rows after the epoch-3 checkpoint")
    run_id = read_tracking_file(run)["mlflow"]["run_id"]
    _wait(lambda: len(_epoch_history(store, run_id)) >= 4, 60, proc, "delivered rows")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    before = _epoch_history(store, run_id)
    assert max(s for s, _ in before) > 3 * 64  # the server holds rows after the checkpoint
    res = subprocess.run(
        [sys.executable, TOY_RUNNER, "--resume", str(run)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    client = mlflow.tracking.MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("saferl-Toy-v0").experiment_id])
    assert [r.info.run_id for r in runs] == [run_id]  # reopened, never duplicated
    local = read_metrics(run / "metrics.jsonl")
    assert _epoch_history(store, run_id) == [(r["env_steps"], float(r["epoch"])) for r in local]
    assert len(local) == 10
    params = client.get_run(run_id).data.params
    assert params["algo.name"] == "toy" and params["train.total_steps"] == "640"
    assert client.get_run(run_id).info.status == "FINISHED"


WHEELCHAIR = [
    "env.num_envs=8",
    "train.steps_per_epoch=512",
    "train.total_steps=1024",
    "train.plot_every=1000",
    "train.progress=false",
    "train.best_eval_episodes=0",
    "algo.critic_epochs=1",
    "algo.critic_minibatch=256",
    "algo.cg_iters=3",
]


def test_policy_logged_as_a_pyfunc_model_gives_saferls_own_actions(tmp_path, monkeypatch):
    store = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "saferl",
            "train",
            "--runs-dir",
            str(tmp_path),
            "--name",
            "wc",
            "--use-mlflow",
            "--tracking-uri",
            store,
            *[a for o in WHEELCHAIR for a in ("--set", o)],
        ],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    run = tmp_path / "wc"
    info = read_tracking_file(run)["mlflow"]
    assert info["delivery"]["undelivered_epochs"] == ""
    mlflow.set_tracking_uri(store)  # models:/ URIs resolve through the tracking store
    try:
        model = mlflow.pyfunc.load_model(info["model_uri"])
    finally:
        mlflow.set_tracking_uri(None)
    import saferl

    ckpt = "best" if (run / "checkpoints" / "best.pt").exists() else "last"
    own = saferl.load_model(str(run), checkpoint=ckpt)
    env = own.env_factory(num_envs=16, **own.env_options)
    obs, _ = env.reset(seed=123)
    obs = np.asarray(obs, np.float32)
    want = own.policy.act(obs, None, deterministic=True, rng=None)
    got = np.asarray(model.predict(obs))
    np.testing.assert_array_equal(got, want)
    spec = model.metadata.signature.inputs.to_dict()[0]["tensor-spec"]
    assert list(spec["shape"]) == [-1, obs.shape[1]] and spec["dtype"] == "float32"
    client = mlflow.tracking.MlflowClient(store)
    artifacts = {a.path for a in client.list_artifacts(info["run_id"])}
    assert {"config.yaml", "manifest.json", "metrics.csv", "plots"} <= artifacts
    tags = client.get_run(info["run_id"]).data.tags
    assert tags["saferl.env"] == "WheelchairSC-v0" and tags["saferl.algo"] == "cpo"
    assert tags["saferl.seed"] == "0" and "saferl.version.torch" in tags
    # MLflow's implicit defaults (./mlflow.db, ./mlruns) are never used.
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()

    # `saferl evaluate` sends its files and numbers to the same MLflow run, no new run.
    res = _evaluate(run, tmp_path)
    assert res.returncode == 0, res.stderr
    assert f"evaluation sent to MLflow run {info['run_id']}" in res.stdout
    sent = {a.path for a in client.list_artifacts(info["run_id"], "eval")}
    assert {"eval/results.json", "eval/episodes.csv", "eval/report.md"} <= sent
    results = json.loads((run / "eval" / "results.json").read_text())
    logged = client.get_run(info["run_id"]).data
    n = 0
    for protocol, block in results["protocols"].items():
        for condition, summary in block["conditions"].items():
            for key in ("return", "cost", "violation_rate"):
                name = f"eval/{protocol}/{condition}/{key}"
                assert logged.metrics[name] == pytest.approx(summary[key]["estimate"]), name
                n += 1
    assert n >= 3
    assert logged.tags["saferl.eval.checkpoint"] == results["model"]["checkpoint"]
    experiment = client.get_run(info["run_id"]).info.experiment_id
    assert [r.info.run_id for r in client.search_runs([experiment])] == [info["run_id"]]

    # The tracking server is down: the evaluation still succeeds, with one warning line.
    down = tmp_path / "down"
    shutil.copytree(run, down, ignore=shutil.ignore_patterns("eval"))
    tracking = json.loads((down / "tracking.json").read_text())
    tracking["mlflow"]["tracking_uri"] = f"http://127.0.0.1:{free_port()}"
    (down / "tracking.json").write_text(json.dumps(tracking))
    res = _evaluate(down, tmp_path)
    assert res.returncode == 0, res.stderr
    warnings = [line for line in res.stderr.splitlines() if "not sent to MLflow" in line]
    assert len(warnings) == 1 and "Traceback" not in res.stderr, res.stderr
    assert (down / "eval" / "results.json").is_file() and (down / "eval" / "report.md").is_file()


def _evaluate(run: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "saferl", "evaluate", str(run), "--episodes", "4"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_example_script_with_wandb_and_mlflow_offline_without_a_key(tmp_path, monkeypatch):
    """The example's flags as users know them: W&B offline (no key), MLflow in runs/mlflow.db."""
    monkeypatch.chdir(tmp_path)
    cache = os.environ.get("SAFERL_CACHE_DIR") or str(Path.home() / ".cache" / "saferl")
    res = subprocess.run(
        [
            sys.executable,
            str(HERE.parent.parent / "examples" / "train_cpo_basic.py"),
            "--env-type",
            "exoskeleton",
            "--max-iterations",
            "2",
            "--set",
            "train.steps_per_epoch=512",
            "--set",
            "env.num_envs=8",
            "--use-wandb",
            "--use-mlflow",
            "--early-stopping",
            "--name",
            "ex",
            "--set",
            "train.progress=false",
            "--set",
            "train.best_eval_episodes=0",
            "--set",
            "tracking.mlflow_log_model=false",
        ],
        env=_env(tmp_path, SAFERL_CACHE_DIR=cache),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    run = tmp_path / "runs" / "ex"
    info = read_tracking_file(run)
    assert info["wandb"]["mode"] == "offline"
    assert info["wandb"]["delivery"]["delivered_epochs"] == "1-2"
    assert info["mlflow"]["delivery"]["delivered_epochs"] == "1-2"
    assert info["mlflow"]["tracking_uri"] == f"sqlite:///{(tmp_path / 'runs').resolve()}/mlflow.db"
    assert "upload it with: wandb sync" in (run / "log.jsonl").read_text()
    # MLflow's implicit defaults (./mlflow.db, ./mlruns) are never used.
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
    assert (tmp_path / "runs" / "mlflow.db").is_file()
