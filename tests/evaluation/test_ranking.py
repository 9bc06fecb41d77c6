"""The comparison ranking: feasible models by return, then infeasible ones by their excess over
the limit (a larger violation is not bought back by a larger return)."""

from __future__ import annotations

import math

from saferl.training.evaluation.stats import rank_models


def _m(ret, cost, limit=15.0, high=None):
    return {"mean_return": ret, "mean_cost": cost, "limit": limit, "cost_high": high or cost}


def test_infeasible_models_rank_by_excess_over_the_limit_not_by_return():
    ranked = rank_models(
        {
            "far_over": _m(50.0, 180.0),  # 12x the limit, highest return
            "slightly_over": _m(10.0, 16.5),  # 10 % over
            "feasible_low": _m(5.0, 14.0),
            "feasible_high": _m(9.0, 15.0),
            "unknown_cost": _m(99.0, math.nan),
        }
    )
    assert [r.name for r in ranked] == [
        "feasible_high",
        "feasible_low",
        "slightly_over",
        "far_over",
        "unknown_cost",
    ]
    assert [r.rank for r in ranked] == [1, 2, 3, 4, 5]


def test_equal_excess_falls_back_to_return_and_the_upper_bound_rule_uses_the_ci():
    ranked = rank_models({"a": _m(1.0, 20.0), "b": _m(2.0, 20.0)})
    assert [r.name for r in ranked] == ["b", "a"]
    ranked = rank_models(
        {"tight": _m(3.0, 14.0, high=14.5), "wide": _m(8.0, 14.0, high=30.0)},
        use_upper_bound=True,
    )
    assert [(r.name, r.feasible) for r in ranked] == [("tight", True), ("wide", False)]


def test_baselines_only_comparison_runs_in_the_env_named_by_env(tmp_path):
    import json

    import pytest
    from _evalhelpers import TOY_ID

    from saferl.training.evaluation import EvaluationError, run_compare

    out = tmp_path / "cmp"
    specs = ["baselines:go_to_goal", "baselines:reckless"]
    opts = {"protocols": ["standard"], "episodes": 6}
    run_compare(specs, out=str(out), env_id=TOY_ID, overrides=["env.cost_limit=1.5"], **opts)
    result = json.loads((out / "comparison.json").read_text())
    summaries = result["groups"][0]["summaries"]
    assert set(summaries) == set(specs)
    assert {r["limit"] for r in result["ranking"]} == {1.5}
    with pytest.raises(EvaluationError, match=r"env\.\* and eval\.\* fields only"):
        run_compare(specs, out=str(tmp_path / "c2"), env_id=TOY_ID, overrides=["algo.x=1"], **opts)
