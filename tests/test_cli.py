"""The command line: help, user errors as one line with exit status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "saferl", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
    )


def test_help_lists_subcommands():
    res = run_cli("--help")
    assert res.returncode == 0
    for cmd in ("train", "evaluate", "compare", "tune", "envs", "version"):
        assert cmd in res.stdout


@pytest.mark.parametrize("cmd", ["train", "evaluate", "compare", "tune", "envs", "version"])
def test_every_subcommand_has_help(cmd):
    res = run_cli(cmd, "--help")
    assert res.returncode == 0
    assert "Usage" in res.stdout


def test_bad_override_is_one_line_exit_2(tmp_path):
    res = run_cli("train", "--set", "algo.target_kl=-1", cwd=tmp_path)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "algo.target_kl" in lines[0] and "-1" in lines[0]
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "runs").exists()


def test_unknown_key_in_config_file_exit_2(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train:\n  totl_steps: 10\n")
    res = run_cli("train", "--config", str(cfg), cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1
    assert "train.totl_steps: unknown key" in res.stderr


def test_missing_config_file_exit_2(tmp_path):
    res = run_cli("train", "--config", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert res.returncode == 2
    assert "config file not found" in res.stderr
    assert "Traceback" not in res.stderr


def test_bad_log_level_exit_2():
    res = run_cli("--log-level", "LOUD", "version")
    assert res.returncode == 2
    assert "--log-level" in res.stderr and "LOUD" in res.stderr


def test_version_prints_package_version():
    from saferl import __version__

    res = run_cli("version")
    assert res.returncode == 0
    assert f"saferl {__version__}" in res.stdout


def test_evaluate_run_without_checkpoints_exit_2(tmp_path):
    run = tmp_path / "runs" / "empty"
    run.mkdir(parents=True)
    res = run_cli("evaluate", str(run), cwd=tmp_path)
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "Traceback" not in res.stderr


def test_compare_unknown_protocol_exit_2(tmp_path):
    res = run_cli(
        "compare",
        "baselines:human_only",
        "baselines:autopilot",
        "--protocols",
        "standardd",
        cwd=tmp_path,
    )
    assert res.returncode == 2
    assert "standardd" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_compare_unknown_baseline_lists_available(tmp_path):
    res = run_cli("compare", "baselines:human_only", "baselines:nope", cwd=tmp_path)
    assert res.returncode == 2
    assert "baselines:nope" in res.stderr and "baselines:human_only" in res.stderr


def test_envs_lists_builtin_envs_with_limits():
    res = run_cli("envs")
    assert res.returncode == 0, res.stderr
    assert "WheelchairSC-v0 (builtin)" in res.stdout and "ExoGait-v0 (builtin)" in res.stdout
    assert "limit 15 per 600-step episode, strict 6" in res.stdout
    assert "limit 25 per 1000-step episode, strict 10" in res.stdout
    for name in ("collision", "near_miss", "comfort", "tip_risk", "social", "cuff_force", "trip"):
        assert name in res.stdout


def test_envs_render_writes_an_animated_gif(tmp_path):
    from PIL import Image

    out = tmp_path / "ep.gif"
    res = run_cli(
        "envs",
        "render",
        "WheelchairSC-v0",
        "--out",
        str(out),
        "--policy",
        "human_only",
        "--max-steps",
        "12",
    )
    assert res.returncode == 0, res.stderr
    with Image.open(out) as im:
        assert im.n_frames >= 12
        first = im.convert("RGB").tobytes()
        im.seek(im.n_frames - 1)
        assert im.convert("RGB").tobytes() != first  # the chair moved


def test_envs_render_unknown_policy_exit_2(tmp_path):
    res = run_cli(
        "envs", "render", "ExoGait-v0", "--out", str(tmp_path / "x.gif"), "--policy", "nope"
    )
    assert res.returncode == 2
    assert "nope" in res.stderr and "pd_guidance" in res.stderr
