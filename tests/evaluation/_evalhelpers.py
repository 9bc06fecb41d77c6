"""Helpers shared by the evaluation tests (a module name no other test directory uses)."""

from __future__ import annotations

from pathlib import Path

from saferl.registry import ENVS

TOY_ID = "EvalToy-v0"


def write_fake_run(
    run_dir: Path,
    *,
    seed: int = 0,
    best: bool = True,
    env_id: str = TOY_ID,
    overrides: tuple[str, ...] = (),
) -> Path:
    """A run directory as the trainer writes it: config.yaml, manifest, checkpoints with a
    Gaussian actor and an observation normaliser fitted to the toy env's observations
    (``overrides``: more config fields, e.g. the run's constraint groups)."""
    import numpy as np
    import torch

    from saferl.algos.networks import GaussianActor, ObsNormalizer
    from saferl.config import Config, load_config
    from saferl.training.checkpoint import CheckpointManager, RunManifest

    cfg = load_config(
        base=Config(),
        overrides=[
            f"env.id={env_id}",
            "eval.episodes=20",
            "eval.num_envs=8",
            "eval.bootstrap_samples=200",
            "algo.hidden_sizes=[8, 8]",
            *overrides,
        ],
    )
    from saferl.config import dump_config

    run_dir.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, run_dir / "config.yaml")
    torch.manual_seed(seed)
    env = ENVS.get(env_id)(num_envs=64)
    obs, _ = env.reset(seed=123)
    obs_dim, act_dim = obs.shape[1], env.single_action_space.shape[0]
    actor = GaussianActor(obs_dim, act_dim, [8, 8], "tanh", -0.5, output_gain=1.0)
    norm = ObsNormalizer(obs_dim)
    norm.update(torch.as_tensor(np.asarray(obs)))
    state = {
        "meta": {"env": env_id, "algo": "cpo", "num_envs": 64},
        "counters": {"epoch": 3, "env_steps": 3000},
        "cost_limit": 3.0,
        "algo": {"actor": actor.state_dict(), "obs_norm": norm.state_dict()},
    }
    manager = CheckpointManager(run_dir / "checkpoints", RunManifest(run_dir / "manifest.json"))
    manager.save(state, epoch=3, env_steps=3000)
    if best:
        manager.save_best(state, epoch=3, env_steps=3000)
    return run_dir
