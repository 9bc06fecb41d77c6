"""Evaluation on the real wheelchair env: per-instance seeding makes an episode's row depend only
on its seed, whatever the batch size (checked with a scripted baseline and a Gaussian actor)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

wheelchair = pytest.importorskip("saferl.envs.wheelchair")

from saferl.algos.networks import GaussianActor, ObsNormalizer  # noqa: E402
from saferl.training.evaluation import protocols as P  # noqa: E402
from saferl.training.evaluation.policies import ActorPolicy, ScriptedAdapter  # noqa: E402


def _actor():
    torch.manual_seed(1)
    env = wheelchair.make_vec(16)
    obs, _ = env.reset(seed=0)
    obs_dim, act_dim = obs.shape[1], env.single_action_space.shape[0]
    norm = ObsNormalizer(obs_dim)
    norm.update(torch.as_tensor(obs))
    return ActorPolicy(GaussianActor(obs_dim, act_dim), norm, name="actor")


def _check_batch_invariance(policy, episodes, sizes):
    tables = [
        P.stochastic(policy, wheelchair.make_vec, episodes=episodes, seed=3, num_envs=m)
        for m in sizes
    ]
    for t in tables[1:]:
        assert t == tables[0], (policy.name, len(t))
    assert set(tables[0].cost_components) == set(wheelchair.WHEELCHAIR_CONSTRAINTS.names)
    assert np.isfinite(tables[0]["success"]).all()  # the env reports success


def test_wheelchair_rows_do_not_depend_on_batch_size():
    _check_batch_invariance(_actor(), 2, (1, 2))


@pytest.mark.slow
def test_wheelchair_rows_do_not_depend_on_batch_size_long():
    scripted = wheelchair.WheelchairSCVecEnv.SCRIPTED_POLICIES
    for name in scripted:
        _check_batch_invariance(ScriptedAdapter(scripted[name], f"baselines:{name}"), 6, (1, 4, 6))
    _check_batch_invariance(_actor(), 6, (1, 4, 6))


def test_wheelchair_levels_run():
    policy = ScriptedAdapter(
        wheelchair.WheelchairSCVecEnv.SCRIPTED_POLICIES["human_only"], "baselines:human_only"
    )
    hf = P.human_factors(policy, wheelchair.make_vec, episodes=2, seed=0, num_envs=2)
    assert hf.unique("level") == list(P.IMPAIRMENT_LEVELS)
    sf = P.safety(policy, wheelchair.make_vec, episodes=2, seed=0, num_envs=2)
    assert sf.unique("challenge") == list(P.CHALLENGE_LEVELS)
    assert (sf["limit"] == wheelchair.WHEELCHAIR_CONSTRAINTS.get_limit()).all()


def test_asymmetric_critic_run_trains_and_evaluates(tmp_path):
    # The trainer hands the env's privileged dims to CPO; the saved actor reads only the 44
    # deployable ones, and evaluation rebuilds it that way from the run's config.
    from saferl.config import Config, load_config
    from saferl.training.evaluation.models import load_run_model
    from saferl.training.trainer import Trainer

    cfg = load_config(
        base=Config(),
        overrides=[
            "env.id=WheelchairSC-v0", "env.num_envs=8", "env.options={privileged_obs: true}",
            "algo.name=cpo", "algo.asymmetric_critic=true", "algo.hidden_sizes=[16, 16]",
            "algo.critic_epochs=1", "train.total_steps=320", "train.steps_per_epoch=160",
            "train.progress=false", "train.plot_every=1000", f"train.runs_dir={tmp_path}",
            "train.name=asym",
        ],
    )  # fmt: skip
    trainer = Trainer(cfg, command=["test"])
    assert trainer.train() == 0
    assert trainer.algo.actor.mu[0].in_features == wheelchair.WheelchairSCVecEnv.OBS_DIM
    model = load_run_model(trainer.run_dir, checkpoint="last")
    assert model.policy.actor.mu[0].in_features == wheelchair.WheelchairSCVecEnv.OBS_DIM
    table = P.standard(model.policy, model.env_factory, episodes=4, seed=0, num_envs=4,
                       env_options=model.env_options)  # fmt: skip
    assert len(table) == 4 and np.isfinite(table["return"]).all()


def _obs_ema_config(tmp_path, dims="[8, 9]", action_mode="blend"):
    from saferl.config import Config, load_config

    return load_config(
        base=Config(),
        overrides=[
            "env.id=WheelchairSC-v0", "env.num_envs=4", f"env.obs_ema={{dims: {dims}}}",
            f"env.options={{action_mode: {action_mode}}}",
            "algo.name=cpo", "algo.hidden_sizes=[16, 16]", "algo.critic_epochs=1",
            # 640 steps per instance: every instance finishes an episode (600-step limit), and
            # best.pt is judged on complete evaluation episodes built with the same wrapper
            "train.total_steps=2560", "train.steps_per_epoch=1280", "train.checkpoint_every=1",
            "train.best_eval_episodes=2", "train.progress=false", "train.plot_every=1000",
            f"train.runs_dir={tmp_path}", "train.name=ema",
        ],
    )  # fmt: skip


@pytest.mark.parametrize("action_mode", ["blend", "assist"])
def test_obs_ema_run_trains_and_evaluates_with_the_averages(tmp_path, action_mode):
    """The default config's env (assist mode and the averages) end to end: the trained actor,
    the reloaded model and evaluation all see the planner's dims and the averages."""
    from saferl.training.evaluation.models import load_run_model
    from saferl.training.tracking import read_metrics
    from saferl.training.trainer import Trainer

    trainer = Trainer(_obs_ema_config(tmp_path, action_mode=action_mode), command=["test"])
    assert trainer.train() == 0
    assert trainer.collector.state_dict()["total_steps"] == 2560
    metrics = read_metrics(trainer.run_dir / "metrics.jsonl")
    assert metrics[-1]["episodes"] > 0 and "best_eval_return" in metrics[-1]
    d = wheelchair.WheelchairSCVecEnv.OBS_DIM + 2  # two averages appended
    if action_mode == "assist":
        d += wheelchair.WheelchairSCVecEnv.ASSIST_OBS_DIMS
    assert trainer.algo.actor.mu[0].in_features == d
    model = load_run_model(trainer.run_dir, checkpoint="last")
    assert model.policy.actor.mu[0].in_features == d
    table = P.standard(model.policy, model.env_factory, episodes=4, seed=0, num_envs=4,
                       env_options=model.env_options)  # fmt: skip
    assert len(table) == 4 and np.isfinite(table["return"]).all()


def test_obs_ema_with_dims_the_env_lacks_is_a_one_line_config_error(tmp_path):
    from saferl.config import ConfigError
    from saferl.training.trainer import Trainer

    with pytest.raises(ConfigError, match=r"^env\.obs_ema\.dims: \[99\]"):
        Trainer(_obs_ema_config(tmp_path, dims="[99]"), command=["test"])


def test_baselines_offered_are_those_defined_for_the_env_options():
    from saferl.registry import ENVS
    from saferl.training.evaluation import EvaluationError
    from saferl.training.evaluation.models import load_baseline, scripted_policies

    factory = ENVS.get("WheelchairSC-v0")
    assert "safety_filter" in scripted_policies(factory, {})
    assist = scripted_policies(factory, {"action_mode": "assist"})
    assert "safety_filter" not in assist and {"autopilot", "tremor_switch"} <= set(assist)
    model = load_baseline("tremor_switch", env_options={"action_mode": "assist"})
    table = P.standard(model.policy, model.env_factory, episodes=2, seed=0, num_envs=2,
                       env_options=model.env_options)  # fmt: skip
    assert len(table) == 2
    with pytest.raises(EvaluationError, match="'baselines:safety_filter' is not defined"):
        load_baseline("safety_filter", env_options={"action_mode": "assist"})
    with pytest.raises(EvaluationError, match="unknown baseline 'baselines:teleport'"):
        load_baseline("teleport", env_options={"action_mode": "assist"})
