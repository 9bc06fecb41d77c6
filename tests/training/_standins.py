"""Small stand-ins obeying the env/algorithm contracts, for fast trainer tests.

``ToyVecEnv`` is a real :class:`saferl.envs.vector.SafeVectorEnv` (same-step autoreset, cost,
``state_dict``); ``ToyAlgo`` is a tiny policy-gradient learner with its own ``torch.Generator``,
a critic optimiser and a rollout collector with ``state_dict``. ``register()`` adds them to the
registries as ``Toy-v0`` and ``toy`` so that the trainer builds them like the real ones.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch
from gymnasium.spaces import Box
from torch import nn

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
    env has taken that many batched steps (to test env-exception handling).
    """

    def __init__(self, num_envs=1, *, instance_offset=0, render_mode=None, fail_at_step=None):
        super().__init__(
            num_envs,
            observation_space=Box(-np.inf, np.inf, (2,), np.float32),
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
        comps = {"far": (np.abs(self.x) > 0.6).astype(np.float32)}
        return reward, terminated, comps, {}

    def _observe(self, idx=None):
        if idx is None:
            return np.stack([self.x, self.goal], axis=1)
        return np.stack([self.x[idx], self.goal[idx]], axis=1)

    def _get_state(self):
        return {"x": self.x, "goal": self.goal, "steps_taken": self.steps_taken}

    def _set_state(self, state):
        self.x[:] = state["x"]
        self.goal[:] = state["goal"]
        self.steps_taken = int(state["steps_taken"])


def make_toy_vec(num_envs: int = 1, **options: Any) -> ToyVecEnv:
    return ToyVecEnv(num_envs, **options)


class ToyCollector:
    """Steps the env with the algorithm's policy; keeps the current observation between epochs."""

    def __init__(self, env: ToyVecEnv, algo: ToyAlgo, seed: int) -> None:
        self.env, self.algo, self.seed = env, algo, seed
        self.obs: np.ndarray | None = None

    def collect(self, steps: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        env = self.env
        if self.obs is None:
            self.obs, _ = env.reset(seed=self.seed)
        n = env.num_envs
        t_steps = max(1, steps // n)
        obs_l, act_l, rew_l, cost_l = [], [], [], []
        returns, costs, lengths = [], [], []
        for _ in range(t_steps):
            action = self.algo.act(self.obs)[0]
            obs_l.append(self.obs)
            act_l.append(action)
            self.obs, reward, _term, _trunc, info = env.step(action)
            rew_l.append(reward)
            cost_l.append(info["cost"])
            if "final_info" in info:
                fi, mask = info["final_info"], info["_final_info"]
                returns.extend(fi["episode_return"][mask].tolist())
                costs.extend(fi["episode_cost"][mask].tolist())
                lengths.extend(fi["episode_length"][mask].tolist())
        batch = {
            "obs": torch.as_tensor(np.concatenate(obs_l)),
            "act": torch.as_tensor(np.concatenate(act_l)),
            "rew": torch.as_tensor(np.concatenate(rew_l)),
            "cost": torch.as_tensor(np.concatenate(cost_l)),
        }
        stats = {
            "steps": t_steps * n,
            "episodes": len(returns),
            "ep_return": float(np.mean(returns)) if returns else math.nan,
            "ep_cost": float(np.mean(costs)) if costs else math.nan,
            "ep_len": float(np.mean(lengths)) if lengths else math.nan,
        }
        return batch, stats

    def state_dict(self) -> dict[str, Any]:
        return {"obs": None if self.obs is None else self.obs.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.obs = None if state["obs"] is None else np.array(state["obs"], np.float32)


class ToyAlgo:
    """A linear Gaussian policy moved by a REINFORCE-like step of size ``target_kl``; a linear
    critic for reward and cost trained by Adam (``critic_optimizer``) on shuffled minibatches.

    ``nan_updates`` (set of update indices, or the env variable ``SAFERL_TOY_NAN_AT`` as a comma
    list) makes those updates produce NaN parameters, to test the trainer's rollback.
    """

    def __init__(self, observation_space, action_space, config, *, cost_limit, seed):
        obs_dim = observation_space.shape[-1]
        act_dim = action_space.shape[-1]
        self.config = config
        self.cost_limit = float(cost_limit)
        self.target_kl = float(config.target_kl)
        self.gen = torch.Generator().manual_seed(int(seed))
        self.actor = nn.Linear(obs_dim, act_dim)
        self.critic = nn.Linear(obs_dim, 2)
        for p in [*self.actor.parameters(), *self.critic.parameters()]:
            nn.init.normal_(p, std=0.1, generator=self.gen)
        self.log_std = torch.full((act_dim,), float(config.init_log_std))
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr)
        self.updates = 0
        env_nan = os.environ.get("SAFERL_TOY_NAN_AT", "")
        self.nan_updates = {int(v) for v in env_nan.split(",") if v.strip()}

    def act(self, obs: np.ndarray):
        with torch.no_grad():
            o = torch.as_tensor(obs, dtype=torch.float32)
            mean = self.actor(o)
            noise = torch.randn(mean.shape, generator=self.gen)
            action = mean + self.log_std.exp() * noise
            v = self.critic(o)
        return action.numpy(), None, v[:, 0].numpy(), v[:, 1].numpy()

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        obs, act = batch["obs"], batch["act"]
        targets = torch.stack([batch["rew"], batch["cost"]], dim=1)
        losses = []
        n = obs.shape[0]
        mb = max(1, min(self.config.critic_minibatch, n))
        for _ in range(self.config.critic_epochs):
            perm = torch.randperm(n, generator=self.gen)
            for i in range(0, n, mb):
                idx = perm[i : i + mb]
                loss = ((self.critic(obs[idx]) - targets[idx]) ** 2).mean()
                self.critic_optimizer.zero_grad()
                loss.backward()
                self.critic_optimizer.step()
                losses.append(float(loss))
        adv = batch["rew"] - batch["rew"].mean()
        mean = self.actor(obs)
        logp = -((act - mean) ** 2).sum(-1) / (2 * self.log_std.exp() ** 2).sum()
        surrogate = (logp * adv).mean()
        grads = torch.autograd.grad(surrogate, list(self.actor.parameters()))
        with torch.no_grad():
            for p, g in zip(self.actor.parameters(), grads, strict=True):
                p.add_(self.target_kl * g)
        if self.updates in self.nan_updates:
            with torch.no_grad():
                self.actor.weight.fill_(float("nan"))
        self.updates += 1
        case = 3 if float(batch["cost"].mean()) * 16 <= self.cost_limit else 1
        return {"loss_v": float(np.mean(losses)), "kl": self.target_kl * 0.5, "case": case}

    def make_collector(self, env, *, seed: int) -> ToyCollector:
        return ToyCollector(env, self, seed)

    def state_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "log_std": self.log_std.clone(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "gen": self.gen.get_state(),
            "target_kl": self.target_kl,
            "cost_limit": self.cost_limit,
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.log_std = state["log_std"].clone()
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.gen.set_state(state["gen"])
        self.target_kl = float(state["target_kl"])
        self.cost_limit = float(state["cost_limit"])
        self.updates = int(state["updates"])


def register() -> None:
    """Register the stand-ins as ``Toy-v0`` and ``toy`` (idempotent)."""
    ENVS.register("Toy-v0", make_toy_vec, overwrite=True, source="user")
    ALGORITHMS.register("toy", ToyAlgo, overwrite=True, source="user")
