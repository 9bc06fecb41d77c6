"""The trainer end to end: run directory, exact resume, graceful stop, rollback, env errors,
transfer. Fast cases run the stand-ins (tests/training/_standins.py) through the real loop, the
real RolloutCollector and the real files; the exactness-after-SIGKILL case runs CPO on
WheelchairSC-v0 in a subprocess."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _standins import HERE, toy_config, toy_overrides

from saferl.config import ConfigError, load_config
from saferl.training.callbacks import Callback
from saferl.training.checkpoint import RunManifest, load_checkpoint
from saferl.training.tracking import read_metrics
from saferl.training.trainer import Trainer, TrainError, run_train
from saferl.utils import sha256_file

TOY_RUNNER = str(HERE / "_run_toy.py")


def deterministic(rows):
    """Metrics rows without the wall-clock columns (fps, time/*, the algorithm's time_*)."""
    return [{k: v for k, v in r.items() if not (k == "fps" or k.startswith("time"))} for r in rows]


def final_state(run_dir: Path) -> dict:
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")


def assert_same_tree(a, b, path="state"):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            assert_same_tree(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_tree(x, y, f"{path}[{i}]")
    elif hasattr(a, "shape"):  # numpy arrays
        assert (a == b).all(), path
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), path
    else:
        assert a == b, path


def assert_same_training_state(run_a: Path, run_b: Path) -> None:
    a, b = final_state(run_a), final_state(run_b)
    for key in ("algo", "env", "collector", "counters", "hparams"):
        if key == "counters":
            a[key].pop("train_time"), b[key].pop("train_time")
        assert_same_tree(a[key], b[key], key)
    assert_same_tree(a["rng"], b["rng"], "rng")


def run_toy(runs_dir, name="run", **extra) -> tuple[int, Path]:
    trainer = Trainer(toy_config(runs_dir, name, **extra), command=["test"])
    return trainer.train(), trainer.run_dir


# --------------------------------------------------------------------------------------------
# run directory
# --------------------------------------------------------------------------------------------


def test_run_directory_holds_config_manifest_metrics_checkpoints_plots_and_log(tmp_path, capsys):
    code, run = run_toy(tmp_path, "layout", **{"train.plot_every": 5})
    assert code == 0
    assert load_config(run / "config.yaml") == toy_config(
        tmp_path, "layout", **{"train.plot_every": 5}
    )
    manifest = json.loads((run / "manifest.json").read_text())
    for key in ("command", "seed", "git_commit", "versions", "created", "checkpoints"):
        assert key in manifest, key
    assert manifest["status"] == "finished" and manifest["command"] == ["test"]
    assert "torch" in manifest["versions"]
    for name, entry in manifest["checkpoints"].items():
        assert sha256_file(run / "checkpoints" / name) == entry["sha256"]
    # 640 steps / 64 per epoch = 10 epochs; checkpoint_every=3 and keep_checkpoints=3
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["best.pt", "epoch_10.pt", "epoch_6.pt", "epoch_9.pt", "last.pt"]
    rows = read_metrics(run / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == list(range(1, 11))
    assert rows[-1]["env_steps"] == 640
    for col in ("ep_return", "ep_cost", "ep_len", "cost_limit", "violation_rate", "kl"):
        assert col in rows[0]
    assert (run / "metrics.csv").read_text().count("\n") == 11
    assert {p.name for p in (run / "plots").glob("*.png")} >= {"returns.png", "costs.png"}
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert any("epoch 10" in r["message"] for r in log)
    out = capsys.readouterr().out
    assert "final return" in out and "best model" in out and str(run / "plots") in out


def test_existing_run_is_not_overwritten(tmp_path):
    run_toy(tmp_path, "dup", **{"train.total_steps": 64})
    with pytest.raises(TrainError, match="--resume"):
        run_toy(tmp_path, "dup")


def test_user_errors_are_one_line_train_errors(tmp_path):
    with pytest.raises(TrainError, match="no run there"):
        run_train(None, [], resume=str(tmp_path / "nope"), command=["x"])
    with pytest.raises(ConfigError, match=r"env\.id: unknown environment"):
        run_toy(tmp_path, "bad", **{"env.id": "Nope-v0"})
    assert not (tmp_path / "bad").exists()  # no half-made run directory


# --------------------------------------------------------------------------------------------
# resume
# --------------------------------------------------------------------------------------------


def test_finished_run_resumed_with_more_steps_matches_one_long_run(tmp_path):
    _, ref = run_toy(tmp_path / "ref", "r")
    code, short = run_toy(tmp_path / "short", "r", **{"train.total_steps": 320})
    assert code == 0 and len(read_metrics(short / "metrics.jsonl")) == 5
    trainer = Trainer.resume(short, ["train.total_steps=640"], command=["resume"])
    assert trainer.epoch == 5
    assert trainer.train() == 0
    assert deterministic(read_metrics(short / "metrics.jsonl")) == deterministic(
        read_metrics(ref / "metrics.jsonl")
    )
    assert_same_training_state(ref, short)
    manifest = RunManifest(short / "manifest.json").data
    assert manifest["resumes"][0]["epoch"] == 5 and manifest["status"] == "finished"


def test_corrupt_last_checkpoint_is_refused_and_resume_uses_the_previous(tmp_path, caplog):
    _, ref = run_toy(tmp_path / "ref", "r")
    _, run = run_toy(tmp_path / "b", "r", **{"train.total_steps": 448})  # 7 epochs
    # Corrupt last.pt and epoch_7.pt (the same bytes): resume must fall back to epoch_6.pt.
    for name in ("last.pt", "epoch_7.pt"):
        p = run / "checkpoints" / name
        data = bytearray(p.read_bytes())
        data[-100] ^= 0xFF
        p.write_bytes(bytes(data))
    with caplog.at_level("WARNING"):
        trainer = Trainer.resume(run, ["train.total_steps=640"])
    assert "refusing" in caplog.text and "does not match" in caplog.text
    assert trainer.epoch == 6
    assert trainer.train() == 0
    assert deterministic(read_metrics(run / "metrics.jsonl")) == deterministic(
        read_metrics(ref / "metrics.jsonl")
    )
    assert_same_training_state(ref, run)


def _wait_for_rows(path: Path, proc: subprocess.Popen, ok, timeout: float = 90) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = len(read_metrics(path))
        if ok(n):
            return n
        if proc.poll() is not None:
            raise AssertionError(f"training ended early: {proc.communicate()}")
        time.sleep(0.01)
    proc.kill()
    raise AssertionError("timed out waiting for metrics rows")


WHEELCHAIR = [
    "env.num_envs=8",
    "train.steps_per_epoch=512",
    "train.total_steps=4096",  # 8 epochs
    "train.checkpoint_every=3",
    "train.plot_every=1000",
    "train.progress=false",
    "algo.critic_epochs=2",
    "algo.critic_minibatch=256",
    "algo.cg_iters=5",
]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "saferl", "train", *args]


def _sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    """CPO on WheelchairSC-v0 killed with SIGKILL between checkpoints, then resumed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = subprocess.run(
        _cli("--runs-dir", str(tmp_path), "--name", "ref", *_sets(WHEELCHAIR)),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ref.returncode == 0, ref.stderr
    run = tmp_path / "killed"
    # Each update sleeps 1 s first: the kill lands in that sleep, well after the row of the
    # previous epoch and well before the next checkpoint.
    proc = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "_run_slow_cli.py"),
            "train",
            "--runs-dir",
            str(tmp_path),
            "--name",
            "killed",
            *_sets(WHEELCHAIR),
        ],
        env={**env, "SAFERL_SLOW_UPDATE": "1.0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Rows 4 or 5 exist: checkpoint at epoch 3, the next one would be at epoch 6.
    _wait_for_rows(run / "metrics.jsonl", proc, lambda n: n >= 4 and n % 3 != 0)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    rows = len(read_metrics(run / "metrics.jsonl"))
    saved_epoch = RunManifest(run / "manifest.json").checkpoints["last.pt"]["epoch"]
    # Rows after the checkpoint were written, then lost to the kill.
    assert saved_epoch == 3 < rows, (saved_epoch, rows)
    res = subprocess.run(
        _cli("--resume", str(run)), env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    got = read_metrics(run / "metrics.jsonl")
    want = read_metrics(tmp_path / "ref" / "metrics.jsonl")
    assert [r["epoch"] for r in got] == list(range(1, 9))
    assert deterministic(got) == deterministic(want)
    assert_same_training_state(tmp_path / "ref", run)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_finishes_the_update_checkpoints_and_exits_zero(tmp_path, sig):
    env = {**os.environ, "SAFERL_TOY_SLEEP": "0.2"}
    run = tmp_path / "term"
    proc = subprocess.Popen(
        [
            sys.executable,
            TOY_RUNNER,
            "--runs-dir",
            str(tmp_path),
            "--name",
            "term",
            *_sets(toy_overrides()),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_rows(run / "metrics.jsonl", proc, lambda n: n >= 2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"stopped by {sig.name}" in out and f"saferl train --resume {run}" in out
    rows = read_metrics(run / "metrics.jsonl")
    manifest = RunManifest(run / "manifest.json")
    assert manifest.data["status"] == "stopped"
    assert manifest.checkpoints["last.pt"]["epoch"] == len(rows) < 10
    if sig is signal.SIGINT:
        return  # same handler; the resume check below runs once
    # ... and the stopped run resumes to the same end as an uninterrupted one.
    _, ref = run_toy(tmp_path / "ref", "r")
    assert Trainer.resume(run).train() == 0
    assert deterministic(read_metrics(run / "metrics.jsonl")) == deterministic(
        read_metrics(ref / "metrics.jsonl")
    )
    assert_same_training_state(ref, run)


# --------------------------------------------------------------------------------------------
# failures
# --------------------------------------------------------------------------------------------


class _Spy(Callback):
    """Records the actor weights before each update and after it."""

    name = "spy"

    def __init__(self):
        super().__init__()
        self.before, self.after = [], []

    def on_rollout_end(self, rollout_metrics):
        self.before.append(self.trainer.algo.actor.weight.detach().clone())

    def on_epoch_end(self, metrics):
        self.after.append(self.trainer.algo.actor.weight.detach().clone())
        return True


def test_nan_update_is_rolled_back_step_shrunk_and_training_continues(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("SAFERL_TOY_NAN_AT", "2")  # the third update produces NaN weights
    spy = _Spy()
    trainer = Trainer(toy_config(tmp_path, "rollback"), extra_callbacks=[spy])
    with caplog.at_level("WARNING"):
        assert trainer.train() == 0
    rows = read_metrics(trainer.run_dir / "metrics.jsonl")
    assert [r["update_failed"] for r in rows] == [0, 0, 1] + [0] * 7
    assert torch.equal(spy.after[2], spy.before[2])  # exactly the pre-update weights
    assert not torch.equal(spy.after[3], spy.before[3])  # later updates proceed
    assert all(torch.isfinite(w).all() for w in spy.after)
    assert trainer.algo.config.target_kl == pytest.approx(0.005)  # 0.01 halved once
    assert trainer.algo.critic_optim.param_groups[0]["lr"] == pytest.approx(5e-4)
    assert "rolled back" in caplog.text
    # The shrunk step survives a checkpoint round trip.
    assert final_state(trainer.run_dir)["hparams"]["target_kl"] == pytest.approx(0.005)


def test_repeated_nan_updates_stop_the_run_with_the_last_good_checkpoint(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("SAFERL_TOY_NAN_AT", "3,4,5")
    trainer = Trainer(toy_config(tmp_path, "nan3", **{"train.max_consecutive_failures": 3}))
    assert trainer.train() == 1
    assert trainer.epoch == 6
    state = final_state(trainer.run_dir)
    assert state["counters"]["epoch"] == 6
    for t in state["algo"]["actor"].values():
        assert torch.isfinite(t).all()
    assert RunManifest(trainer.run_dir / "manifest.json").data["status"] == "failed"
    assert "3 non-finite updates in a row" in capsys.readouterr().out


def test_env_exception_is_reported_with_env_and_step_and_checkpointed(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("SAFERL_TOY_FAIL_AT", "40")  # batched step 40: during epoch 3
    trainer = Trainer(toy_config(tmp_path, "boom"))
    with caplog.at_level("ERROR"):
        assert trainer.train() == 1
    assert "environment Toy-v0 raised at env step ~128 (epoch 3)" in caplog.text
    assert "simulated physics blow-up" in caplog.text
    assert final_state(trainer.run_dir)["counters"]["epoch"] == 2
    # The checkpoint is the state at the start of the failed epoch: resuming (without the
    # fault) ends exactly like a run that never failed.
    monkeypatch.delenv("SAFERL_TOY_FAIL_AT")
    _, ref = run_toy(tmp_path / "ref", "r")
    assert Trainer.resume(trainer.run_dir).train() == 0
    assert deterministic(read_metrics(trainer.run_dir / "metrics.jsonl")) == deterministic(
        read_metrics(ref / "metrics.jsonl")
    )
    assert_same_training_state(ref, trainer.run_dir)


# --------------------------------------------------------------------------------------------
# callbacks and schedules inside the loop
# --------------------------------------------------------------------------------------------


def test_early_stopping_ends_the_run_at_the_right_epoch(tmp_path, capsys):
    # 4 envs x 16 steps = exactly 4 finished 16-step episodes per epoch: "episodes" never
    # improves after epoch 1, so patience 2 stops at epoch 3.
    code, run = run_toy(
        tmp_path,
        "es",
        **{
            "train.early_stopping.enabled": "true",
            "train.early_stopping.metric": "episodes",
            "train.early_stopping.patience": 2,
        },
    )
    assert code == 0
    assert [r["epoch"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2, 3]
    assert final_state(run)["counters"]["epoch"] == 3
    assert "early stopping" in capsys.readouterr().out


def test_critic_lr_schedule_drives_the_algorithms_critic_optimiser(tmp_path):
    trainer = Trainer(
        toy_config(
            tmp_path,
            "lr",
            **{"train.schedules": "[{target: critic_lr, kind: linear, start: 0.01, end: 0.001}]"},
        )
    )
    assert trainer.algo.critic_optim.param_groups[0]["lr"] == pytest.approx(0.01)
    trainer.train()
    rows = read_metrics(trainer.run_dir / "metrics.jsonl")
    # value for the next epoch after epoch e: 0.01 + (0.001 - 0.01) * e / 10
    assert [r["sched/critic_lr"] for r in rows] == pytest.approx(
        [0.01 - 0.0009 * e for e in range(1, 11)]
    )
    assert trainer.algo.critic_optim.param_groups[0]["lr"] == pytest.approx(0.001)


def test_cpo_critic_optimiser_is_found_by_lr_schedules():
    from saferl.algos.cpo import CPO
    from saferl.config import AlgoConfig, ScheduleConfig
    from saferl.envs.wheelchair import make_vec
    from saferl.training.schedulers import build_schedules

    env = make_vec(2)
    algo = CPO.from_env(env, AlgoConfig(), seed=0)
    scheds = build_schedules(
        [ScheduleConfig(target="critic_lr", kind="exponential", gamma=0.5)],
        algo=algo,
        env=env,
        total_epochs=3,
    )
    algo.critic_optim.step()
    scheds.step({})
    assert algo.critic_optim.param_groups[0]["lr"] == pytest.approx(0.5e-3)


# --------------------------------------------------------------------------------------------
# transfer
# --------------------------------------------------------------------------------------------


def test_init_from_copies_weights_with_fresh_optimiser_and_rejects_other_shapes(tmp_path):
    _, src = run_toy(tmp_path, "src")
    ckpt = src / "checkpoints" / "last.pt"
    trained = load_checkpoint(ckpt)["algo"]
    new = Trainer(toy_config(tmp_path, "dst", **{"train.seed": 5}), init_from=ckpt)
    assert torch.equal(new.algo.actor.weight, trained["actor"]["weight"])
    assert new.algo.critic_optim.state_dict()["state"] == {}  # new optimiser state
    assert new.algo.updates == 0
    with pytest.raises(TrainError, match=r"shape mismatch at 'actor.weight'.*\(1, 2\).*\(1, 5\)"):
        Trainer(toy_config(tmp_path, "other", **{"env.options": "{extra_obs: 3}"}), init_from=ckpt)


class _FlakyTracker:
    def __init__(self, run_dir, tracking_config):
        self.rows = 0

    def log_params(self, params):
        pass

    def log_metrics(self, metrics, step):
        self.rows += 1
        raise ConnectionError("tracking server unreachable")

    def log_artifact(self, path):
        pass

    def close(self):
        pass


def test_a_failing_tracker_backend_never_stops_training_or_loses_rows(tmp_path, caplog):
    from saferl.registry import TRACKERS

    TRACKERS.register("flaky", _FlakyTracker, overwrite=True)
    TRACKERS.register("missing", "no_such_module:Tracker", overwrite=True)
    with caplog.at_level("WARNING"):
        code, run = run_toy(tmp_path, "trk", **{"tracking.backends": "[flaky, missing]"})
    assert code == 0
    assert len(read_metrics(run / "metrics.jsonl")) == 10
    assert caplog.text.count("tracker 'flaky' failed") == 1
    assert "tracker 'missing' unavailable" in caplog.text


def test_resume_with_obs_ema_and_cost_target_matches_uninterrupted_run(tmp_path):
    # The moving averages (env state) and CPO's cost-target offset (algorithm state) survive a
    # checkpoint: stopping at epoch 5 and resuming gives the run that never stopped.
    extra = {"algo.name": "cpo", "algo.hidden_sizes": "[8]", "env.obs_ema": "{dims: [0, 1]}",
             "algo.cost_target_gain": 0.5, "env.cost_limit": 1.0}  # fmt: skip
    _, ref = run_toy(tmp_path / "ref", "e", **extra)
    code, short = run_toy(tmp_path / "short", "e", **{**extra, "train.total_steps": 320})
    assert code == 0
    trainer = Trainer.resume(short, ["train.total_steps=640"], command=["resume"])
    assert trainer.train() == 0
    assert deterministic(read_metrics(short / "metrics.jsonl")) == deterministic(
        read_metrics(ref / "metrics.jsonl")
    )
    assert_same_training_state(ref, short)
    state = final_state(ref)
    assert state["algo"]["cost_offset"] > 0  # the offset was in play
    assert state["env"]["dims"] == [0, 1]
    with pytest.raises(TrainError, match=r"^env\.obs_ema: a resumed run keeps the value"):
        Trainer.resume(short, ["env.obs_ema={dims: [0]}"])


def test_resume_refuses_a_different_number_of_envs(tmp_path):
    _, run = run_toy(tmp_path, "n", **{"train.total_steps": 128})
    with pytest.raises(TrainError, match=r"env\.num_envs"):
        Trainer.resume(run, ["env.num_envs=8"])


@pytest.mark.slow
def test_default_main_job_runs_to_the_end_with_a_summary(tmp_path):
    """`saferl train` with no arguments: CPO on WheelchairSC-v0 with the default budget."""
    start = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-m", "saferl", "train"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    elapsed = time.monotonic() - start
    assert res.returncode == 0, res.stderr[-2000:]
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("WheelchairSC-v0_cpo_")
    for line in ("final return", "final cost", "best model", "plots"):
        assert line in res.stdout
    rows = read_metrics(run / "metrics.jsonl")
    cfg = load_config()
    epochs = math.ceil(cfg.train.total_steps / cfg.train.steps_per_epoch)
    per_epoch = cfg.train.steps_per_epoch // cfg.env.num_envs * cfg.env.num_envs
    assert [r["epoch"] for r in rows] == list(range(1, epochs + 1))
    assert rows[-1]["env_steps"] == epochs * per_epoch
    print(f"default main job: {elapsed:.0f} s wall, {len(rows)} epochs")


def test_a_run_directory_is_owned_by_one_process_at_a_time(tmp_path):
    _, run = run_toy(tmp_path, "locked", **{"train.total_steps": 128})
    holder = Trainer.resume(run, ["train.total_steps=256"], command=["first"])
    code = (
        "import sys; from saferl.training.trainer import Trainer, TrainError\n"
        "try:\n"
        f"    Trainer.resume({str(run)!r}, ['train.total_steps=256'])\n"
        "except TrainError as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    )
    res = subprocess.run(
        [sys.executable, "-c", "import _standins\n_standins.register()\n" + code],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert res.returncode == 3, res.stderr
    assert f"in use by another process (pid {os.getpid()})" in res.stdout
    assert holder.train() == 0  # the owner is unaffected and releases the lock at the end
    again = Trainer.resume(run, ["train.total_steps=320"], command=["second"])
    assert again.train() == 0


def test_best_model_judged_on_evaluation_episodes_matches_an_independent_evaluation(tmp_path):
    from saferl.training.evaluation import load_run_model, run_episodes

    extra = {"algo.name": "cpo", "train.checkpoint_every": 2, "eval.num_envs": 4}
    code, run = run_toy(tmp_path, "judged", **extra, **{"train.best_eval_episodes": 8})
    assert code == 0
    rows = read_metrics(run / "metrics.jsonl")
    judged = {r["epoch"]: r for r in rows if r.get("best_eval_cost") is not None}
    assert sorted(judged) == [2, 4, 6, 8, 10]  # every checkpoint_every epochs and the last
    best = Trainer.resume(run).callbacks.get("best_model")
    assert best.best_epoch in judged
    assert best.best_return == pytest.approx(judged[best.best_epoch]["best_eval_return"])
    # the oracle: best.pt evaluated on its own, on the same episodes (seeds from eval.seed +
    # 1e6, apart from the ones saferl evaluate reports on)
    model = load_run_model(run, checkpoint="best")
    first = load_config(run / "config.yaml").eval.seed + 1_000_000
    table = run_episodes(
        model.policy,
        model.env_factory,
        range(first, first + 8),
        num_envs=4,
        env_options={},  # what the trainer builds Toy-v0 with (its factory names no levels)
    )
    assert float(np.mean(table["return"])) == pytest.approx(best.best_return, rel=1e-9)
    assert float(np.mean(table["cost"])) == pytest.approx(best.best_cost, rel=1e-9)
    # evaluating never changes the training itself
    _, plain = run_toy(tmp_path, "plain", **extra)
    assert_same_training_state(run, plain)
    assert deterministic(read_metrics(plain / "metrics.jsonl")) == [
        {k: v for k, v in r.items() if not k.startswith("best_eval")} for r in deterministic(rows)
    ]


def test_best_model_evaluation_needs_a_gaussian_actor(tmp_path):
    with pytest.raises(TrainError, match=r"^train.best_eval_episodes: .*Gaussian actor"):
        Trainer(toy_config(tmp_path, "toy", **{"train.best_eval_episodes": 4}))


def test_summary_reports_the_latest_finished_episodes_when_the_last_epoch_finished_none(
    tmp_path, capsys
):
    # 16-step episodes, 4 instances x 8 steps per epoch: episodes end in every second epoch
    code, run = run_toy(tmp_path, "long", **{"train.steps_per_epoch": 32, "train.total_steps": 96})
    rows = read_metrics(run / "metrics.jsonl")
    assert code == 0 and [r["episodes"] for r in rows] == [0, 4, 0]
    out = capsys.readouterr().out
    assert "nan" not in out
    assert f"final return  {rows[1]['ep_return']:.4g}  (epoch 2, the last one" in out
    assert f"final cost    {rows[1]['ep_cost']:.4g} / limit" in out


def test_a_callback_says_why_it_stopped_the_run(tmp_path):
    class StopAtTwo(Callback):
        name = "stop_at_two"

        def on_epoch_end(self, metrics):
            if metrics["epoch"] == 2:
                self.stop_reason = "enough after two epochs"
                return False
            return True

    trainer = Trainer(toy_config(tmp_path, "cb"), command=["t"], extra_callbacks=[StopAtTwo()])
    assert trainer.train() == 0 and trainer.epoch == 2
    assert trainer.stop_reason == "enough after two epochs"
    assert RunManifest(trainer.run_dir / "manifest.json").data["stop_reason"] == trainer.stop_reason
