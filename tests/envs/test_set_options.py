"""``set_options`` on running envs (impairment/challenge curricula): a change applies to each
instance from its next episode start, never mid-episode; instances that start afterwards behave
exactly as in an env built with the new option; the options travel with ``state_dict``."""

from __future__ import annotations

import copy
import io

import gymnasium as gym
import numpy as np
import pytest
import torch

import saferl  # noqa: F401  (registers the gymnasium ids)
from saferl.envs.exoskeleton import CHALLENGES, ExoGaitVecEnv
from saferl.envs.wheelchair import WheelchairSCVecEnv
from saferl.training.checkpoint import from_plain, to_plain

SEVERE = 3
CH = {"easy": 0, "standard": 1, "hard": 2}


def wheelchair(n, **kw):
    env = WheelchairSCVecEnv(n, **kw)
    env.max_episode_steps = 30  # short episodes: many autoresets in a few steps
    return env


def exo(n, **kw):
    return ExoGaitVecEnv(n, episode_steps=30, **kw)


def level(env) -> np.ndarray:
    """The impairment level of each instance's current episode."""
    return (env.human.level if isinstance(env, WheelchairSCVecEnv) else env.level).copy()


MAKERS = pytest.mark.parametrize("make", [wheelchair, exo], ids=["wheelchair", "exo"])


def actions(env, steps, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (steps, *env.action_space.shape)).astype(np.float32)


def staggered(env, seed=1):
    """Reset, then restart half the instances 10 steps later (episodes end at different steps)."""
    env.reset(seed=seed)
    acts = actions(env, 10, seed)
    for a in acts:
        env.step(a)
    env.reset(options={"reset_mask": np.arange(env.num_envs) % 2 == 0})


@MAKERS
def test_impairment_applies_from_each_instances_next_episode_never_mid_episode(make):
    env = make(8, impairment="none")
    staggered(env)
    acts = actions(env, 45, 2)
    for a in acts[:5]:
        env.step(a)
    env.set_options(impairment="severe")
    assert env.get_options()["impairment"] == "severe"
    assert (level(env) == 0).all()  # nothing changes until an episode starts
    restarted = np.zeros(env.num_envs, bool)
    for a in acts[5:]:
        before = level(env)
        _, _, term, trunc, _ = env.step(a)
        done = term | trunc
        after = level(env)
        np.testing.assert_array_equal(after[~done], before[~done])  # never mid-episode
        assert (after[done] == SEVERE).all()  # every episode started afterwards
        restarted |= done
    assert restarted.all()
    assert (level(env) == SEVERE).all()
    env.set_options(impairment=None)  # back to sampling per episode
    assert env.get_options()["impairment"] == "random"
    assert (env.level_codes == -1).all() and (level(env) == SEVERE).all()


def test_wheelchair_challenge_change_keeps_episodes_under_way_on_their_library():
    """Mid-episode instances go on exactly as without the change (same map library, same
    physics); every instance that starts afterwards draws from the hard library."""
    a, b = wheelchair(6, challenge="standard"), wheelchair(6, challenge="standard")
    staggered(a)
    staggered(b)
    acts = actions(a, 40, 3)
    for x in acts[:5]:
        np.testing.assert_array_equal(a.step(x)[0], b.step(x)[0])
    a.set_options(challenge="hard")
    assert a.challenge_name == "hard" and a.get_options()["challenge"] == "hard"
    running = np.ones(a.num_envs, bool)  # still in the episode they began before the change
    for x in acts[5:]:
        oa, ra, ta, ua, ia = a.step(x)
        ob, rb, tb, ub, ib = b.step(x)
        done = ta | ua
        np.testing.assert_array_equal((ta | ua)[running], (tb | ub)[running])
        np.testing.assert_array_equal(ra[running], rb[running])
        np.testing.assert_array_equal(ia["cost"][running], ib["cost"][running])
        running &= ~done
        np.testing.assert_array_equal(oa[running], ob[running])
        assert (a.episode_challenge[running] == CH["standard"]).all()
        assert (a.episode_challenge[~running] == CH["hard"]).all()
    assert not running.any()
    hard = a._libs["hard"]
    np.testing.assert_array_equal(a.goal_xy, hard.goals[a.map_id].astype(np.float32))
    np.testing.assert_array_equal(a.walls, hard.walls[a.map_id].astype(np.float32))
    assert a.maps is hard and a.discs.shape[1] >= b.discs.shape[1]


def test_exo_challenge_change_pushes_only_episodes_started_under_it():
    a, b = exo(6, challenge="standard"), exo(6, challenge="standard")
    staggered(a)
    staggered(b)
    acts = actions(a, 45, 4)
    a.set_options(challenge="hard")
    running = np.ones(a.num_envs, bool)
    for x in acts:
        oa, ra, ta, ua, _ = a.step(x)
        ob, rb, *_ = b.step(x)
        done = ta | ua
        np.testing.assert_array_equal(ra[running], rb[running])
        running &= ~done
        np.testing.assert_array_equal(oa[running], ob[running])
        assert (a.sim.f_push[a.episode_challenge == CH["standard"]] == 0).all()
        # pushes (and their random draws) only for the episodes started under "hard"
        hard = np.flatnonzero(a.episode_challenge == CH["hard"])
        groups = [(ch, None if i is None else i.tolist()) for ch, i in a._push_groups]
        if hard.size == 0:
            assert groups == []
        else:
            assert groups == [(CHALLENGES["hard"], None if hard.size == 6 else hard.tolist())]
    assert not running.any() and (a.episode_challenge == CH["hard"]).all()


ENVS = [
    (wheelchair, "impairment", "severe", {"impairment": "random"}),
    (wheelchair, "challenge", "hard", {"challenge": "standard", "impairment": "mild"}),
    (wheelchair, "challenge", "easy", {"challenge": "hard"}),
    (exo, "impairment", "severe", {"impairment": "random"}),
    (exo, "challenge", "hard", {"challenge": "standard", "impairment": "mild"}),
]
IDS = ["wc-impairment", "wc-std-hard", "wc-hard-easy", "exo-impairment", "exo-std-hard"]


@pytest.mark.parametrize(("make", "name", "value", "start"), ENVS, ids=IDS)
def test_env_given_set_options_then_reset_matches_an_env_built_with_it(make, name, value, start):
    changed = make(4, **start)
    changed.reset(seed=5)
    for x in actions(changed, 12, 6):
        changed.step(x)
    changed.set_options(**{name: value})
    fresh = make(4, **{**start, name: value})
    oc, _ = changed.reset(seed=11)
    of, _ = fresh.reset(seed=11)
    np.testing.assert_array_equal(oc, of)
    for x in actions(fresh, 40, 7):  # through autoresets
        sc, sf = changed.step(x), fresh.step(x)
        for u, v in zip(sc[:4], sf[:4], strict=True):
            np.testing.assert_array_equal(u, v)
        np.testing.assert_array_equal(sc[4]["cost"], sf[4]["cost"])
    np.testing.assert_array_equal(level(changed), level(fresh))


@pytest.mark.parametrize(
    ("make", "name", "value", "start"), ENVS[:2] + ENVS[3:], ids=IDS[:2] + IDS[3:]
)
def test_instances_started_after_the_change_match_a_fresh_env_with_the_same_streams(
    make, name, value, start
):
    """Per-instance streams: an instance that starts an episode after set_options, while its
    neighbours are still in old-option episodes, is the instance of an env built with the new
    option that starts from the same random stream."""
    changed = make(4, **start)
    fresh = make(4, **{**start, name: value})
    for env in (changed, fresh):
        env.reset(seed=3)
        for x in actions(env, 6, 8):
            env.step(x)
    changed.set_options(**{name: value})
    fresh.rng.load_state_dict(changed.rng.state_dict())
    mask = np.array([True, True, False, False])
    oc, _ = changed.reset(options={"reset_mask": mask})
    of, _ = fresh.reset(options={"reset_mask": mask})
    np.testing.assert_array_equal(oc[mask], of[mask])
    for x in actions(fresh, 25, 9):  # shorter than an episode: no autoreset
        sc, sf = changed.step(x), fresh.step(x)
        for u, v in zip(sc[:4], sf[:4], strict=True):
            np.testing.assert_array_equal(u[mask], v[mask])
    np.testing.assert_array_equal(level(changed)[mask], level(fresh)[mask])


@pytest.mark.parametrize("make", [wheelchair, exo], ids=["wheelchair", "exo"])
def test_state_dict_round_trip_keeps_the_options_and_continues_exactly(make):
    env = make(4, challenge="standard", impairment="none")
    staggered(env)
    acts = actions(env, 60, 10)
    for x in acts[:3]:
        env.step(x)
    env.set_options(challenge="hard", impairment="severe")
    for x in acts[3:8]:  # some instances on each challenge
        env.step(x)
    # the checkpoint path: plain containers, torch.save, torch.load(weights_only=True)
    buf = io.BytesIO()
    torch.save(to_plain(env.state_dict()), buf)
    buf.seek(0)
    state = from_plain(torch.load(buf, weights_only=True))
    assert state["options"] == {"impairment": "severe", "challenge": "hard"}
    ref = [env.step(x) for x in acts[8:]]
    other = make(4, challenge="standard", impairment="none")  # as the config builds it
    other.load_state_dict(copy.deepcopy(state))
    assert other.get_options() == {"impairment": "severe", "challenge": "hard"}
    for x, r in zip(acts[8:], ref, strict=True):
        s = other.step(x)
        for u, v in zip(s[:4], r[:4], strict=True):
            np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(level(other), level(env))
    np.testing.assert_array_equal(other.episode_challenge, env.episode_challenge)
    with pytest.raises(ValueError, match="options"):  # built with another challenge
        make(4, challenge="easy").load_state_dict(state)


@MAKERS
def test_setting_the_current_values_changes_nothing(make):
    a, b = make(3, challenge="standard", impairment="mild"), make(3, impairment="mild")
    for env in (a, b):
        env.reset(seed=2)
    for x in actions(a, 35, 11):
        a.set_options(challenge="standard", impairment="mild")
        a.set_options()
        for u, v in zip(a.step(x)[:4], b.step(x)[:4], strict=True):
            np.testing.assert_array_equal(u, v)
    if isinstance(a, WheelchairSCVecEnv):
        assert list(a._libs) == ["standard"]


@MAKERS
@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"impairment": "extreme"}, r"impairment: unknown value 'extreme'.*'severe'"),
        ({"challenge": "insane"}, r"challenge: unknown value 'insane'.*'easy', 'standard', 'hard'"),
        ({"challenge": 2}, r"challenge: unknown value 2"),
        ({"impairment": ["none"] * 3}, r"impairment: unknown value \["),
        ({"friction": 0.5}, r"no option 'friction'.*'impairment', 'challenge'"),
        ({"challenge": "hard", "impairment": "bad"}, r"impairment: unknown value 'bad'"),
    ],
)
def test_bad_names_and_values_raise_naming_them_and_change_nothing(make, options, match):
    env = make(3, challenge="standard", impairment="none")
    with pytest.raises(ValueError, match=match):
        env.set_options(**options)
    assert env.get_options() == {"impairment": "none", "challenge": "standard"}


def test_single_env_set_options_applies_from_the_next_reset():
    env = gym.make("saferl/WheelchairSC-v0", impairment="none")
    env.reset(seed=0)
    env.unwrapped.set_options(impairment="severe")
    assert env.unwrapped.vec.human.level[0] == 0  # the episode under way
    env.reset()
    assert env.unwrapped.vec.human.level[0] == SEVERE
    assert env.unwrapped.get_options()["impairment"] == "severe"
