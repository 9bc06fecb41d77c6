"""Search spaces and saferl's pruning rule (no training)."""

from __future__ import annotations

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saferl.config import ConfigError, load_config, parse_override
from saferl.training.hyperopt.space import DEFAULT_SPACES, default_space, format_value, parse_space
from saferl.training.hyperopt.trial import PruneRule, composite_value, report_grid


@pytest.mark.parametrize("algo", ["cpo", "ppo_lagrangian"])
def test_default_space_has_20_valid_hyperparameters_with_algorithm_specific_ones(algo):
    space = default_space(algo)  # every bound and choice validated as --set would
    fields = [p.field for p in space.params]
    assert len(fields) >= 20 and len(set(fields)) == len(fields)
    specific = {
        "cpo": [
            "algo.target_kl",
            "algo.cg_iters",
            "algo.cg_damping",
            "algo.fvp_fraction",
            "algo.backtrack_coeff",
            "algo.cost_target_gain",
        ],
        "ppo_lagrangian": [
            "algo.actor_lr",
            "algo.clip_ratio",
            "algo.lagrangian_lr",
            "algo.pid_kp",
            "algo.pid_kd",
        ],
    }[algo]
    common = [
        "algo.gamma",
        "algo.cost_gamma",
        "algo.lam",
        "algo.cost_lam",
        "algo.critic_lr",
        "algo.critic_epochs",
        "algo.critic_minibatch",
        "algo.hidden_sizes",
        "algo.activation",
        "algo.init_log_std",
        "train.steps_per_epoch",
        "env.num_envs",
    ]
    assert set(specific + common) <= set(fields)


def test_default_space_samples_configs_that_validate():
    base = load_config(None, [])
    space = default_space("cpo", base)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(20):
        trial = study.ask()
        values = space.sample(trial, "cpo")
        cfg = load_config(None, [f"{k}={format_value(v)}" for k, v in values.items()], base=base)
        assert cfg.algo.hidden_sizes in [
            c for c in DEFAULT_SPACES["cpo"]["algo.hidden_sizes"]["choices"]
        ]
        assert cfg.algo.target_kl == values["algo.target_kl"]
        study.tell(trial, 0.0)


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300))
def test_format_value_round_trips_floats_exactly_through_set(x):
    _, parsed = parse_override(f"algo.x={format_value(x)}")
    assert float(parsed) == x


def test_conditional_parameters_follow_the_sampled_algorithm():
    base = load_config(None, [])
    space = parse_space(
        {
            "parameters": {
                "algo.name": {"type": "categorical", "choices": ["cpo", "ppo_lagrangian"]}
            },
            "conditional": {
                "cpo": {
                    "algo.target_kl": {"type": "float", "low": 0.002, "high": 0.1, "log": True}
                },
                "ppo_lagrangian": {"algo.clip_ratio": {"type": "float", "low": 0.1, "high": 0.3}},
            },
        },
        base,
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        values = space.sample(trial, "cpo")
        expected = {"cpo": "algo.target_kl", "ppo_lagrangian": "algo.clip_ratio"}[
            values["algo.name"]
        ]
        assert set(values) == {"algo.name", expected}
        assert set(trial.params) == {"algo.name", f"{values['algo.name']}/{expected}"}
        seen.add(values["algo.name"])
        study.tell(trial, 0.0)
    assert seen == {"cpo", "ppo_lagrangian"}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"algo.gamma": {"type": "uniform", "low": 0, "high": 1}},
            "algo.gamma.type: must be one of",
        ),
        ({"algo.gamma": {"type": "float", "low": 0.9}}, "algo.gamma.high: must be a finite number"),
        ({"algo.gamma": {"type": "float", "low": 0.99, "high": 0.9}}, "low must be < high"),
        (
            {"algo.critic_lr": {"type": "float", "low": 0, "high": 0.1, "log": True}},
            "log: true needs low > 0",
        ),
        ({"algo.critic_epochs": {"type": "int", "low": 1.5, "high": 4}}, "must be an integer"),
        ({"algo.activation": {"type": "categorical", "choices": []}}, "must be a non-empty list"),
        (
            {"algo.activation": {"type": "categorical", "choices": ["tanh", "swish"]}},
            "algo.activation: must be one of",
        ),
        ({"train.total_steps": {"type": "int", "low": 1, "high": 9}}, "cannot be searched"),
        ({"hyperopt.n_trials": {"type": "int", "low": 1, "high": 9}}, "cannot be searched"),
        ({"algo.gamma": 0.99}, "must be a mapping such as"),
        (
            {"conditional": {"sac": {"algo.gamma": {"type": "float", "low": 0.9, "high": 0.99}}}},
            "conditional.sac: not a registered algorithm",
        ),
    ],
)
def test_malformed_space_is_one_line_naming_the_entry(entry, message):
    with pytest.raises(ConfigError) as info:
        parse_space(entry, load_config(None, []), source="space.yaml")
    text = str(info.value)
    assert text.startswith("space.yaml: ") and "\n" not in text
    assert message in text, text


def test_prune_rule_cost_and_quantile_after_warmup():
    rule = PruneRule(
        warmup_steps=100,
        cost_factor=2.0,
        quantile=0.25,
        min_trials=3,
        reference={200: [1.0, 2.0, 3.0, 4.0]},
    )
    assert rule.decide(50, -100.0, 1000.0, 10.0) is None  # warm-up
    assert "limit" in rule.decide(200, 5.0, 20.5, 10.0)  # cost above 2 x limit
    assert rule.decide(200, 5.0, 20.0, 10.0) is None
    assert "quantile" in rule.decide(200, 1.5, 0.0, 10.0)  # below the 0.25-quantile (1.75)
    assert rule.decide(200, 1.8, 0.0, 10.0) is None
    assert rule.decide(300, -9.0, 0.0, 10.0) is None  # no finished trial reported at 300


def test_composite_value_and_report_grid():
    assert composite_value(10.0, 12.0, 15.0, 2.0) == 10.0
    assert composite_value(10.0, 18.0, 15.0, 2.0) == 4.0
    assert report_grid(1000, 4) == [250, 500, 750, 1000]
    assert report_grid(3, 10) == [1, 2, 3]
