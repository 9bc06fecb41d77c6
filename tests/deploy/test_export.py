"""Exported policies (ONNX Runtime, TorchScript) against saferl's own loaded policy."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from saferl.deploy import (
    DeployError,
    load_exported_model,
    load_policy,
    policy_from_run,
    sidecar_path,
)
from saferl.envs.vector import InstanceRNG
from saferl.training.evaluation import evaluate_model, load_run_model

N_OBS = 10_000
N_ENVS = 16


def _split(model, obs: np.ndarray, obs_dim: int, state_dim: int):
    """The raw env observation (first ``obs_dim`` dims) and the averages inside the wrapped
    observation ``obs`` (``[raw visible, ema, raw privileged]``)."""
    if state_dim == 0:
        return obs[:, :obs_dim], None
    raw_env = model.env_factory.__wrapped__(1, **model.env_options)
    try:
        visible = raw_env.single_observation_space.shape[0] - raw_env.privileged_obs_dims
    finally:
        raw_env.close()
    raw = np.concatenate([obs[:, :visible], obs[:, visible + state_dim :]], axis=1)
    return raw[:, :obs_dim], obs[:, visible : visible + state_dim]


def _rollout(model, steps: int, obs_dim: int, state_dim: int):
    """Observations of real episodes driven by saferl's policy (deterministic), with what the
    wrapper computed: raw obs, averages, episode-start flags and saferl's actions per step."""
    env = model.env_factory(N_ENVS, **model.env_options)
    rng = InstanceRNG(N_ENVS)
    rng.seed(np.arange(N_ENVS))
    try:
        obs, _ = env.reset(seed=list(range(N_ENVS)))
        model.policy.reset(env)
        start = np.ones(N_ENVS, bool)
        out = []
        for _ in range(steps):
            action = model.policy.act(obs, env, deterministic=True, rng=rng)
            raw, ema = _split(model, obs, obs_dim, state_dim)
            out.append((raw, ema, start.copy(), action))
            obs, _, term, trunc, _ = env.step(action)
            start = np.asarray(term, bool) | np.asarray(trunc, bool)
        return out
    finally:
        env.close()


def test_onnx_and_torchscript_equal_saferl_policy_on_10000_observations_of_real_episodes(trained):
    model = load_run_model(trained.run_dir, checkpoint="last")
    onnx = load_policy(trained.onnx)
    ts = load_policy(trained.torchscript)
    assert (onnx.backend, ts.backend) == ("onnxruntime", "torchscript")
    steps = N_OBS // N_ENVS
    rows = _rollout(model, steps, onnx.obs_dim, onnx.state_dim)
    low, high = onnx.low, onnx.high
    worst = {"onnx": 0.0, "torchscript": 0.0}
    state = {"onnx": None, "torchscript": None}
    for raw, ema, start, action in rows:
        expected = np.clip(action, low, high)
        for key, rt in (("onnx", onnx), ("torchscript", ts)):
            got, state[key] = rt.run(raw, state[key], start)
            assert got.dtype == np.float32 and got.shape == expected.shape
            worst[key] = max(worst[key], float(np.abs(got - expected).max()))
            if ema is not None:
                # the function's averages are the env wrapper's, bit for bit
                np.testing.assert_array_equal(state[key], ema)
    print(f"{trained.name}: max |action - saferl| over {steps * N_ENVS} obs: {worst}")
    assert worst["onnx"] <= 1e-5 and worst["torchscript"] <= 1e-5
    # float64 export reproduces saferl's evaluation arithmetic exactly
    assert worst == {"onnx": 0.0, "torchscript": 0.0}


def test_exported_actions_are_clipped_to_the_box_and_batch_size_free(trained, tmp_path):
    """A policy whose mean leaves the box: the export clips, saferl's mean does not (the env
    clips it); each row's action does not depend on the batch it is in."""
    import torch

    from saferl.deploy import build_module, export_policy
    from saferl.training.evaluation import ActorPolicy

    model = load_run_model(trained.run_dir, checkpoint="last")
    actor = model.policy.actor
    with torch.no_grad():  # a policy that saturates: large gains and offsets on the mean
        actor.mu[-1].weight.mul_(300.0)
        actor.mu[-1].bias.copy_(torch.linspace(-2.0, 2.0, actor.mu[-1].bias.numel()))
    saferl_policy = ActorPolicy(actor, model.policy.normalizer)
    spec = build_module(model)
    paths = [
        export_policy(spec, "onnx", tmp_path / "sat.onnx")[0],
        export_policy(spec, "torchscript", tmp_path / "sat.pt")[0],
    ]
    rng = np.random.default_rng(0)
    env = model.env_factory(1, **model.env_options)
    try:
        obs, _ = env.reset(seed=0)
        obs = np.repeat(obs, 512, axis=0)
    finally:
        env.close()
    obs = (obs + rng.standard_normal(obs.shape).astype(np.float32)).astype(np.float32)
    visible = spec.sidecar["observation"]["env_dim"]
    for w in spec.sidecar["wrappers"]:  # averages that restart here: the dims themselves
        ema = np.tile(obs[:, w["dims"]], len(w["weights"]))
        obs[:, visible : visible + w["state_dim"]] = ema
    mean = saferl_policy.act(obs, None, deterministic=True, rng=None)
    expected = np.clip(mean, -1.0, 1.0)
    assert (np.abs(mean) > 1.0).mean() > 0.2, "the test needs means outside the box"
    for path in paths:
        rt = load_policy(path)
        o = obs[:, : rt.obs_dim]  # stateful: the averages follow the raw dims, unused here
        got, _ = rt.run(o)
        np.testing.assert_array_equal(got, expected)
        one_by_one = np.concatenate([rt.run(o[i : i + 1])[0] for i in range(32)])
        np.testing.assert_array_equal(one_by_one, got[:32])


def test_asymmetric_critic_export_takes_only_the_actors_dims(exo):
    rt = load_policy(exo.onnx)
    spec = rt.spec
    assert spec["observation"]["env_dim"] == 38 and rt.obs_dim == 34
    assert spec["policy"]["asymmetric_critic"] and spec["policy"]["actor_input_dims"] == 34
    assert not any(spec["observation"]["privileged"])
    assert [i["name"] for i in spec["inputs"]] == ["obs"]


def test_stateful_export_declares_its_state(wheelchair):
    rt = load_policy(wheelchair.onnx)
    spec = rt.spec
    assert rt.stateful and rt.state_dim == 2 and rt.obs_dim == 49
    assert [i["name"] for i in spec["inputs"]] == ["obs", "ema", "episode_start"]
    assert [o["name"] for o in spec["outputs"]] == ["action", "ema_out"]
    (w,) = spec["wrappers"]
    assert w["type"] == "obs_ema" and w["dims"] == [8, 9] and w["weights"] == [0.05]
    assert w["state_names"] == [
        "ema_w0.05(joystick_std_turn)",
        "ema_w0.05(joystick_std_forward)",
    ]


def test_sidecar_round_trip(trained):
    for path, fmt in ((trained.onnx, "onnx"), (trained.torchscript, "torchscript")):
        side = json.loads(sidecar_path(path).read_text())
        rt = load_policy(path)
        assert rt.spec == side
        assert side["artefact"]["format"] == fmt
        assert side["artefact"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        ckpt = trained.run_dir / "checkpoints" / "last.pt"
        assert side["source"]["checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
        obs, act = side["observation"], side["action"]
        for key in ("names", "units", "low", "high", "privileged"):
            assert len(obs[key]) == obs["dim"] == rt.obs_dim
        for key in ("names", "units", "low", "high"):
            assert len(act[key]) == act["dim"] == rt.act_dim
        assert not any(n.startswith("obs[") for n in obs["names"])
        assert side["env"]["id"] in ("WheelchairSC-v0", "ExoGait-v0")
        assert side["env"]["cost_limit"] > 0 and side["env"]["constraints"]
        assert {"saferl", "torch", "numpy", "onnx", "onnxruntime"} <= set(side["versions"])
        assert side["policy"]["deterministic"] and side["policy"]["precision"] == "float64"


def test_a_changed_artefact_or_a_missing_sidecar_is_refused(wheelchair, tmp_path):
    bad = tmp_path / "p.onnx"
    data = bytearray(wheelchair.onnx.read_bytes())
    data[-1] ^= 1
    bad.write_bytes(bytes(data))
    with pytest.raises(DeployError, match=r"sidecar p\.onnx\.json is missing"):
        load_policy(bad)
    sidecar_path(bad).write_text(sidecar_path(wheelchair.onnx).read_text())
    with pytest.raises(DeployError, match="SHA-256 does not match"):
        load_policy(bad)
    sidecar_path(bad).write_text('{"format": "something else"}')
    with pytest.raises(DeployError, match="not a saferl policy sidecar"):
        load_policy(bad)


def test_float32_export_is_within_1e_5_of_saferl(wheelchair, tmp_path):
    from saferl.deploy import export_run

    path, _ = export_run(
        wheelchair.run_dir, "onnx", tmp_path / "f32.onnx", checkpoint="last", precision="float32"
    )
    rt = load_policy(path)
    ref = load_policy(wheelchair.onnx)
    assert rt.spec["policy"]["precision"] == "float32"
    rng = np.random.default_rng(1)
    obs = rng.standard_normal((2000, rt.obs_dim)).astype(np.float32)
    a32, e32 = rt.run(obs)
    a64, e64 = ref.run(obs)
    assert float(np.abs(a32 - a64).max()) <= 1e-5
    np.testing.assert_array_equal(e32, e64)


def test_policy_from_run_is_the_exported_function(wheelchair):
    rt = policy_from_run(wheelchair.run_dir, checkpoint="last")
    ref = load_policy(wheelchair.torchscript)
    assert rt.backend == "torch" and rt.spec["artefact"] is None
    rng = np.random.default_rng(2)
    obs = rng.standard_normal((64, rt.obs_dim)).astype(np.float32)
    ema = rng.standard_normal((64, rt.state_dim)).astype(np.float32)
    start = rng.random(64) < 0.5
    a, e = rt.run(obs, ema, start)
    b, f = ref.run(obs, ema, start)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(e, f)


def test_episodes_driven_by_the_export_equal_saferl_evaluate(trained):
    """Same seeds, same episodes: return, cost and length of every episode are identical when
    the exported file drives the raw env and keeps its own averages."""
    run = load_run_model(trained.run_dir, checkpoint="last")
    table_run, _ = evaluate_model(run, ["standard"], episodes=2)
    for path in (trained.onnx, trained.torchscript):
        exported = load_exported_model(path)
        assert exported.describe()["kind"] == "exported"
        table, _ = evaluate_model(exported, ["standard"], episodes=2)
        for col in ("seed", "return", "cost", "length"):
            np.testing.assert_array_equal(table[col], table_run[col], err_msg=col)


def test_exported_model_refuses_sampled_actions(exo):
    from saferl.training.evaluation import EvaluationError

    model = load_exported_model(exo.onnx)
    with pytest.raises(EvaluationError, match="deterministic"):
        evaluate_model(model, ["stochastic"], episodes=1)


def test_compare_takes_an_exported_file_beside_its_run(exo, tmp_path):
    """``saferl compare RUN FILE.onnx``: the run and its export are two models on the same
    episodes; the deterministic export equals the run's mean action on each of them."""
    import json

    from saferl.training.evaluation import run_compare

    out = tmp_path / "ab"
    run_compare([str(exo.run_dir), str(exo.onnx)], out=str(out), protocols=["standard"], episodes=2)
    result = json.loads((out / "comparison.json").read_text())
    summaries = result["groups"][0]["summaries"]
    assert len(summaries) == 2
    (a, b) = summaries.values()
    assert a["return"]["estimate"] == b["return"]["estimate"]
    assert a["cost"]["estimate"] == b["cost"]["estimate"]
