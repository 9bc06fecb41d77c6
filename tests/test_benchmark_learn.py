"""benchmarks/learn.py (the learning benchmark) runs from a saferl config, on chosen evaluation
seeds, and pairs each seed's final policy with the best feasible baseline (tiny budgets)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def learn_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("learn_bench", ROOT / "benchmarks" / "learn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _args(learn_module, *argv):
    """learn.py's arguments after --config and the defaults (as main() resolves them)."""
    captured = {}

    def fake_throughput(args, overrides, env_options):
        captured.update(args=args, overrides=overrides, env_options=env_options)
        return {}

    learn_module.throughput = fake_throughput
    learn_module.main(["--throughput", *argv])
    return captured


def test_config_precedence_flags_over_config_over_defaults(learn_module):
    cfg = str(ROOT / "configs" / "wheelchair_cpo.yaml")
    got = _args(learn_module, "--config", cfg)
    args = got["args"]
    assert (args.env, args.algo, args.num_envs, args.steps_per_epoch) == (
        "WheelchairSC-v0",
        "cpo",
        256,
        40000,
    )
    assert learn_module._obs_ema(args) == ([8, 9], [0.05])
    assert got["env_options"]["action_mode"] == "assist"
    assert got["overrides"]["target_kl"] == 0.05 and args.cost_limit == 15.0
    got = _args(
        learn_module, "--config", cfg, "--obs-ema-weights", "0.1", "--num-envs", "8",
        "--set", "target_kl=0.01", "--env-option", "action_mode=blend", "--algo", "ppo_lagrangian",
    )  # fmt: skip
    args = got["args"]
    assert learn_module._obs_ema(args) == ([8, 9], [0.1]) and args.num_envs == 8
    assert got["overrides"]["target_kl"] == 0.01 and args.algo == "ppo_lagrangian"
    assert got["env_options"]["action_mode"] == "blend"
    assert (
        learn_module._obs_ema(_args(learn_module, "--config", cfg, "--no-obs-ema")["args"]) is None
    )
    plain = _args(learn_module)["args"]  # no config: the old defaults
    assert (plain.num_envs, plain.steps_per_epoch, learn_module._obs_ema(plain)) == (
        64,
        20000,
        None,
    )
    with pytest.raises(SystemExit, match="--env ExoGait-v0 differs"):
        _args(learn_module, "--config", cfg, "--env", "ExoGait-v0")


def test_learn_from_config_with_eval_seed_and_paired_targets(tmp_path):
    out = tmp_path / "out"
    res = subprocess.run(
        [
            sys.executable, str(ROOT / "benchmarks" / "learn.py"),
            "--config", str(ROOT / "configs" / "wheelchair_cpo.yaml"),
            "--num-envs", "8", "--steps-per-epoch", "512", "--steps", "1024", "--seeds", "0",
            "--set", "critic_epochs=1", "--cost-limit", "1000",  # every baseline is feasible
            "--eval-seed", "20000", "--baseline-episodes", "6", "--final-episodes", "6",
            "--out", str(out), "--quiet",
        ],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "summary.json").read_text())
    # the config's env and algorithm, the flags on top
    assert summary["env"] == "WheelchairSC-v0" and summary["algo"] == "cpo"
    assert summary["env_options"]["action_mode"] == "assist"
    assert summary["obs_ema"] == [[8, 9], [0.05]]
    assert summary["overrides"]["hidden_sizes"] == [128, 128]
    assert summary["overrides"]["critic_epochs"] == 1
    assert summary["num_envs"] == 8 and summary["steps_per_epoch"] == 512
    assert summary["cost_limit"] == 1000
    # evaluation episodes from the chosen seed, the same for baselines and the policy
    baselines = json.loads((out / "baselines.json").read_text())
    final = json.loads((out / "seed0_final_eval.json").read_text())
    assert final["sampled"]["first_seed"] == 20000
    assert all(b["first_seed"] == 20000 and len(b["returns"]) == 6 for b in baselines.values())
    targets = summary["targets"]
    best = targets["best_feasible_baseline"]
    assert best == max(baselines, key=lambda k: baselines[k]["ep_return"])
    diff = targets["sampled_return_minus_best_baseline_per_seed"]["0"]
    d = np.asarray(final["sampled"]["returns"]) - np.asarray(baselines[best]["returns"])
    assert diff["mean"] == np.float64(d.mean()).item()
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
    np.testing.assert_allclose(
        [diff["ci95_low"], diff["ci95_high"]], [d.mean() - half, d.mean() + half]
    )
    # the per-episode lists stay out of the summary
    assert "returns" not in summary["baselines"][best]


def test_learn_rejects_a_bad_config_in_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("algo:\n  target_kl: -1\n")
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "learn.py"), "--config", str(bad)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode != 0
    assert res.stderr.strip().splitlines()[-1].startswith("learn.py: --config")
    assert "algo.target_kl" in res.stderr and "Traceback" not in res.stderr
