"""saferl tune's user errors: one line naming the option and what is allowed, exit status 2,
no traceback, nothing written (no study, no journal, no run directory)."""

from __future__ import annotations

import subprocess
import sys

import pytest

BAD_SPACE_KEY = "algo.target_kl: {type: float, lo: 0.001, high: 0.1}\n"
BAD_SPACE_RANGE = "algo.target_kl: {type: float, low: 0.001, high: 2.0}\n"
BAD_SPACE_FIELD = "algo.target_kll: {type: float, low: 0.001, high: 0.1}\n"


def run_tune_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "saferl", "tune", *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
    )


@pytest.mark.parametrize(
    ("args", "space", "expected"),
    [
        (["--sampler", "grid"], None, "--sampler: must be one of 'tpe', 'random'"),
        (["--pruner", "patient"], None, "--pruner: must be one of 'auto', 'median'"),
        (["--objective", "multi", "--pruner", "median"], None, "--pruner median: Optuna's"),
        (["--objective", "multi", "--sampler", "cmaes"], None, "--sampler cmaes: single"),
        (["--n-trials", "0"], None, "--n-trials: must be >= 1, got 0"),
        (["--study", "../up"], None, "--study: must be 1-100 letters"),
        (["--space", "space.yaml"], BAD_SPACE_KEY, "algo.target_kl: unknown key 'lo'"),
        (["--space", "space.yaml"], BAD_SPACE_RANGE, "algo.target_kl: must be <= 1, got 2.0"),
        (["--space", "space.yaml"], BAD_SPACE_FIELD, "algo.target_kll: unknown key"),
        (["--space", "space.yaml"], "[1, 2]\n", "--space space.yaml: top level must be a mapping"),
        (["--storage", "redis://127.0.0.1/0"], None, "--storage redis://127.0.0.1/0: must be"),
        (
            ["--storage", "postgresql://saferl:secret@127.0.0.1:1/none"],
            None,
            "--storage postgresql://saferl:***@127.0.0.1:1/none: cannot open it",
        ),
        (["--storage", "sqlite:///s.db", "--n-workers", "2"], None, "--n-workers: SQLite"),
        (["--report", "--n-trials", "3"], None, "--n-trials: does nothing with --report"),
        (["--report", "--study", "nope"], None, "--study: no study 'nope'"),
        (["--warm-start-storage", "x.log"], None, "--warm-start-storage: does nothing"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, args, space, expected):
    if space is not None:
        (tmp_path / "space.yaml").write_text(space)
    res = run_tune_cli(*args, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert expected in lines[0], lines[0]
    assert "Traceback" not in res.stderr and "secret" not in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == (["space.yaml"] if space else [])


def test_missing_optuna_names_the_extra(tmp_path):
    code = (
        "import sys; sys.modules['optuna'] = None\n"
        "from saferl.cli import main; sys.argv = ['saferl', 'tune', '--n-trials', '1']; main()"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=180, cwd=tmp_path
    )
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == "error: saferl tune needs Optuna: pip install 'saferl[tune]'"
    assert list(tmp_path.iterdir()) == []
