"""Bad input gives one clear line (a ValueError subclass the CLI prints with exit status 2)."""

from __future__ import annotations

import pytest
from _evalhelpers import write_fake_run

from saferl.training.evaluation import EvaluationError, run_compare, run_evaluate


def _one_line(excinfo):
    msg = str(excinfo.value)
    assert msg and "\n" not in msg and "Traceback" not in msg
    assert isinstance(excinfo.value, ValueError)
    return msg


def test_run_dir_without_checkpoints(tmp_path):
    run = write_fake_run(tmp_path / "r")
    for p in (run / "checkpoints").iterdir():
        p.unlink()
    with pytest.raises(EvaluationError) as e:
        run_evaluate(str(run), protocols=["standard"], episodes=2, report=False)
    assert _one_line(e) == f"run directory {run} has no checkpoints"


def test_missing_or_foreign_directory(tmp_path):
    with pytest.raises(EvaluationError) as e:
        run_evaluate(str(tmp_path / "nope"), protocols=["standard"], episodes=2, report=False)
    assert "does not exist" in _one_line(e)
    with pytest.raises(EvaluationError) as e:
        run_evaluate(str(tmp_path), protocols=["standard"], episodes=2, report=False)
    assert "not a run directory (no config.yaml)" in _one_line(e)


def test_unknown_protocol_is_reported_before_anything_runs(tmp_path):
    with pytest.raises(EvaluationError) as e:
        run_evaluate(
            str(tmp_path / "nope"), protocols=["standard,robustness"], episodes=2, report=False
        )
    assert _one_line(e) == (
        "unknown protocol 'robustness'; available: standard, stochastic, safety, human_factors, all"
    )


def test_best_falls_back_to_last_and_explicit_checkpoints(tmp_path):
    run = write_fake_run(tmp_path / "r", best=False)
    assert run_evaluate(str(run), protocols=["standard"], episodes=2, report=False) == 0
    with pytest.raises(EvaluationError) as e:
        run_evaluate(
            str(run), checkpoint="epoch_99.pt", protocols=["standard"], episodes=2, report=False
        )
    assert "checkpoint epoch_99.pt does not exist" in _one_line(e)
    assert (
        run_evaluate(
            str(run), checkpoint="epoch_3.pt", protocols=["standard"], episodes=2, report=False
        )
        == 0
    )


def test_corrupt_checkpoint(tmp_path):
    run = write_fake_run(tmp_path / "r")
    best = run / "checkpoints" / "best.pt"
    best.write_bytes(best.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(EvaluationError) as e:
        run_evaluate(str(run), protocols=["standard"], episodes=2, report=False)
    assert "corrupt" in _one_line(e)


def test_bad_override_and_episodes(tmp_path):
    run = write_fake_run(tmp_path / "r")
    with pytest.raises(EvaluationError) as e:
        run_evaluate(
            str(run),
            protocols=["standard"],
            episodes=2,
            report=False,
            overrides=["eval.confidence=2"],
        )
    assert "eval.confidence" in _one_line(e)
    with pytest.raises(EvaluationError) as e:
        run_evaluate(str(run), protocols=["standard"], episodes=0, report=False)
    assert "--episodes must be >= 1" in _one_line(e)


def test_compare_user_errors(tmp_path):
    run = write_fake_run(tmp_path / "r")
    with pytest.raises(EvaluationError) as e:
        run_compare(
            [str(run), "baselines:teleport"], out=str(tmp_path / "c"), protocols=None, episodes=2
        )
    assert _one_line(e) == (
        "unknown baseline 'baselines:teleport' for EvalToy-v0; available: "
        "baselines:go_to_goal, baselines:reckless"
    )
    with pytest.raises(EvaluationError) as e:
        run_compare([str(run)], out=None, protocols=None, episodes=2)
    assert "at least two models" in _one_line(e)
    with pytest.raises(EvaluationError) as e:
        run_compare([str(run), str(run)], out=None, protocols=None, episodes=2)
    assert "model given twice" in _one_line(e)
    with pytest.raises(EvaluationError) as e:
        run_compare([str(run), "baselines:reckless"], out=None, protocols=["bogus"], episodes=2)
    assert "unknown protocol 'bogus'" in _one_line(e)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EvaluationError) as e:
        run_compare([str(run), str(empty)], out=None, protocols=None, episodes=2)
    assert "not a run directory" in _one_line(e)
