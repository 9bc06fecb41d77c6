"""``saferl runs``: the listing from run directories (status from the manifest and the run lock),
filters, sorting and formats."""

from __future__ import annotations

import csv
import io
import json

import pytest
from _standins import register, toy_config
from typer.testing import CliRunner

from saferl.cli import app
from saferl.training.checkpoint import RunManifest
from saferl.training.tracking import read_metrics
from saferl.training.trainer import Trainer


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """Three 3-epoch runs: a and b finished, c says running but no process holds it."""
    register()
    root = tmp_path_factory.mktemp("runs")
    for name, seed in (("a", 0), ("b", 1), ("c", 2)):
        cfg = toy_config(root, name, **{"train.seed": seed, "train.total_steps": 192})
        Trainer(cfg, command=["t"]).train()
    RunManifest(root / "c" / "manifest.json").update(status="running")
    (root / "not_a_run").mkdir()
    return root


def _best(rows):
    feasible = [r for r in rows if r["ep_cost"] <= r["cost_limit"]]
    return max(feasible or rows, key=lambda r: r["ep_return"])


def test_runs_lists_each_run_with_final_and_best_numbers_and_status(runs_dir):
    tmp_path = runs_dir
    res = CliRunner().invoke(app, ["runs", str(tmp_path), "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert sorted(rows) == ["a", "b", "c"]
    for name in "abc":
        local = read_metrics(tmp_path / name / "metrics.jsonl")
        best = _best(local)
        r = rows[name]
        assert (r["env"], r["algo"], r["steps"]) == ("Toy-v0", "toy", 192)
        assert r["final_return"] == local[-1]["ep_return"]
        assert r["final_cost"] == local[-1]["ep_cost"] and r["limit"] == local[-1]["cost_limit"]
        assert (r["best_return"], r["best_cost"]) == (best["ep_return"], best["ep_cost"])
        assert r["feasible"] == (local[-1]["ep_cost"] <= local[-1]["cost_limit"])
    assert [rows[n]["status"] for n in "abc"] == ["finished", "finished", "crashed"]
    assert [rows[n]["seed"] for n in "abc"] == [0, 1, 2]


def test_runs_filter_sort_limit_and_csv(runs_dir):
    tmp_path = runs_dir
    res = CliRunner().invoke(
        app,
        [
            "runs", str(tmp_path), "--filter", "env=Toy-v0", "--filter", "status!=crashed",
            "--sort", "best_return", "--limit", "1", "--format", "csv",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.output)))
    assert len(rows) == 1
    best = max(
        ("a", "b"), key=lambda n: _best(read_metrics(tmp_path / n / "metrics.jsonl"))["ep_return"]
    )
    assert rows[0]["name"] == best
    table = CliRunner().invoke(app, ["runs", str(tmp_path)])
    assert table.output.splitlines()[0].split() == [
        "name", "env", "algo", "seed", "steps", "final_return", "final_cost", "limit",
        "best_return", "best_cost", "feasible", "status",
    ]  # fmt: skip
    bad = CliRunner().invoke(app, ["runs", str(tmp_path), "--sort", "nope"])
    assert bad.exit_code == 2 and "--sort 'nope': expected one of" in bad.output


def test_a_run_with_per_level_constraints_is_listed_by_its_worst_level(tmp_path):
    register()
    cfg = toy_config(
        tmp_path,
        "levels",
        **{
            "algo.name": "cpo",
            "algo.hidden_sizes": "[8]",
            "env.options": "{levels: true}",
            "env.constraint_groups": "impairment",
            "env.cost_limit": "{none: 3, mild: 3, moderate: 2, severe: 0.5}",
            "env.num_envs": 16,
            "train.steps_per_epoch": 256,
            "train.total_steps": 1280,
        },
    )
    Trainer(cfg, command=["t"]).train()
    res = CliRunner().invoke(app, ["runs", str(tmp_path), "--format", "json"])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.output)
    levels = ("none", "mild", "moderate", "severe")

    def worst(r):
        measured = [(r[f"ep_cost/{g}"], r[f"cost_limit/{g}"]) for g in levels]
        measured = [(c, lim) for c, lim in measured if c is not None]
        return max(measured, key=lambda cl: cl[0] - cl[1])

    local = read_metrics(tmp_path / "levels" / "metrics.jsonl")
    assert local[-1]["cost_limit"] is None  # NaN (stored empty): no single limit
    cost, limit = worst(local[-1])
    assert (row["final_cost"], row["limit"]) == (cost, limit)
    assert row["feasible"] == (cost <= limit)
    judged = [(r["ep_return"], *worst(r)) for r in local]
    feasible = [j for j in judged if j[1] <= j[2]]
    best = max(feasible or judged, key=lambda j: j[0])
    assert (row["best_return"], row["best_cost"]) == (best[0], best[1])
