"""Several constraints through the trainer: config validation, per-group metrics columns,
best.pt's feasibility rule, the safety monitor, a per-level limit curriculum and exact resume.
The toy env (tests/training/_standins.py) with ``levels=true`` draws an impairment level per
episode and reports it in ``info["impairment"]``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _standins import toy_config
from test_trainer import assert_same_training_state, deterministic, final_state

from saferl.config import ConfigError, load_config
from saferl.training import setup
from saferl.training.callbacks import (
    BestModel,
    Callback,
    SafetyMonitor,
    cost_status,
    group_status,
)
from saferl.training.tracking import read_metrics
from saferl.training.trainer import Trainer

LEVELS = ("none", "mild", "moderate", "severe")
GROUPED = {
    "algo.name": "cpo",
    "algo.hidden_sizes": "[8]",
    "env.options": "{levels: true}",
    "env.constraint_groups": "impairment",
    "env.cost_limit": "{none: 3, mild: 3, moderate: 2, severe: 1}",
    "env.num_envs": 16,  # 16 one-episode instances per epoch: most epochs see every level
    "train.steps_per_epoch": 256,
    "train.total_steps": 2560,
}


def _f(value) -> float:
    """A metrics value (the files store NaN as empty: None)."""
    return math.nan if value is None else float(value)


def _trainer(tmp_path, name="g", **extra):
    return Trainer(toy_config(tmp_path, name, **{**GROUPED, **extra}), command=["test"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"env.options": "{}"}, r"^env\.constraint_groups: environment 'Toy-v0' has no impairment"),
        ({"env.cost_limit": "{none: 3, mild: 3}"}, r"^env\.cost_limit: no limit for the impairment level 'moderate'"),
        ({"env.cost_limit": "{none: 3, mild: 3, moderate: 2, sever: 1}"}, r"^env\.cost_limit: 'sever' is not a impairment level"),
        ({"algo.name": "toy"}, r"^env\.constraint_groups: algorithm 'toy' does not take several"),
    ],
)  # fmt: skip
def test_group_settings_that_do_not_fit_the_env_or_algorithm_are_one_line_errors(
    tmp_path, extra, message
):
    with pytest.raises(ConfigError, match=message) as info:
        _trainer(tmp_path, **extra)
    assert "\n" not in str(info.value)


def test_component_constraints_name_the_envs_components(tmp_path):
    cfg = toy_config(tmp_path, "c", **{"algo.name": "cpo", "env.constraints": "{farr: 1}"})
    with pytest.raises(ConfigError, match=r"^env\.constraints: environment 'Toy-v0' has no cost component 'farr' \(its components: far\)"):  # fmt: skip
        Trainer(cfg, command=["test"])
    cfg = toy_config(tmp_path, "c", **{"algo.name": "cpo", "env.constraints": "{far: 1.5}"})
    limits = setup.cost_limits(cfg, setup.env_spec(cfg).make(1))
    assert limits.groups.kind == "components" and limits.groups.names == ("far",)
    assert limits.groups.limits == (1.5,)


def test_per_level_groups_need_every_level_of_the_real_envs(tmp_path):
    cfg = load_config(overrides=["env.constraint_groups=impairment", "env.cost_limit=12"])
    env = setup.env_spec(cfg).make(1)
    groups = setup.cost_limits(cfg, env).groups
    assert groups.names == LEVELS and groups.limits == (12.0,) * 4 and groups.key == "impairment"
    fixed = load_config(overrides=["env.constraint_groups=impairment", "env.impairment=severe"])
    with pytest.raises(ConfigError, match=r"^env\.constraint_groups: env\.impairment fixes one"):
        setup.cost_limits(fixed, env)
    env.close()


def test_per_level_run_logs_each_level_against_its_limit_and_best_is_feasible_for_all(
    tmp_path, capsys
):
    trainer = _trainer(tmp_path)
    assert trainer.train() == 0
    rows = read_metrics(trainer.run_dir / "metrics.jsonl")
    limits = {"none": 3.0, "mild": 3.0, "moderate": 2.0, "severe": 1.0}
    # the combined limit is not what is optimised: no cost_limit with several constraints
    assert all(r["cost_limit"] is None for r in rows)
    # the summary: the worst level of the last epoch that finished episodes, against its own
    # limit, the levels above theirs, and every level's cost / limit
    out = capsys.readouterr().out
    last = rows[-1]
    excess = {lv: _f(last[f"ep_cost/{lv}"]) - lim for lv, lim in limits.items()}
    measured = {lv: e for lv, e in excess.items() if math.isfinite(e)}
    worst = max(measured, key=measured.get)
    cost = _f(last[f"ep_cost/{worst}"])
    assert f"final cost    worst group {worst} {cost:.4g} / limit {limits[worst]:.4g}" in out
    over = [lv for lv, e in measured.items() if e > 0]
    if over:
        assert f"above theirs: {', '.join(over)}" in out
    per = out.split("per group     ")[1].splitlines()[0]
    for lv, lim in limits.items():
        c = _f(last[f"ep_cost/{lv}"])
        assert (f"{lv} {c:.4g}/{lim:.4g}" if math.isfinite(c) else f"{lv} -/{lim:.4g}") in per
    assert "/ limit 15" not in out and "limit nan" not in out
    for row in rows:
        for lv, lim in limits.items():
            assert row[f"cost_limit/{lv}"] == lim
            assert f"ep_cost/{lv}" in row and f"violation_rate/{lv}" in row
            cost = _f(row[f"ep_cost/{lv}"])
            assert _f(row[f"J_c/{lv}"]) == cost or math.isnan(cost)
    # best.pt: the epoch best_model chose, judged by the rule from the rows themselves
    best = trainer.callbacks.get("best_model")

    def feasible(r):
        return all(_f(r[f"ep_cost/{lv}"]) <= lim for lv, lim in limits.items())

    judged = [r for r in rows if all(math.isfinite(_f(r[f"ep_cost/{lv}"])) for lv in limits)]
    assert judged
    chosen = next(r for r in rows if r["epoch"] == best.best_epoch)
    if any(feasible(r) for r in judged):
        assert feasible(chosen)
        assert chosen["ep_return"] == max(r["ep_return"] for r in judged if feasible(r))
    else:
        worst = [max(_f(r[f"ep_cost/{lv}"]) - lim for lv, lim in limits.items()) for r in judged]
        assert best.best_key == (0, -min(worst))


def test_best_model_is_feasible_only_when_every_group_is_within_its_limit():
    bm = BestModel()
    row = {"epoch": 1, "ep_return": 5.0, "ep_cost": 1.0, "cost_limit": 10.0}
    limits = {"cost_limit/a": 2.0, "cost_limit/b": 1.0}
    bm.on_epoch_end({**row, **limits, "ep_cost/a": 1.0, "ep_cost/b": 1.5})  # b above
    assert bm.best_key == (0, -0.5)
    bm.on_epoch_end({**row, "epoch": 2, "ep_return": 1.0, **limits, "ep_cost/a": 2.0, "ep_cost/b": 0.5})  # fmt: skip
    assert bm.best_key == (1, 1.0) and bm.best_epoch == 2
    # higher return but one group above its limit: not better than a feasible epoch
    bm.on_epoch_end({**row, "epoch": 3, "ep_return": 9.0, **limits, "ep_cost/a": 2.1, "ep_cost/b": 0.0})  # fmt: skip
    assert bm.best_epoch == 2
    # a group without a finished episode: the epoch cannot be judged
    bm.on_epoch_end({**row, "epoch": 4, "ep_return": 9.0, **limits, "ep_cost/a": 0.0, "ep_cost/b": math.nan})  # fmt: skip
    assert bm.best_epoch == 2


def test_group_status_names_the_worst_group_against_its_own_limit():
    row = {"cost_limit": math.nan, "cost_limit/a": 10.0, "cost_limit/b": 1.0, "cost_limit/c": 5.0}
    # a: 12 of 10 (+2); b: 2 of 1 (+1); c not measured. The worst is the largest excess over
    # the group's own limit, not the largest cost
    st = group_status({**row, "ep_cost": 7.0, "ep_cost/a": 12.0, "ep_cost/b": 2.0, "ep_cost/c": math.nan})  # fmt: skip
    assert (st["worst"], st["cost"], st["limit"]) == ("a", 12.0, 10.0)
    assert st["over"] == ["a", "b"] and st["unmeasured"] == ["c"]
    st = group_status({**row, "ep_cost/a": 9.0, "ep_cost/b": 1.5, "ep_cost/c": 0.0})
    assert (st["worst"], st["over"]) == ("b", ["b"])  # b: +0.5 above; a is 1 below its 10
    assert cost_status(
        {**row, "ep_cost": 3.0, "ep_cost/a": 9.0, "ep_cost/b": 1.5, "ep_cost/c": 0.0}
    ) == ("cost 3  worst b 1.5/1")
    assert group_status({"cost_limit": 3.0, "ep_cost": 1.0}) is None
    assert cost_status({"cost_limit": 3.0, "ep_cost": 1.0}) == "cost 1/3"


def test_safety_monitor_counts_an_epoch_violating_when_any_group_is_above_its_limit():
    sm = SafetyMonitor(window=4, alert_after=2)
    limits = {"cost_limit": 100.0, "cost_limit/a": 2.0, "cost_limit/b": 1.0}
    rows = [
        {"ep_cost": 0.5, "ep_cost/a": 1.0, "ep_cost/b": 1.2},  # b violates
        {"ep_cost": 0.5, "ep_cost/a": 3.0, "ep_cost/b": math.nan},  # a violates, b unmeasured
        {"ep_cost": 0.5, "ep_cost/a": 1.0, "ep_cost/b": 0.5},  # fine
    ]
    out = []
    for r in rows:
        m = {**limits, **r}
        sm.on_epoch_end(m)
        out.append(m)
    assert [m["consecutive_violations"] for m in out] == [1, 2, 0]
    assert out[1]["safety_alert"] == 1
    assert out[2]["violation_rate/a"] == pytest.approx(1 / 3)
    assert out[2]["violation_rate/b"] == pytest.approx(1 / 2)  # two measured epochs
    state = sm.state_dict()
    again = SafetyMonitor(window=4, alert_after=2)
    again.load_state_dict(state)
    assert again.group_history == sm.group_history


class StopAt(Callback):
    """Stops the run after ``epoch`` (an interruption; the trainer checkpoints and exits)."""

    name = "stop_at"

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, metrics):
        if metrics["epoch"] == self.epoch:
            self.stop_reason = "interrupted"
            return False
        return True


def test_per_level_curriculum_and_cost_target_resume_match_the_uninterrupted_run(tmp_path):
    sched = "[{target: env.cost_limit.severe, kind: linear, start: 5, end: 4}]"
    # with each level's integral cost target (algorithm state) in play: limits at which some
    # steps are not recovery steps (the integral starts) and a level exceeds its limit
    limits = "{none: 5, mild: 5, moderate: 4, severe: 5}"
    cfg = {
        **GROUPED,
        "train.schedules": sched,
        "algo.cost_target_gain": 0.5,
        "env.cost_limit": limits,
    }
    ref = Trainer(toy_config(tmp_path / "ref", "r", **cfg), command=["test"])
    assert ref.train() == 0
    short = Trainer(
        toy_config(tmp_path / "short", "r", **cfg), command=["test"], extra_callbacks=[StopAt(4)]
    )
    assert short.train() == 0 and short.epoch == 4
    resumed = Trainer.resume(short.run_dir, command=["resume"])
    assert resumed.train() == 0 and resumed.epoch == 10
    rows = read_metrics(ref.run_dir / "metrics.jsonl")
    assert deterministic(read_metrics(short.run_dir / "metrics.jsonl")) == deterministic(rows)
    assert_same_training_state(ref.run_dir, short.run_dir)
    # the curriculum moved the severe level's limit only
    severe = [r["cost_limit/severe"] for r in rows]
    assert severe[0] == 5.0 and severe[-1] < 4.5 and np.all(np.diff(severe) <= 0)
    assert {r["cost_limit/mild"] for r in rows} == {5.0}
    offsets = final_state(ref.run_dir)["algo"]["group_cost_offsets"]
    assert len(offsets) == 4 and max(offsets) > 0  # the integrals ran
    assert any(r["cost_target/severe"] < r["cost_limit/severe"] for r in rows)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("env.cost_limit.sever", r"no constraint group 'sever'"),
        ("env.constraints.far", r"needs env\.constraints"),
        ("env.cost_limit", r"give an explicit start"),
    ],
)
def test_per_group_schedule_targets_are_checked(tmp_path, target, message):
    sched = f"[{{target: {target}, kind: linear, end: 1}}]"
    with pytest.raises(ConfigError, match=r"^train\.schedules: .*" + message):
        _trainer(tmp_path, **{"train.schedules": sched})
