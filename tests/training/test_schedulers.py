"""Schedules: torch LR schedulers agree with the closed forms; every state_dict round-trips."""

from __future__ import annotations

import math

import pytest
import torch

from saferl.config import ConfigError, ScheduleConfig
from saferl.training.schedulers import (
    LRSchedule,
    ParamSchedule,
    Schedules,
    build_schedules,
)

KINDS = [
    {"kind": "constant", "start": 0.01},
    {"kind": "linear", "start": 0.01, "end": 0.001},
    {"kind": "linear", "start": 0.001, "end": 0.01},  # increasing
    {"kind": "exponential", "start": 0.01, "gamma": 0.9},
    {"kind": "cosine", "start": 0.01, "end": 0.0},
    {"kind": "step", "start": 0.01, "gamma": 0.5, "step_size": 3},
    {"kind": "linear", "start": 0.01, "end": 0.002, "warmup_epochs": 4},
    {"kind": "cosine", "start": 0.01, "end": 0.001, "warmup_epochs": 3},
    {"kind": "plateau", "start": 0.01, "gamma": 0.5, "step_size": 2},
    {"kind": "plateau", "start": 0.01, "gamma": 0.5, "step_size": 2, "warmup_epochs": 2},
]
TOTAL = 12
# A return that improves, then stalls: plateau schedules must decay during the stall.
METRICS = [1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]


def _opt(lr=0.05):
    return torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def _ids(k):
    return "-".join(f"{a}={b}" for a, b in k.items())


@pytest.mark.parametrize("spec", KINDS, ids=_ids)
def test_torch_lr_schedule_matches_closed_form(spec):
    cfg = ScheduleConfig(target="critic_lr", **spec)
    opt = _opt()
    lr = LRSchedule(cfg, [opt], TOTAL)
    param = ParamSchedule(cfg, default=0.05, total_epochs=TOTAL)
    for epoch in range(TOTAL + 2):
        assert lr.value == pytest.approx(param.value, rel=1e-9, abs=1e-12), f"epoch {epoch}"
        opt.step()
        lr.step(METRICS[epoch])
        param.step(METRICS[epoch])


def test_closed_forms_hit_their_end_points():
    lin = ParamSchedule(ScheduleConfig(target="x", kind="linear", start=1.0, end=0.0), 0, 10)
    cos = ParamSchedule(ScheduleConfig(target="x", kind="cosine", start=1.0, end=0.2), 0, 10)
    for _ in range(10):
        lin.step()
        cos.step()
    assert lin.value == pytest.approx(0.0) and cos.value == pytest.approx(0.2)
    lin.step()
    assert lin.value == pytest.approx(0.0)  # stays at the end value past the horizon


@pytest.mark.parametrize("spec", KINDS, ids=_ids)
@pytest.mark.parametrize("which", ["lr", "param"])
def test_state_dict_round_trip_continues_identically(spec, which):
    cfg = ScheduleConfig(target="critic_lr", **spec)

    def make():
        if which == "lr":
            opt = _opt()
            return LRSchedule(cfg, [opt], TOTAL), opt
        return ParamSchedule(cfg, default=0.05, total_epochs=TOTAL), None

    def run(sched, opt, epochs):
        values = []
        for e in epochs:
            if opt is not None:
                opt.step()
            sched.step(METRICS[e])
            values.append(sched.value)
        return values

    full, opt_full = make()
    expected = run(full, opt_full, range(TOTAL))
    first, opt_first = make()
    run(first, opt_first, range(5))
    state = first.state_dict()
    second, opt_second = make()
    second.load_state_dict(state)
    assert second.value == pytest.approx(first.value)
    assert run(second, opt_second, range(5, TOTAL)) == pytest.approx(expected[5:], rel=1e-12)


class _Algo:
    """The schedule-facing part of saferl.algos.base.Algorithm: named optimisers and settable
    hyperparameters."""

    def __init__(self, actor=True):
        self.reward_critic = torch.nn.Linear(2, 1)
        self.cost_critic = torch.nn.Linear(2, 1)
        self.critic_optimizer = torch.optim.Adam(
            [*self.reward_critic.parameters(), *self.cost_critic.parameters()], lr=1e-3
        )
        self.actor_optimizer = (
            torch.optim.Adam(torch.nn.Linear(2, 1).parameters(), lr=3e-4) if actor else None
        )
        self.target_kl = 0.01
        self.cost_limit = 15.0

    def optimizers(self):
        named = {"critic": self.critic_optimizer, "actor": self.actor_optimizer}
        return {k: v for k, v in named.items() if v is not None}

    def hyperparameters(self):
        return {"target_kl": self.target_kl, "cost_limit": self.cost_limit}

    def set_hyperparameter(self, name, value):
        if name not in self.hyperparameters():
            raise KeyError(name)
        setattr(self, name, value)


class _Env:
    """An environment with the curriculum hook ``set_options``."""

    def __init__(self):
        self.options = {}

    def set_options(self, **options):
        self.options.update(options)


def test_build_schedules_wires_lr_to_the_critic_optimiser_and_values_to_the_algorithm():
    algo, env = _Algo(), _Env()
    scheds = build_schedules(
        [
            ScheduleConfig(target="critic_lr", kind="linear", end=1e-4),
            ScheduleConfig(target="algo.target_kl", kind="exponential", gamma=0.5),
            ScheduleConfig(target="env.cost_limit", kind="linear", start=30, end=15),
            ScheduleConfig(target="env.challenge", kind="linear", start=0, end=2),
        ],
        algo=algo,
        env=env,
        total_epochs=4,
    )
    assert scheds.items["critic_lr"].optimizers == [algo.critic_optimizer]
    assert algo.cost_limit == 30 and env.options["challenge"] == "easy"
    for _ in range(4):
        algo.critic_optimizer.step()
        scheds.step({"ep_return": 0.0})
    assert algo.critic_optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert algo.actor_optimizer.param_groups[0]["lr"] == 3e-4  # untouched
    assert algo.target_kl == pytest.approx(0.01 / 16)
    assert algo.cost_limit == pytest.approx(15)
    assert env.options["challenge"] == "hard"
    assert scheds.values()["sched/critic_lr"] == pytest.approx(1e-4)


def test_schedules_state_dict_restores_every_item():
    def make():
        algo = _Algo()
        s = build_schedules(
            [
                ScheduleConfig(target="critic_lr", kind="cosine", end=0.0, warmup_epochs=2),
                ScheduleConfig(target="algo.target_kl", kind="step", gamma=0.5, step_size=2),
            ],
            algo=algo,
            env=_Env(),
            total_epochs=10,
        )
        return algo, s

    a1, s1 = make()
    for _ in range(6):
        a1.critic_optimizer.step()
        s1.step({"ep_return": 1.0})
    a2, s2 = make()
    s2.load_state_dict(s1.state_dict())
    assert s2.values() == s1.values()
    assert a2.target_kl == a1.target_kl
    assert a2.critic_optimizer.param_groups[0]["lr"] == a1.critic_optimizer.param_groups[0]["lr"]


@pytest.mark.parametrize(
    ("target", "env", "match"),
    [
        ("algo.no_such_field", _Env(), "'algo.no_such_field' is not a settable hyperparameter"),
        ("algo.critic_minibatch", _Env(), "schedulable: env.cost_limit, critic_lr, algo.target_kl"),
        ("bogus", _Env(), "must be critic_lr"),
        ("actor_lr", _Env(), "has no 'actor' optimiser"),
        ("env.challenge", object(), "set_options"),
        ("env.friction", _Env(), "explicit start"),
    ],
)
def test_bad_targets_are_config_errors(target, env, match):
    with pytest.raises(ConfigError, match=match):
        build_schedules(
            [ScheduleConfig(target=target)], algo=_Algo(actor=False), env=env, total_epochs=3
        )


def test_empty_schedules_step_is_noop():
    s = Schedules()
    assert s.step({"ep_return": math.nan}) == {}
    assert s.state_dict() == {}


@pytest.mark.parametrize("lr", [False, True], ids=["param", "torch-lr"])
def test_plateau_watches_its_own_metric_and_mode(lr):
    """A plateau on ep_cost with mode=min decays only while the cost stops falling."""
    cfg = ScheduleConfig(
        target="critic_lr" if lr else "algo.target_kl",
        kind="plateau", start=0.01, gamma=0.5, step_size=1, metric="ep_cost", mode="min",
    )  # fmt: skip

    algo = _Algo(actor=False)
    algo.critic_optimizer = _opt(0.01)
    schedules = build_schedules([cfg], algo=algo, env=None, total_epochs=20)
    costs = [50, 40, 30, 20, 25, 26, 27, 28]  # falls (improves) for 4 epochs, then rises
    values = [
        schedules.step({"ep_cost": c, "ep_return": 100.0 - c})[f"sched/{cfg.target}"] for c in costs
    ]
    assert values[:5] == [0.01] * 5  # improving, then one bad epoch within patience
    assert values[5] == pytest.approx(0.005)  # second bad epoch: decayed once
    assert values[7] == pytest.approx(0.0025)
