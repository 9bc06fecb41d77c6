"""Small stand-ins obeying the env/algorithm contracts, for fast trainer tests.

``ToyVecEnv`` is a real :class:`saferl.envs.vector.SafeVectorEnv` (same-step autoreset, cost,
``state_dict``); ``ToyAlgo`` is a tiny policy-gradient learner with its own ``torch.Generator``,
a critic optimiser and a rollout collector with ``state_dict``. ``register()`` adds them to the
registries as ``Toy-v0`` and ``toy`` so that the trainer builds them like the real ones.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from gymnasium.spaces import Box
from pydantic import Field
from torch import nn

from saferl.config import AlgoConfig, Config, load_config
from saferl.envs.vector import SafeVectorEnv
from saferl.registry import ALGORITHMS, ENVS
from saferl.safety import Constraint, ConstraintSet

TOY_CONSTRAINTS = ConstraintSet(
    [Constraint("far", "position beyond 0.6", threshold="|x| > 0.6")],
    limit=3.0,
    episode_length=16,
)


class ToyVecEnv(SafeVectorEnv):
    """x' = x + 0.3 a + 0.05 noise; reward -|x - goal|; cost 1 when |x| > 0.6; 16-step episodes.

    ``fail_at_step`` (or the env variable ``SAFERL_TOY_FAIL_AT``) raises a RuntimeError once the
    env has taken that many batched steps (to test env-exception handling); ``extra_obs`` appends
    that many zero columns to the observation (a different shape for transfer tests).
    ``levels=True`` draws an impairment level per episode (``info["impairment"]``, not in the
    observation; ``INFO_LEVELS``) that narrows the safe band: cost 1 when
    ``|x| > 0.6 - 0.1 * level``.
    """

    def __init__(
        self,
        num_envs=1,
        *,
        instance_offset=0,
        render_mode=None,
        fail_at_step=None,
        extra_obs=0,
        levels=False,
    ):
        self.extra_obs = int(extra_obs)
        self.levels = bool(levels)
        if self.levels:
            self.INFO_LEVELS = {"impairment": ("none", "mild", "moderate", "severe")}
        self.level = np.zeros(num_envs, np.int8)
        super().__init__(
            num_envs,
            observation_space=Box(-np.inf, np.inf, (2 + self.extra_obs,), np.float32),
            action_space=Box(-1.0, 1.0, (1,), np.float32),
            constraints=TOY_CONSTRAINTS,
            max_episode_steps=16,
            instance_offset=instance_offset,
            render_mode=render_mode,
        )
        self.x = np.zeros(num_envs, np.float32)
        self.goal = np.zeros(num_envs, np.float32)
        env_fail = os.environ.get("SAFERL_TOY_FAIL_AT")
        self.fail_at_step = (
            fail_at_step if fail_at_step is not None else (int(env_fail) if env_fail else None)
        )
        self.steps_taken = 0

    def _reset_instances(self, idx):
        u = self.rng.uniform(2, idx)
        self.x[idx] = u[:, 0] - 0.5
        self.goal[idx] = 1.6 * u[:, 1] - 0.8
        if self.levels:
            self.level[idx] = np.minimum(self.rng.uniform(1, idx)[:, 0] * 4, 3).astype(np.int8)

    def _step_batch(self, actions):
        self.steps_taken += 1
        if self.fail_at_step is not None and self.steps_taken >= self.fail_at_step:
            raise RuntimeError("simulated physics blow-up")
        a = actions[:, 0]
        noise = self.rng.normal(1)[:, 0]
        self.x += 0.3 * a + 0.05 * noise
        self.x = np.clip(self.x, -2, 2)
        reward = -np.abs(self.x - self.goal)
        terminated = np.zeros(self.num_envs, bool)
        band = np.float32(0.6) - np.float32(0.1) * self.level if self.levels else 0.6
        comps = {"far": (np.abs(self.x) > band).astype(np.float32)}
        info = {"impairment": self.level.copy()} if self.levels else {}
        return reward, terminated, comps, info

    def _observe(self, idx=None):
        x, goal = (self.x, self.goal) if idx is None else (self.x[idx], self.goal[idx])
        cols = [x, goal] + [np.zeros_like(x)] * self.extra_obs
        return np.stack(cols, axis=1)

    def _get_state(self):
        return {
            "x": self.x,
            "goal": self.goal,
            "steps_taken": self.steps_taken,
            "level": self.level,
        }

    def _set_state(self, state):
        self.x[:] = state["x"]
        self.goal[:] = state["goal"]
        self.steps_taken = int(state["steps_taken"])
        self.level[:] = state.get("level", 0)


def make_toy_vec(num_envs: int = 1, **options: Any) -> ToyVecEnv:
    return ToyVecEnv(num_envs, **options)


class ToyConfig(AlgoConfig):
    """The toy's own config model (a plugin's: the shared fields plus its step size)."""

    name: Literal["toy"] = "toy"
    target_kl: float = Field(0.01, gt=0, le=1)
    """Step size of the REINFORCE-like actor step."""


class ToyAlgo:
    """A linear Gaussian policy moved by a REINFORCE-like step of size ``target_kl``; a linear
    critic for reward and cost trained by Adam (``critic_optim``) on shuffled minibatches drawn
    from the algorithm's own generator. Obeys the algorithm contract of ``saferl.algos`` (``act``,
    ``value``, ``update(RolloutBatch)``, ``state_dict``), so the real ``RolloutCollector`` runs it.

    ``SAFERL_TOY_NAN_AT`` (comma list of 0-based ``update()`` call indices) makes those updates produce NaN
    parameters; ``SAFERL_TOY_SLEEP`` (seconds) slows each update so subprocess tests can kill
    the run mid-way.
    """

    config_model = ToyConfig

    def __init__(self, observation_space, action_space, config, *, cost_limit, seed, **_):
        obs_dim = observation_space.shape[-1]
        act_dim = action_space.shape[-1]
        self.config = config.model_copy(deep=True)
        self.cost_limit = float(cost_limit)
        self.gen = torch.Generator().manual_seed(int(seed))
        self.actor = nn.Linear(obs_dim, act_dim)
        self.critic = nn.Linear(obs_dim, 2)
        for p in [*self.actor.parameters(), *self.critic.parameters()]:
            nn.init.normal_(p, std=0.1, generator=self.gen)
        self.log_std = torch.as_tensor(config.init_log_std, dtype=torch.float32).expand(act_dim)
        self.critic_optim = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr)
        self.updates = 0
        self.calls = 0  # update() calls, not part of the state: a rollback does not rewind it
        env_nan = os.environ.get("SAFERL_TOY_NAN_AT", "")
        self.nan_updates = {int(v) for v in env_nan.split(",") if v.strip()}
        self.sleep = float(os.environ.get("SAFERL_TOY_SLEEP", "0") or 0)

    @torch.no_grad()
    def act(self, obs):
        o = torch.as_tensor(obs, dtype=torch.float32)
        mean = self.actor(o)
        noise = torch.randn(mean.shape, generator=self.gen)
        action = mean + self.log_std.exp() * noise
        logp = -(noise**2).sum(-1) / 2
        v = self.critic(o)
        return action, logp, v[:, 0], v[:, 1]

    @torch.no_grad()
    def value(self, obs):
        v = self.critic(torch.as_tensor(obs, dtype=torch.float32))
        return v[:, 0], v[:, 1]

    def update(self, batch) -> dict[str, float]:
        if self.sleep:
            time.sleep(self.sleep)
        d = batch.obs.shape[-1]
        obs = batch.obs.reshape(-1, d)
        act = batch.actions.reshape(obs.shape[0], -1)
        rew, cost = batch.rewards.reshape(-1), batch.costs.reshape(-1)
        targets = torch.stack([rew, cost], dim=1)
        losses = []
        n = obs.shape[0]
        mb = max(1, min(self.config.critic_minibatch, n))
        for _ in range(self.config.critic_epochs):
            perm = torch.randperm(n, generator=self.gen)
            for i in range(0, n, mb):
                idx = perm[i : i + mb]
                loss = ((self.critic(obs[idx]) - targets[idx]) ** 2).mean()
                self.critic_optim.zero_grad()
                loss.backward()
                self.critic_optim.step()
                losses.append(float(loss.detach()))
        adv = rew - rew.mean()
        mean = self.actor(obs)
        logp = -((act - mean) ** 2).sum(-1) / (2 * self.log_std.exp() ** 2).sum()
        surrogate = (logp * adv).mean()
        grads = torch.autograd.grad(surrogate, list(self.actor.parameters()))
        target_kl = float(self.config.target_kl)
        with torch.no_grad():
            for p, g in zip(self.actor.parameters(), grads, strict=True):
                p.add_(target_kl * g)
        if self.calls in self.nan_updates:
            with torch.no_grad():
                self.actor.weight.fill_(float("nan"))
        self.calls += 1
        self.updates += 1
        case = 3 if float(cost.mean()) * 16 <= self.cost_limit else 1
        return {"loss_v": float(np.mean(losses)), "kl": target_kl * 0.5, "case": case}

    # the rest of saferl.algos.base.Algorithm
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"critic": self.critic_optim}

    def hyperparameters(self) -> dict[str, float]:
        return {"cost_limit": self.cost_limit, "target_kl": float(self.config.target_kl)}

    def set_hyperparameter(self, name: str, value: float) -> None:
        if name == "cost_limit":
            self.cost_limit = float(value)
        elif name == "target_kl":
            self.config.target_kl = float(value)
        else:
            raise KeyError(name)

    def shrink_step(self, factor: float) -> list[str]:
        self.config.target_kl *= factor
        for group in self.critic_optim.param_groups:
            group["lr"] *= factor
        return [f"target_kl x{factor}", f"critic lr x{factor}"]

    def state_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "log_std": self.log_std.clone(),
            "critic_optim": self.critic_optim.state_dict(),
            "generator": self.gen.get_state(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.log_std = state["log_std"].clone()
        self.critic_optim.load_state_dict(state["critic_optim"])
        self.gen.set_state(state["generator"])
        self.updates = int(state["updates"])


def register() -> None:
    """Register the stand-ins as ``Toy-v0`` and ``toy`` (idempotent)."""
    ENVS.register("Toy-v0", make_toy_vec, overwrite=True, source="user")
    ALGORITHMS.register("toy", ToyAlgo, overwrite=True, source="user")


HERE = Path(__file__).parent


def toy_overrides(**extra: object) -> list[str]:
    """``--set`` strings for a tiny, fast run of the stand-ins (64 steps per epoch)."""
    base = {
        "env.id": "Toy-v0",
        "algo.name": "toy",
        "env.num_envs": 4,
        "train.total_steps": 640,
        "train.steps_per_epoch": 64,
        "train.checkpoint_every": 3,
        "train.plot_every": 1000,
        "train.progress": False,
        "algo.critic_minibatch": 32,
        "algo.critic_epochs": 2,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def toy_config(runs_dir: Path, name: str = "run", **extra: object) -> Config:
    return load_config(
        base=Config(),
        overrides=[*toy_overrides(**extra), f"train.runs_dir={runs_dir}", f"train.name={name}"],
    )
