"""benchmarks/learn.py trains each seed through the Trainer from a saferl config, evaluates the
runs' checkpoints and the scripted baselines on the same episodes, and takes the paired interval
from stats.py (tiny networks, one or two 512-step epochs, three evaluation episodes)."""

from __future__ import annotations

import csv
import fcntl
import importlib.util
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from saferl.config import CPOConfig, config_to_dict, load_config
from saferl.training.evaluation import load_run_model, run_episodes
from saferl.training.evaluation.stats import bootstrap_ci
from saferl.training.tracking import read_metrics

ROOT = Path(__file__).parents[1]
SCRIPT = ROOT / "benchmarks" / "learn.py"

TINY = """
env:
  id: WheelchairSC-v0
  num_envs: 8
  cost_limit: 1000  # every baseline is within it: the best feasible one has the highest return
  options:
    action_mode: assist
algo:
  name: cpo
  hidden_sizes: [16]
  critic_epochs: 1
  target_kl: 0.05
train:
  total_steps: 4096
  steps_per_epoch: 512
  progress: false
"""
#: the packaged default, made tiny (what a run without --config starts from)
TINY_SETS = [
    "env.num_envs=8",
    "train.steps_per_epoch=512",
    "algo.hidden_sizes=[16]",
    "algo.critic_epochs=1",
    "train.best_eval_episodes=0",
    "train.progress=false",
]
SEEDS = (0, 1)
EVAL_SEED, EPISODES = 20001, 3


def learn(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def sets(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


@pytest.fixture
def learn_module():
    """A fresh import of the script (nothing carries over between tests)."""
    spec = importlib.util.spec_from_file_location("learn_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, worker_id):
    """Two seeds from a config file with --set on top, evaluated on 3 episodes from 20001.

    Run once per test session: pytest-xdist workers share the directory and wait for the one
    that runs it (the recipe of pytest-xdist's docs, with a POSIX lock)."""
    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        root = root.parent  # shared by the workers of this session
    tmp = root / "learn_tiny_run"
    tmp.mkdir(exist_ok=True)
    out = tmp / "out"
    with (tmp / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "summary.json").exists():
            shutil.rmtree(out, ignore_errors=True)  # a failed attempt's
            (tmp / "tiny.yaml").write_text(TINY)
            res = learn(
                "--config", "tiny.yaml",
                "--set", "algo.target_kl=0.02", "--set", "env.options.action_mode=blend",
                "--seeds", *map(str, SEEDS), "--steps", "512", "--eval-seed", str(EVAL_SEED),
                "--baseline-episodes", str(EPISODES), "--final-episodes", str(EPISODES),
                "--out", str(out), "--quiet",
                cwd=tmp,
            )  # fmt: skip
            assert res.returncode == 0, res.stderr
    return out


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def _same(a, b) -> bool:
    return a == b or (
        isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    )


def test_set_overrides_the_config_file_which_replaces_the_packaged_default(tiny_run):
    packaged = load_config()
    for seed in SEEDS:
        cfg = yaml.safe_load((tiny_run / f"seed{seed}" / "config.yaml").read_text())
        # --set over the file
        assert cfg["algo"]["target_kl"] == 0.02
        assert cfg["env"]["options"] == {"action_mode": "blend"}
        # the file over the packaged default: where it says nothing, the field defaults
        assert cfg["algo"]["hidden_sizes"] == [16] and cfg["env"]["num_envs"] == 8
        assert packaged.env.obs_ema is not None and cfg["env"]["obs_ema"] is None
        assert cfg["algo"]["cost_target_gain"] == CPOConfig().cost_target_gain
        assert cfg["algo"]["cost_target_gain"] != packaged.algo.cost_target_gain
        # the flags that are fields, and what --seeds/--out set
        assert cfg["train"]["total_steps"] == 512 and cfg["eval"]["seed"] == EVAL_SEED
        assert cfg["train"]["seed"] == seed and cfg["train"]["name"] == f"seed{seed}"
        assert Path(cfg["train"]["runs_dir"]) == tiny_run


def test_each_seed_is_a_trainer_run_whose_metrics_are_the_curves(tiny_run):
    summary = json.loads((tiny_run / "summary.json").read_text())
    with (tiny_run / "curves.csv").open() as f:
        curves = list(csv.DictReader(f))
    for seed in SEEDS:
        run_dir = tiny_run / f"seed{seed}"
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert manifest["seed"] == seed and manifest["status"] == "finished"
        assert (run_dir / "checkpoints" / "last.pt").is_file()
        with (run_dir / "metrics.csv").open() as f:
            metrics = list(csv.DictReader(f))
        mine = [r for r in curves if r["seed"] == str(seed)]
        assert len(mine) == len(metrics) == 1
        for row, ref in zip(mine, metrics, strict=True):
            assert all(_same(_number(row[k]), _number(v)) for k, v in ref.items()), (row, ref)
        info = summary["per_seed"][str(seed)]
        assert info["epochs"] == len(metrics)
        assert info["env_steps"] == int(metrics[-1]["env_steps"])


def test_paired_interval_is_stats_bootstrap_ci_of_the_saved_episodes(tiny_run):
    summary = json.loads((tiny_run / "summary.json").read_text())
    baselines = json.loads((tiny_run / "baselines.json").read_text())
    assert baselines and all(
        b["first_seed"] == EVAL_SEED and len(b["returns"]) == EPISODES for b in baselines.values()
    )
    best = max(baselines, key=lambda k: baselines[k]["ep_return"])
    targets = summary["targets"]
    assert targets["best_feasible_baseline"] == best
    assert targets["measured_on"] == "final evaluation, sampled actions"
    paired = targets["sampled_return_minus_best_baseline_per_seed"]
    assert sorted(paired) == [str(s) for s in SEEDS]
    for seed in SEEDS:
        final = json.loads((tiny_run / f"seed{seed}_final_eval.json").read_text())
        sampled = final["sampled"]
        assert sampled["first_seed"] == EVAL_SEED and len(sampled["returns"]) == EPISODES
        d = np.asarray(sampled["returns"]) - np.asarray(baselines[best]["returns"])
        ci = bootstrap_ci(d, confidence=0.95)
        got = paired[str(seed)]
        assert (got["mean"], got["ci95_low"], got["ci95_high"]) == (ci.estimate, ci.low, ci.high)
        assert summary["per_seed"][str(seed)]["final_eval"]["sampled"][
            "ep_return"
        ] == pytest.approx(np.mean(sampled["returns"]))
    assert targets["every_seed_significantly_above_best_baseline"] == all(
        d["ci95_low"] > 0 for d in paired.values()
    )
    assert "returns" not in summary["baselines"][best]  # per-episode lists stay in their files


def test_final_evaluation_is_the_runs_last_checkpoint_on_the_evaluation_seeds(tiny_run):
    run_dir = tiny_run / "seed1"
    final = json.loads((tiny_run / "seed1_final_eval.json").read_text())
    assert Path(final["checkpoint"]).name == "last.pt"
    model = load_run_model(run_dir, checkpoint="last")
    table = run_episodes(
        model.policy,
        model.env_factory,
        range(EVAL_SEED, EVAL_SEED + EPISODES),
        env_options=model.env_options,
        deterministic=False,
    )
    assert [float(x) for x in table["return"]] == final["sampled"]["returns"]
    assert [float(x) for x in table["cost"]] == final["sampled"]["costs"]


def test_summarize_only_rebuilds_the_same_summary(tiny_run, tmp_path, learn_module, monkeypatch):
    monkeypatch.setattr(learn_module, "configure_logging", lambda level: None)
    out = tmp_path / "out"
    shutil.copytree(tiny_run, out)
    (out / "summary.json").unlink()
    (out / "curves.csv").unlink()
    argv = ["--summarize-only", "--out", str(out), "--seeds", *map(str, SEEDS)]
    assert learn_module.main(argv) == 0
    old = json.loads((tiny_run / "summary.json").read_text())
    new = json.loads((out / "summary.json").read_text())
    for key in ("command", "run_dirs"):
        old.pop(key), new.pop(key)
    assert new == old
    assert (out / "curves.csv").read_text() == (tiny_run / "curves.csv").read_text()


def test_without_config_the_packaged_default_and_a_seed_resumes(tmp_path):
    common = [
        *sets(TINY_SETS),
        "--no-baselines",
        "--final-episodes",
        "0",
        "--out",
        "out",
        "--quiet",
    ]
    res = learn(*common, "--steps", "512", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    run_dir = tmp_path / "out" / "seed0"
    expected = load_config(
        None,
        [
            *TINY_SETS,
            "train.total_steps=512",
            "train.seed=0",
            "train.name=seed0",
            "train.runs_dir=out",
        ],
    )
    assert yaml.safe_load((run_dir / "config.yaml").read_text()) == config_to_dict(expected)
    first = read_metrics(run_dir / "metrics.jsonl")
    assert len(first) == 1

    res = learn(*common, "--steps", "1024", cwd=tmp_path)  # the run is there: refused
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "--resume" in res.stderr

    res = learn(*common, "--steps", "1024", "--resume", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    rows = read_metrics(run_dir / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2] and rows[0] == first[0]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert len(manifest["resumes"]) == 1 and manifest["resumes"][0]["epoch"] == 1


@pytest.mark.parametrize(
    "item, field",
    [
        ("algo.target_kl=0", "algo.target_kl"),
        ("algo.kl_early_stop=0.02", "algo.kl_early_stop"),  # PPO-Lagrangian's, not CPO's
        ("train.seed=3", "train.seed"),  # --seeds sets it
        ("nosuch.field=1", "nosuch"),
    ],
)
def test_bad_set_is_one_line_on_stderr_with_exit_2(tmp_path, item, field):
    res = learn("--set", item, "--out", "out", cwd=tmp_path, timeout=120)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and field in lines[0], res.stderr
    assert not (tmp_path / "out").exists()


def test_throughput_times_trainer_epochs_after_a_warm_up(tmp_path, learn_module, monkeypatch):
    monkeypatch.setattr(learn_module, "configure_logging", lambda level: None)
    (tmp_path / "tiny.yaml").write_text(TINY)
    argv = ["--throughput", "--config", str(tmp_path / "tiny.yaml"), "--epochs", "2"]
    assert learn_module.main([*argv, "--out", str(tmp_path / "out")]) == 0
    res = json.loads((tmp_path / "out" / "throughput.json").read_text())
    assert res["timed_epochs"] == 2 and res["steps_per_epoch"] == 512
    assert 0 < res["steps_per_s"] <= res["collect_update_steps_per_s"]
    assert not list(tmp_path.glob("out/seed*"))  # a temporary run, not a seed's
