"""External envs in saferl's batched contract: ``gym:<id>`` (a real Gymnasium env with a cost
wrapper) and ``safety:<target>`` (a 6-tuple env of our own with Safety-Gymnasium's API), see
tests/envs/_extenvs.py. The MuJoCo velocity tasks: test_adapters_mujoco.py."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import warnings
from pathlib import Path

import _extenvs
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import saferl
from saferl.config import ConfigError, load_config
from saferl.envs import check_safe_env
from saferl.envs.adapters import (
    VELOCITY_TASKS,
    CostInfoError,
    GymnasiumVecEnv,
    ReplayError,
    SafeInstance,
    SixTupleEnv,
    episode_seed,
    make_gym_vec,
    make_safety_vec,
)
from saferl.registry import ENVS, UnknownNameError
from saferl.training import setup

HERE = Path(__file__).parent
PENDULUM = "gym:_extenvs:CostPendulum-v0"
SIX = "safety:_extenvs:make_six_tuple"


def _actions(env, steps: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    low, high = env.single_action_space.low, env.single_action_space.high
    return rng.uniform(low, high, (steps, env.num_envs, low.shape[0])).astype(np.float32)


def _single_pendulum() -> gym.Env:
    return gym.make("_extenvs:CostPendulum-v0")  # with its 60-step time limit


def _single_six() -> gym.Env:
    return SixTupleEnv(_extenvs.make_six_tuple())


def _hand_stepped(make_single, horizon, seed, index, actions):
    """Instance ``index``'s transitions, stepped by hand on a plain env: (obs, reward, cost,
    terminated, truncated, final_obs or None) per step, plus each episode's summed cost."""
    env = make_single()
    episode, t = 0, 0
    obs, _ = env.reset(seed=episode_seed(seed, index, episode))
    out, ep_costs, ep_cost = [], [], 0.0
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        t += 1
        trunc = trunc or (horizon is not None and t >= horizon)
        cost = float(info["cost"])
        ep_cost += cost
        final = None
        if term or trunc:
            final = np.asarray(obs, np.float32)
            ep_costs.append(ep_cost)
            episode, t, ep_cost = episode + 1, 0, 0.0
            obs, _ = env.reset(seed=episode_seed(seed, index, episode))
        out.append((np.asarray(obs, np.float32), np.float32(r), cost, term, trunc, final))
    return out, ep_costs


@pytest.mark.parametrize(
    ("env_id", "make_single", "horizon"),
    [(PENDULUM, _single_pendulum, None), (SIX, _single_six, None)],
    ids=["gym", "six_tuple"],
)
def test_autoreset_final_obs_and_episode_costs_equal_a_hand_stepped_single_env(
    env_id, make_single, horizon
):
    env = saferl.make_env(env_id, num_envs=3)
    actions = _actions(env, 150, seed=1)
    env.reset(seed=7)
    got = [[] for _ in range(3)]
    ep_costs = [[] for _ in range(3)]
    finished = 0
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        assert info["cost"].dtype == np.float32 and info["cost"].shape == (3,)
        for i in range(3):
            final = None
            if term[i] or trunc[i]:
                final = info["final_obs"][i]
                ep_costs[i].append(float(info["final_info"]["episode_cost"][i]))
                assert info["final_info"]["cost"][i] == info["cost"][i]
                finished += 1
            got[i].append((obs[i], r[i], float(info["cost"][i]), term[i], trunc[i], final))
    assert finished >= 6  # both ways of ending an episode are exercised below
    for i in range(3):
        want, want_costs = _hand_stepped(make_single, horizon, 7, i, actions[:, i])
        for t, (g, w) in enumerate(zip(got[i], want, strict=True)):
            assert np.array_equal(g[0], w[0]), (i, t)
            assert g[1:5] == w[1:5], (i, t)
            assert (g[5] is None) == (w[5] is None), (i, t)
            if w[5] is not None:
                assert np.array_equal(g[5], w[5]), (i, t)
        # costs summed per episode equal the wrapped env's
        assert ep_costs[i] == pytest.approx(want_costs, abs=1e-4)
    env.close()


def test_pendulum_truncates_and_six_tuple_terminates():
    pend = saferl.make_env(PENDULUM, num_envs=2)
    assert pend.max_episode_steps == 60
    pend.reset(seed=0)
    trunc_seen = False
    for a in _actions(pend, 60):
        _, _, term, trunc, _ = pend.step(a)
        assert not term.any()
        trunc_seen |= trunc.all()
    assert trunc_seen
    six = saferl.make_env(SIX, num_envs=4, noise=3.0)
    six.reset(seed=0)
    assert any(six.step(a)[2].any() for a in _actions(six, 40))


def test_same_seed_same_rollout_whatever_the_split_and_other_seed_differs():
    def roll(env, seed, actions):
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for a in actions:
            o, r, *_, info = env.step(a)
            out += [o, r, info["cost"]]
        return out

    whole = saferl.make_env(SIX, num_envs=4)
    actions = _actions(whole, 60)
    a = roll(whole, 3, actions)
    b = roll(whole, 3, actions)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    left = saferl.make_env(SIX, num_envs=2)
    right = saferl.make_env(SIX, num_envs=2, instance_offset=2)
    ra, rb = roll(left, 3, actions[:, :2]), roll(right, 3, actions[:, 2:])
    for x, y, z in zip(a, ra, rb, strict=True):
        assert np.array_equal(x, np.concatenate([y, z]))
    c = roll(whole, 4, actions)
    assert not np.array_equal(a[0], c[0])
    # instances of one run do not play the same episodes
    assert len({tuple(o) for o in a[0]}) == 4


def test_env_without_the_cost_key_is_one_clear_error_naming_the_key():
    with pytest.raises(CostInfoError, match=r"^cost_key: .*no info\['cost'\]"):
        saferl.make_env("gym:_extenvs:NoCostPendulum-v0", num_envs=2)
    with pytest.raises(CostInfoError, match=r"no info\['danger'\] \(its info keys: cost\)"):
        saferl.make_env(PENDULUM, num_envs=1, cost_key="danger")
    with pytest.raises(CostInfoError, match=r"^cost_key: .*no info\['cost'\]"):
        saferl.make_env("gym:_extenvs:NoCostPendulum-v0", num_envs=2, vectorization="async")
    # through a config: one line naming the config field
    cfg = load_config(overrides=["env.id=gym:_extenvs:NoCostPendulum-v0", "env.options={}"])
    with pytest.raises(ConfigError, match=r"^env\.options\.cost_key: .*no info\['cost'\]"):
        setup.env_spec(cfg).make(1)


def test_cost_key_names_another_info_key_and_cost_limit_declares_a_constraint():
    env = make_gym_vec("_extenvs:CostPendulum-v0", 2, cost_key="cost", cost_limit=4.0)
    assert env.constraints.limit == 4.0 and env.constraints.episode_length == 60
    assert list(env.constraints.names) == ["cost"]
    check_safe_env(env, steps=20)
    assert saferl.make_env(PENDULUM, num_envs=1).constraints is None  # the run sets a limit


@pytest.mark.parametrize(
    ("env_id", "options"),
    [(PENDULUM, {}), (SIX, {}), (PENDULUM, {"vectorization": "async"})],
    ids=["gym", "six_tuple", "gym_async"],
)
def test_wrapped_envs_pass_the_safe_env_checker(env_id, options):
    env = saferl.make_env(env_id, num_envs=3, **options)
    try:
        check_safe_env(env, seed=5, steps=80)  # includes the state_dict round trip
    finally:
        env.close()


def test_gymnasium_check_env_passes_on_the_wrapped_instances():
    for single in (
        SafeInstance(gym.make("_extenvs:CostPendulum-v0"), name="pendulum"),
        SafeInstance(_single_six(), name="six"),
    ):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(single, skip_render_check=True)
        msgs = [str(w.message) for w in caught]
        # Gymnasium's advice only: check .unwrapped, and Pendulum's [-2, 2] torque box
        benign = ("different from the unwrapped version", "symmetric and normalized", "infinity")
        assert all(any(b in m for b in benign) for m in msgs), msgs


@pytest.mark.parametrize("env_id", [PENDULUM, SIX])
def test_resume_by_replay_continues_bit_exactly_in_a_fresh_env(env_id):
    env = saferl.make_env(env_id, num_envs=3)
    actions = _actions(env, 200, seed=2)
    env.reset(seed=11)
    for a in actions[:130]:
        env.step(a)
    state = copy.deepcopy(env.state_dict())
    ref = [env.step(a) for a in actions[130:]]
    fresh = saferl.make_env(env_id, num_envs=3)
    fresh.load_state_dict(state)
    for t, a in enumerate(actions[130:]):
        got = fresh.step(a)
        for x, y in zip(got[:4], ref[t][:4], strict=True):
            assert np.array_equal(x, y), t
        assert np.array_equal(got[4]["cost"], ref[t][4]["cost"])
        if "final_info" in ref[t][4]:
            for k in ("episode_return", "episode_cost", "episode_length"):
                assert np.array_equal(got[4]["final_info"][k], ref[t][4]["final_info"][k])


class _Unseeded(gym.Env):
    """Draws from numpy's global RNG: not reproducible from its reset seed and actions."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        obs = np.array([np.random.normal()], np.float32)  # noqa: NPY002 (the point of the test)
        return obs, 0.0, False, False, {"cost": 0.0}


def test_resume_refuses_an_env_that_does_not_reproduce():
    env = GymnasiumVecEnv([_Unseeded] * 2, name="unseeded")
    env.reset(seed=0)
    for _ in range(5):
        env.step(np.zeros((2, 1), np.float32))
    state = env.state_dict()
    with pytest.raises(ReplayError, match="not reproducible from its reset seed and actions"):
        GymnasiumVecEnv([_Unseeded] * 2, name="unseeded").load_state_dict(state)
    with pytest.raises(ValueError, match="state_dict is for"):
        saferl.make_env(SIX, num_envs=2).load_state_dict(state)


class _FiveValues:
    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, False, False, {"cost": 0.0}


def test_six_tuple_adapter_refuses_a_five_tuple_env_and_non_box_spaces():
    with pytest.raises(TypeError, match=r"step\(\) returned 5 values.*use gym:<id>"):
        make_safety_vec(_FiveValues, 1)

    class Discrete(_FiveValues):
        action_space = gym.spaces.Discrete(3)

    with pytest.raises(TypeError, match="needs a Box action space"):
        make_safety_vec(Discrete, 1)


def test_registry_resolves_prefixes_and_explains_unknown_names():
    assert PENDULUM in ENVS and SIX in ENVS and "gym:" not in ENVS
    assert ENVS.prefixes() == ["gym:", "safety:"]
    with pytest.raises(UnknownNameError, match="Gymnasium has no environment 'Nope-v0'"):
        ENVS.get("gym:Nope-v0")
    with pytest.raises(UnknownNameError, match="needs the safety_gymnasium package"):
        ENVS.get("safety:SafetyPointGoal1-v0")
    with pytest.raises(UnknownNameError, match=r"available: .*HopperVelocity-v0.*gym:\.\.\."):
        ENVS.get("Nope-v0")
    cfg = load_config(overrides=["env.id=gym:Nope-v0"])
    with pytest.raises(ConfigError, match=r"^env\.id: environment 'gym:Nope-v0'"):
        setup.env_spec(cfg)


def test_velocity_tasks_without_mujoco_say_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mujoco", None)  # import mujoco -> ImportError
    with pytest.raises(ImportError, match=r"^HopperVelocity-v0 needs MuJoCo.*saferl\[mujoco\]"):
        saferl.make_env("HopperVelocity-v0")
    cfg = load_config(overrides=["env.id=HopperVelocity-v0", "env.options={}", "env.obs_ema=null"])
    with pytest.raises(ConfigError, match=r"^env\.id: HopperVelocity-v0 needs MuJoCo"):
        setup.env_spec(cfg).make(1)
    # listed with their constraints without building an env
    task = VELOCITY_TASKS["AntVelocity-v0"]
    assert task.constraints.limit == 25.0 and task.constraints.episode_length == 1000
    assert "|v_xy| > 2.6222" in task.constraints.constraints[0].threshold


# --------------------------------------------------------------------------------------------
# through the command line: train, resume, evaluate, compare, envs
# --------------------------------------------------------------------------------------------


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "saferl", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _metrics(run: Path) -> list[dict]:
    import json

    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    skip = ("fps", "time", "best_eval")
    return [{k: v for k, v in r.items() if not k.startswith(skip)} for r in rows]


def test_external_envs_train_resume_evaluate_and_compare_like_the_built_ins(tmp_path):
    config = tmp_path / "six.yaml"
    config.write_text(
        f"env: {{id: '{SIX}', num_envs: 3, cost_limit: 5}}\n"
        "algo: {name: cpo, hidden_sizes: [16]}\n"
        "train: {total_steps: 1200, steps_per_epoch: 300, seed: 3, best_eval_episodes: 4}\n"
    )
    ref = _cli("train", "-c", str(config), "--name", "ref", "--runs-dir", "runs", cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr[-2000:]
    cut = _cli(
        "train", "-c", str(config), "--name", "cut", "--runs-dir", "runs",
        "--set", "train.total_steps=600", cwd=tmp_path,
    )  # fmt: skip
    assert cut.returncode == 0, cut.stderr[-2000:]
    res = _cli("train", "--resume", "runs/cut", "--set", "train.total_steps=1200", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    # mid-episode checkpoints (40-step episodes, 100 steps per instance per epoch): exact (the
    # stopped run also judged best.pt at its last epoch: best_eval_* columns, not compared)
    for a, b in zip(_metrics(tmp_path / "runs/cut"), _metrics(tmp_path / "runs/ref"), strict=True):
        assert a == b, {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)}
    assert len(_metrics(tmp_path / "runs/ref")) == 4

    res = _cli("evaluate", "runs/ref", "--protocols", "standard", "--episodes", "4", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "runs/ref/eval/results.json").is_file()
    res = _cli("compare", "runs/ref", "runs/cut", "--episodes", "4", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    # the resumed run ends with the same policy: the same episodes on the same seeds
    lines = [ln for ln in res.stdout.splitlines() if "return" in ln and "cost" in ln]
    assert len(lines) == 2 and lines[0].split("return")[1] == lines[1].split("return")[1]


def test_cli_train_on_a_gym_env_needs_a_limit_and_names_bad_options(tmp_path):
    base = ["train", "--set", f"env.id={PENDULUM}", "--set", "env.obs_ema=null"]
    res = _cli(*base, cwd=tmp_path)  # the default config's wheelchair options
    assert res.returncode == 2
    assert res.stderr.strip().startswith(
        f"error: env.options.action_mode: environment '{PENDULUM}' has no option"
    )
    res = _cli(*base, "--set", "env.options={}", cwd=tmp_path)
    assert res.returncode == 2 and "env.cost_limit: environment" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_saferl_envs_lists_the_velocity_tasks_and_the_prefixes(tmp_path):
    res = _cli("envs", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    for name in VELOCITY_TASKS:
        assert name in res.stdout
    assert "limit 25 per 1000-step episode" in res.stdout
    assert "gym:<Gymnasium id>" in res.stdout and "safety:<module>:<callable>" in res.stdout
