"""training/setup.py: the one place that turns a config into env, cost limits and algorithm,
and turns the env's refusals into one-line errors naming the config field."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from _standins import toy_config

from saferl.config import Config, ConfigError, load_config
from saferl.training import setup
from saferl.training.trainer import Trainer, TrainError

EXO = ["env.id=ExoGait-v0", "env.num_envs=2", "train.total_steps=1", "train.progress=false"]


def _exo(*overrides: str) -> Config:
    return load_config(base=Config(), overrides=[*EXO, *overrides])


def test_gymnasium_id_is_the_same_env():
    spec = setup.env_spec(load_config(overrides=["env.id=saferl/WheelchairSC-v0"]))
    assert spec.id == "WheelchairSC-v0"
    assert spec.options == setup.env_spec(load_config()).options


def test_the_packaged_default_builds_the_assist_env_with_averages():
    spec = setup.env_spec(load_config(overrides=["env.num_envs=2"]))
    # the packaged default: assist mode, averages of two observation dims appended
    env = spec.make(2)
    base = spec.base(num_envs=2, **spec.options)
    assert env.single_observation_space.shape[0] == base.single_observation_space.shape[0] + 2
    assert spec.options == {"action_mode": "assist"}
    env.close()
    base.close()


def test_evaluation_loads_a_run_into_the_env_its_trainer_built(tmp_path):
    from saferl.training.evaluation.models import load_run_model

    cfg = load_config(
        overrides=[
            *("env.num_envs=4", "env.challenge=hard", "env.cost_limit=2.5"),
            *("train.total_steps=64", "train.steps_per_epoch=64", "train.best_eval_episodes=0"),
            *("algo.hidden_sizes=[8]", "train.progress=false", "train.plot_every=100"),
            *(f"train.runs_dir={tmp_path}", "train.name=r"),
        ]
    )
    trainer = Trainer(cfg, command=["test"])
    trainer.train()
    model = load_run_model(trainer.run_dir)
    assert model.env_id == trainer.env_id and model.env_options == trainer.env_spec.options
    assert model.limit == trainer.cost_limit == 2.5
    assert model.env_options == {"action_mode": "assist", "challenge": "hard"}


def test_cost_limits_follow_the_env_and_strict():
    cfg = _exo()
    env = setup.env_spec(cfg).make(1)
    constraints = env.constraints
    lim = setup.cost_limits(cfg, env)
    assert lim.combined == constraints.get_limit() and not lim.strict
    assert lim.names == tuple(constraints.names)
    assert lim.per_constraint == tuple(c.limit for c in constraints)
    strict = setup.cost_limits(_exo("env.strict=true"), env)
    assert strict.combined == constraints.get_limit(strict=True)
    assert strict.per_constraint == tuple(c.strict_limit for c in constraints)
    assert setup.cost_limits(_exo("env.cost_limit=7"), env).combined == 7.0


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("env.impairment=extreme", "env.impairment"),
        ("env.challenge=bogus", "env.challenge"),
        ("env.options.foo=1", "env.options.foo"),
        ("env.options.challenge=hard", "env.options.challenge"),
        ("train.device=bogus", "train.device"),
        ("train.steps_per_epoch=1e12", "train.steps_per_epoch"),
        ("algo.hidden_sizes=[100000,100000]", "algo.hidden_sizes"),
    ],
)
def test_bad_env_options_and_sizes_are_one_line_errors_naming_the_field(tmp_path, override, field):
    cfg = _exo(override, f"train.runs_dir={tmp_path}", "train.name=bad")
    with pytest.raises(ConfigError) as info:
        Trainer(cfg, command=["test"])
    msg = str(info.value)
    assert msg.startswith(f"{field}:") and "\n" not in msg, msg
    assert not (tmp_path / "bad").exists()


def test_a_field_set_on_the_default_config_is_named_not_the_obs_averages(tmp_path):
    cfg = load_config(overrides=["env.impairment=extreme", f"train.runs_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=r"^env\.impairment: unknown level 'extreme'"):
        Trainer(cfg, command=["test"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_cuda_on_a_cpu_only_torch_is_refused():
    with pytest.raises(ConfigError, match=r"^train\.device: cuda is not available here"):
        setup.check_resources(_exo("train.device=cuda"))


def test_memory_estimate_accepts_the_shipped_configs():
    for cfg in (load_config(), load_config("configs/exo_cpo.yaml")):
        setup.check_resources(cfg, 64, 4)


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_cli_refuses_an_unknown_env_option_in_one_line(tmp_path, command):
    if command == "train":
        argv = ["train", "--runs-dir", str(tmp_path), "--name", "x", "--set", "env.options.foo=1"]
    else:
        cfg = toy_config(tmp_path, "r", **{"train.total_steps": 64})
        Trainer(cfg, command=["test"]).train()
        argv = ["evaluate", str(tmp_path / "r"), "--set", "env.options.foo=1"]
    code = (
        "import sys; sys.path.insert(0, 'tests/training'); import _standins; "
        "_standins.register(); from saferl.cli import main; sys.argv[1:] = "
        f"{argv!r}; main()"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "env.options.foo" in lines[0] and "Traceback" not in res.stderr
    if command == "train":
        assert not (tmp_path / "x").exists()


def test_an_algorithm_without_the_contract_is_refused_naming_what_it_lacks(tmp_path):
    from saferl.registry import ALGORITHMS

    class Half:
        def __init__(self, *args, **kwargs):
            self.cost_limit = 1.0

        def act(self, obs): ...

        def update(self, batch): ...

    ALGORITHMS.register("half", Half, overwrite=True, source="user")
    cfg = toy_config(tmp_path, "half", **{"algo.name": "half"})
    with pytest.raises(TrainError, match="missing: state_dict, load_state_dict, optimizers"):
        Trainer(cfg, command=["test"])


def test_a_run_started_with_obs_indices_resumes_with_their_field_names(tmp_path):
    small = [
        *("env.num_envs=4", "train.steps_per_epoch=64", "train.best_eval_episodes=0"),
        *("algo.hidden_sizes=[8]", "train.progress=false", "train.plot_every=100"),
        *(f"train.runs_dir={tmp_path}", "train.name=r"),
    ]
    cfg = load_config(overrides=[*small, "env.obs_ema.dims=[8, 9]", "train.total_steps=64"])
    trainer = Trainer(cfg, command=["test"])
    assert trainer.train() == 0
    resumed = Trainer.resume(
        trainer.run_dir, ["env.obs_ema.dims=[joystick_std]", "train.total_steps=128"]
    )
    assert resumed.epoch == 1 and resumed.train() == 0
