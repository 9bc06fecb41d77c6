"""Evaluation refuses, in one line and before any episode runs: a broken manifest, an env other
than the run's, an output directory that cannot be one, a seed out of range. An env's own option
errors are not blamed on ``env.obs_ema``."""

from __future__ import annotations

import json
import os

import pytest
from _evalhelpers import TOY_ID, write_fake_run

from saferl.config import ConfigError, load_config
from saferl.training import setup
from saferl.training.evaluation import EvaluationError, run_compare, run_evaluate


def _one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert msg and "\n" not in msg and len(msg) < 400, msg
    return msg


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (os.urandom(32) + b"\xff\xfe", "is not UTF-8 text"),
        (b"[]", "must hold a JSON object, got a JSON list"),
        (b"{", "is not valid JSON"),
    ],
    ids=["random-bytes", "list", "truncated"],
)
def test_evaluate_refuses_a_broken_manifest_in_one_line(tmp_path, content, expected):
    run = write_fake_run(tmp_path / "r")
    (run / "manifest.json").write_bytes(content)
    with pytest.raises(EvaluationError) as e:
        run_evaluate(str(run), protocols=["standard"], episodes=2, report=False)
    msg = _one_line(e)
    assert expected in msg and "SHA-256 cannot be checked" in msg, msg
    assert not (run / "eval").exists()


def test_evaluate_checks_a_checkpoint_whose_manifest_entry_is_malformed_as_unrecorded(tmp_path):
    run = write_fake_run(tmp_path / "r")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["checkpoints"]["best.pt"] = {"sha256": 7}
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert run_evaluate(str(run), protocols=["standard"], episodes=2, report=False) == 0


def test_evaluate_refuses_another_env_than_the_runs(tmp_path):
    run = write_fake_run(tmp_path / "r")
    with pytest.raises(EvaluationError) as e:
        run_evaluate(
            str(run),
            protocols=["standard"],
            episodes=2,
            report=False,
            overrides=["env.id=WheelchairSC-v0"],
        )
    assert _one_line(e) == (
        f"env.id: a run is evaluated in the env it was trained in ({TOY_ID}), got "
        "'WheelchairSC-v0'; compare runs of other envs with their own run directories"
    )


def test_compare_refuses_an_out_path_that_is_or_is_under_a_file_before_running(tmp_path):
    run = write_fake_run(tmp_path / "r")
    (tmp_path / "file").write_text("x")
    for out in (tmp_path / "file", tmp_path / "file" / "sub"):
        with pytest.raises(EvaluationError) as e:
            run_compare([str(run), "baselines:reckless"], out=str(out), episodes=2)
        msg = _one_line(e)
        assert msg.startswith(f"--out: {tmp_path / 'file'} is a file, not a directory"), msg
    assert (tmp_path / "file").read_text() == "x"


@pytest.mark.parametrize("seed", [-1, 2**32, 99999999999999999999])
def test_compare_refuses_a_seed_out_of_range(tmp_path, seed):
    run = write_fake_run(tmp_path / "r")
    with pytest.raises(EvaluationError) as e:
        run_compare([str(run), "baselines:reckless"], out=str(tmp_path / "c"), seed=seed)
    assert _one_line(e).startswith("--seed must be >= 0 and < 2**32, got ")
    assert not (tmp_path / "c").exists()


def test_an_env_option_error_is_not_blamed_on_obs_ema():
    cfg = load_config(None, ["env.obs_ema={dims: [0]}", "env.impairment=extreme"])
    with pytest.raises(ConfigError) as e:
        setup.env_spec(cfg).make(1)
    assert str(e.value).startswith("env.impairment: unknown level 'extreme'"), str(e.value)
    # ... while the wrapper's own errors still name env.obs_ema
    bad = load_config(None, ["env.obs_ema={dims: [999]}"])
    with pytest.raises(ConfigError, match=r"^env\.obs_ema\.dims"):
        setup.env_spec(bad).make(1)
