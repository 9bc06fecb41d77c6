"""Protocols: determinism, batch-size independence, correctness of the per-episode table, and
isolation from the training env."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _evaltoy import EvalToyVecEnv, make_vec

from saferl.algos.networks import GaussianActor, ObsNormalizer
from saferl.training.evaluation import protocols as P
from saferl.training.evaluation.policies import ActorPolicy, FunctionPolicy, ScriptedAdapter


def _actor_policy(seed=0):
    torch.manual_seed(seed)
    actor = GaussianActor(2, 1, [8, 8], "tanh", -0.5, output_gain=1.0)
    norm = ObsNormalizer(2)
    obs, _ = make_vec(32).reset(seed=99)
    norm.update(torch.as_tensor(obs))
    return ActorPolicy(actor, norm, name="actor")


def _scripted(name="go_to_goal"):
    return ScriptedAdapter(EvalToyVecEnv.SCRIPTED_POLICIES[name], f"baselines:{name}")


def _manual_episode(seed, act, **options):
    """One episode in a 1-instance env with a plain Python loop: the reference."""
    env = EvalToyVecEnv(1, **options)
    obs, _ = env.reset(seed=[seed])
    ret = cost = 0.0
    comps = {"hazard": 0.0, "fast": 0.0}
    first = None
    for t in range(1, 1000):
        obs, r, te, tr, info = env.step(act(obs, env))
        ret += float(r[0])
        cost += float(info["cost"][0])
        for k in comps:
            comps[k] += float(info["cost_components"][k][0])
        if first is None and info["cost"][0] > 0:
            first = t
        if te[0] or tr[0]:
            return {
                "return": ret,
                "cost": cost,
                "length": t,
                "terminated": bool(te[0]),
                "success": float(info["final_info"]["success"][0]),
                "first": first,
                **{f"cost_{k}": v for k, v in comps.items()},
            }
    raise AssertionError("episode did not end")


def test_table_matches_a_plain_single_episode_loop():
    policy = _scripted("reckless")
    table = P.standard(policy, make_vec, episodes=6, seed=40, num_envs=4, limit=3.0)
    assert len(table) == 6
    for row in table.rows():
        ref = _manual_episode(row["seed"], lambda o, e: np.ones((1, 1), np.float32))
        assert row["return"] == pytest.approx(ref["return"], rel=1e-6)
        for k in ("cost", "cost_hazard", "cost_fast", "length", "terminated", "success"):
            assert row[k] == ref[k], k
        assert row["first_violation_step"] == ref["first"]
        assert row["violation"] == (ref["cost"] > 3.0)
        assert row["limit"] == 3.0


def test_same_seeds_same_table():
    for policy in (_scripted(), _actor_policy()):
        for proto in ("standard", "stochastic"):
            a = P.PROTOCOLS[proto](policy, make_vec, episodes=10, seed=7, num_envs=4)
            b = P.PROTOCOLS[proto](policy, make_vec, episodes=10, seed=7, num_envs=4)
            assert a == b
    c = P.standard(_actor_policy(), make_vec, episodes=10, seed=8, num_envs=4)
    assert c != a


@pytest.mark.parametrize("protocol", ["standard", "stochastic", "safety", "human_factors"])
def test_batch_size_does_not_change_the_table(protocol):
    policy = _actor_policy()
    tables = [
        P.PROTOCOLS[protocol](policy, make_vec, episodes=9, seed=3, num_envs=m)
        for m in (1, 4, 9, 32)
    ]
    for t in tables[1:]:
        assert t == tables[0]


def test_episode_rows_depend_only_on_their_seed():
    # The episode with seed 105 is the same whether it runs first, alone, or last in a batch.
    policy = _actor_policy()
    alone = P.stochastic(policy, make_vec, episodes=1, seed=105, num_envs=1)
    batch = P.stochastic(policy, make_vec, episodes=6, seed=100, num_envs=6)
    row = batch.where(batch["seed"] == alone["seed"][0])
    for k in alone.names:
        if k != "episode":
            np.testing.assert_array_equal(row[k], alone[k], err_msg=k)


def test_stochastic_samples_actions_and_randomises_dynamics():
    policy = _actor_policy()
    det = P.run_episodes(policy, make_vec, range(20), num_envs=20, deterministic=True)
    sto = P.run_episodes(policy, make_vec, range(20), num_envs=20, deterministic=False)
    assert not np.array_equal(det["return"], sto["return"])
    table = P.stochastic(policy, make_vec, episodes=5, seed=0, num_envs=5)
    assert table["condition"][0] == "sampled+obs_noise+dynamics"
    assert (table["seed"] >= 1_000_000).all()  # kept apart from the standard seeds
    assert P.dynamics_option(make_vec) == "randomize_dynamics"
    assert P.dynamics_option(lambda num_envs: None) is None
    # a factory taking **options is probed through its env class
    assert P.dynamics_option(lambda num_envs, **kw: EvalToyVecEnv(num_envs, **kw)) == (
        "randomize_dynamics"
    )


def test_levels_and_challenges_are_labelled_and_applied():
    policy = _scripted()
    hf = P.human_factors(policy, make_vec, episodes=30, seed=0, num_envs=30)
    assert hf.unique("condition") == list(P.IMPAIRMENT_LEVELS)
    assert hf.unique("level") == list(P.IMPAIRMENT_LEVELS)
    # the toy's impairment noise grows with the level: costs grow too
    costs = [hf.where(level=lv)["cost"].mean() for lv in P.IMPAIRMENT_LEVELS]
    assert costs[0] < costs[-1]
    sf = P.safety(policy, make_vec, episodes=10, seed=0, num_envs=10)
    assert sf.unique("challenge") == list(P.CHALLENGE_LEVELS)
    # same seeds in every condition (common random numbers)
    assert (sf.where(challenge="easy")["seed"] == sf.where(challenge="hard")["seed"]).all()
    # limit defaults to the env's declared one
    assert (sf["limit"] == 3.0).all()


def test_evaluation_never_touches_the_training_env_algorithm_or_global_rngs():
    from saferl.config import AlgoConfig
    from saferl.registry import ALGORITHMS

    train_env = make_vec(8)
    train_env.reset(seed=11)
    algo = ALGORITHMS.get("cpo")(
        train_env.single_observation_space,
        train_env.single_action_space,
        AlgoConfig(hidden_sizes=[8, 8]),
        cost_limit=3.0,
        seed=0,
    )
    for _ in range(5):
        obs, *_ = train_env.step(np.full((8, 1), 0.3, np.float32))
        algo.obs_norm.update(torch.as_tensor(obs))
    policy = ActorPolicy.from_algorithm(algo, name="cpo")
    before_env = train_env.state_dict()
    before_algo = algo.state_dict()
    before_algo = {k: before_algo[k] for k in ("actor", "obs_norm", "generator")}
    before_algo = {
        k: {n: t.clone() for n, t in v.items()} if isinstance(v, dict) else v.clone()
        for k, v in before_algo.items()
    }
    np_state = np.random.get_state()[1].copy()  # noqa: NPY002 (the legacy global)
    torch_state = torch.get_rng_state().clone()
    threads = torch.get_num_threads()

    for proto in P.PROTOCOLS.values():
        proto(policy, make_vec, episodes=4, seed=0, num_envs=4)

    after = train_env.state_dict()
    assert after["rng"]["counter"].tolist() == before_env["rng"]["counter"].tolist()
    for k in ("x", "goal", "gain"):
        np.testing.assert_array_equal(after["env"][k], before_env["env"][k])
    np.testing.assert_array_equal(after["elapsed"], before_env["elapsed"])
    now = algo.state_dict()
    for part in ("actor", "obs_norm"):
        for k, v in now[part].items():
            assert torch.equal(v, before_algo[part][k]), (part, k)
    assert torch.equal(now["generator"], before_algo["generator"])  # its sampling RNG
    assert algo.actor.training  # not even switched to eval mode
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)  # noqa: NPY002
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert torch.get_num_threads() == threads
    # and the training env continues as if nothing happened
    twin = make_vec(8)
    twin.load_state_dict(before_env)
    a = np.full((8, 1), -0.2, np.float32)
    np.testing.assert_array_equal(train_env.step(a)[0], twin.step(a)[0])


def test_function_policy_and_step_cap():
    policy = FunctionPolicy(lambda obs: np.zeros((obs.shape[0], 1), np.float32), "zero")
    t = P.run_episodes(policy, make_vec, [1, 2, 3], num_envs=2, max_steps=5)
    assert t["length"].tolist() == [5, 5, 5]
    assert not t["terminated"].any()


def test_resolve_protocols():
    assert P.resolve_protocols(None) == ["standard"]
    assert P.resolve_protocols(["all"]) == list(P.PROTOCOLS)
    assert P.resolve_protocols(["safety,standard", "safety"]) == ["safety", "standard"]
    with pytest.raises(P.UnknownProtocolError, match=r"unknown protocol 'robust'; available"):
        P.resolve_protocols(["standard,robust"])
    with pytest.raises(ValueError, match="no protocol"):
        P.resolve_protocols([" , "])


def test_bad_arguments():
    with pytest.raises(ValueError, match="episodes"):
        P.standard(_scripted(), make_vec, episodes=0)
    with pytest.raises(ValueError, match="seeds"):
        P.run_episodes(_scripted(), make_vec, [-1])
    with pytest.raises(ValueError, match="obs_noise"):
        P.stochastic(_scripted(), make_vec, episodes=1, obs_noise=-1)
