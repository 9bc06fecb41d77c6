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
