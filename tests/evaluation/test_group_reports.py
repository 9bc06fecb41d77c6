"""Evaluation of a run trained with several constraints: every impairment level (or cost
component) is reported against its own limit in results.json, report.md/html, the printed
summary and ``saferl compare`` (baselines compared with the run are judged on its groups).

The toy env of these tests draws an impairment level per episode (``impairment: random``, the
level in ``info["impairment"]``); a more impaired "human" adds more noise, so the levels' costs
differ. The per-level limits differ too, so a level compared with another limit shows."""

from __future__ import annotations

import csv
import json
from typing import Any, ClassVar

import numpy as np
import pytest
from _evalhelpers import write_fake_run
from _evaltoy import NOISE, EvalToyVecEnv

from saferl.registry import ENVS
from saferl.training.evaluation import run_evaluate
from saferl.training.evaluation.compare import run_compare

LEVEL_TOY = "EvalLevelToy-v0"
LEVELS = tuple(NOISE)
#: each level's own limit; the combined limit (the env's) is 3
LIMITS = {"none": 4.0, "mild": 3.0, "moderate": 1.5, "severe": 0.5}


class LevelToyVecEnv(EvalToyVecEnv):
    """The evaluation toy with a per-episode impairment level reported in ``info``."""

    INFO_LEVELS: ClassVar[dict[str, tuple[str, ...]]] = {"impairment": LEVELS}

    def __init__(self, num_envs=1, *, impairment="random", **kw: Any) -> None:
        self.fixed = None if impairment == "random" else LEVELS.index(impairment)
        super().__init__(num_envs, impairment="none", **kw)
        self.codes = np.zeros(num_envs, np.int8)

    def _reset_instances(self, idx):
        super()._reset_instances(idx)
        if self.fixed is None:
            self.codes[idx] = np.minimum(self.rng.uniform(1, idx)[:, 0] * 4, 3).astype(np.int8)
        else:
            self.codes[idx] = self.fixed

    def _step_batch(self, actions):
        self.noise = np.asarray(list(NOISE.values()), np.float32)[self.codes]
        reward, done, comps, info = super()._step_batch(actions)
        return reward, done, comps, {**info, "impairment": self.codes.copy()}


def make_level_toy(num_envs=1, *, impairment="random", challenge="standard", **_: Any):
    return LevelToyVecEnv(num_envs, impairment=impairment, challenge=challenge)


@pytest.fixture(autouse=True)
def _register():
    ENVS.register(LEVEL_TOY, make_level_toy, overwrite=True)


def _episodes(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _per_level_run(tmp_path):
    limits = "{" + ", ".join(f"{k}: {v}" for k, v in LIMITS.items()) + "}"
    overrides = ("env.constraint_groups=impairment", f"env.cost_limit={limits}")
    return write_fake_run(tmp_path / "run", env_id=LEVEL_TOY, overrides=overrides)


def test_each_level_is_reported_against_its_own_limit(tmp_path, capsys):
    run = _per_level_run(tmp_path)
    assert run_evaluate(str(run), protocols=["standard", "human_factors"], episodes=48) == 0
    out = capsys.readouterr().out
    results = json.loads((run / "eval" / "results.json").read_text())
    assert results["model"]["constraints"] == {
        "kind": "levels",
        "key": "impairment",
        "limits": LIMITS,
    }
    cons = results["constraints"]["protocols"]
    rows = _episodes(run / "eval" / "episodes.csv")
    discriminating = 0
    for protocol, conds in cons.items():
        for cond, groups in conds.items():
            eps = [r for r in rows if r["protocol"] == protocol and r["condition"] == cond]
            for level, limit in LIMITS.items():
                costs = np.array([float(r["cost"]) for r in eps if r["impairment_level"] == level])
                if protocol == "human_factors" and cond != level:
                    assert level not in groups and costs.size == 0
                    continue
                g = groups[level]
                assert g["episodes"] == costs.size > 0
                assert g["limit"] == limit
                assert g["cost"]["estimate"] == pytest.approx(costs.mean())
                assert g["violation_rate"]["estimate"] == pytest.approx(np.mean(costs > limit))
                assert g["within_limit"] == (costs.mean() <= limit)
                # against the combined limit (3) the rate would differ for some levels
                discriminating += np.mean(costs > limit) != np.mean(costs > 3.0)
    assert discriminating >= 2
    assert set(cons["standard"]["default"]) == set(LEVELS)  # every level drawn
    # the report: a table per level, the verdict on every level, the degradation table with
    # each level's own limit and violation rate against it
    md = (run / "eval" / "report.md").read_text()
    assert "## Constraints per impairment level (each against its own limit)" in md
    assert "violation rate [CI] (combined limit)" in md  # the summary's, against 3
    std = cons["standard"]["default"]
    over = [lv for lv in LEVELS if not std[lv]["within_limit"]]
    assert ("**infeasible**" in md) == bool(over)
    for lv in over:
        assert f"{lv} " in md.split("above their limits:")[1].splitlines()[0]
    deg = [line for line in md.splitlines() if line.startswith("| severe |")]
    sev = cons["human_factors"]["severe"]["severe"]
    assert any(
        f"| 0.5 | {sev['violation_rate']['estimate']:.3g} |" in line
        or f"| 0.5 | {sev['violation_rate']['estimate']:.0f} |" in line
        for line in deg
    ), deg
    html = (run / "eval" / "report.html").read_text()
    assert 'class="constraints"' in html and "limit (level&#x27;s own)" in html
    # the printed summary: each level's cost / own limit
    assert "per impairment level (each against its own limit):" in out
    line = next(x for x in out.splitlines() if x.strip().startswith("standard") and "none " in x)
    for lv, limit in LIMITS.items():
        assert f"{lv} {std[lv]['cost']['estimate']:.3g}/{limit:g}" in line


def test_component_constraints_are_each_components_sum_against_its_limit(tmp_path):
    run = write_fake_run(tmp_path / "run", overrides=("env.constraints={hazard: 2, fast: 0.5}",))
    assert run_evaluate(str(run), protocols=["standard"], episodes=24, report=False) == 0
    results = json.loads((run / "eval" / "results.json").read_text())
    groups = results["constraints"]["protocols"]["standard"]["default"]
    rows = _episodes(run / "eval" / "episodes.csv")
    for comp, limit in {"hazard": 2.0, "fast": 0.5}.items():
        costs = np.array([float(r[f"cost_{comp}"]) for r in rows])
        assert groups[comp]["limit"] == limit and groups[comp]["episodes"] == len(rows)
        assert groups[comp]["cost"]["estimate"] == pytest.approx(costs.mean())
        assert groups[comp]["violation_rate"]["estimate"] == pytest.approx(np.mean(costs > limit))


def test_compare_judges_the_run_and_its_baselines_on_the_runs_levels(tmp_path, capsys):
    run = _per_level_run(tmp_path)
    out_dir = tmp_path / "cmp"
    code = run_compare(
        [str(run), "baselines:reckless"], out=str(out_dir), protocols=["standard"], episodes=24
    )
    assert code == 0
    result = json.loads((out_dir / "comparison.json").read_text())
    assert set(result["constraints"]) == {"run", "baselines:reckless"}
    rows = _episodes(out_dir / "episodes.csv")
    for model, cons in result["constraints"].items():
        assert cons["limits"] == LIMITS
        for lv, g in cons["protocols"]["standard"]["default"].items():
            costs = np.array(
                [
                    float(r["cost"])
                    for r in rows
                    if r["model"] == model and r["impairment_level"] == lv
                ]
            )
            assert g["cost"]["estimate"] == pytest.approx(costs.mean())
            assert g["violation_rate"]["estimate"] == pytest.approx(np.mean(costs > LIMITS[lv]))
    md = (out_dir / "comparison.md").read_text()
    assert "## Constraints per impairment level (each against its own limit)" in md
    assert "| baselines:reckless | standard | default | severe |" in md
    assert "baselines:reckless: per impairment level" in capsys.readouterr().out


def test_compare_verdict_looks_at_every_condition_of_a_per_level_protocol():
    from saferl.training.evaluation.compare import group_verdict

    def g(cost, limit):
        return {"cost": {"estimate": cost}, "limit": limit, "within_limit": cost <= limit}

    cons = {
        "protocols": {
            "human_factors": {"none": {"none": g(2.0, 15.0)}, "severe": {"severe": g(19.5, 15.0)}},
            "standard": {"all": {"none": g(2.0, 15.0), "severe": g(14.0, 15.0)}},
        }
    }
    # The first condition alone (none) would say every group is within its limit.
    assert group_verdict(cons, "human_factors") == "ABOVE: severe 19.5/15"
    assert group_verdict(cons, "standard") == "every group within its own limit"
    cons["protocols"]["human_factors"]["severe"]["severe"] = g(12.0, 15.0)
    assert group_verdict(cons, "human_factors") == (
        "every group within its own limit in every human_factors condition"
    )
