"""Policy adapters: everything evaluation can run, behind one small protocol.

An :class:`EvalPolicy` acts on a batch of observations of a natively batched env::

    policy.reset(env)                                        # once, after env.reset(seed=...)
    actions = policy.act(obs, env, deterministic=True, rng=rng)   # float32 (N, act_dim)

``rng`` is an :class:`~saferl.envs.vector.InstanceRNG` with one stream per *episode* (seeded from
the episode's seed, independent of the env's own streams), so sampled actions do not depend on
the batch size or on which instance an episode runs in. Policies must draw the same number of
words for every instance at every step.

Adapters:

* :class:`ActorPolicy`: a trained Gaussian actor (:class:`saferl.algos.networks.GaussianActor`)
  with its frozen observation normaliser; the mean action when ``deterministic``, otherwise
  ``mean + exp(log_std) * z`` with ``z`` from ``rng``. Runs under :func:`torch.inference_mode`
  and never calls the normaliser's ``update``.
* :class:`ScriptedAdapter`: an env's scripted baseline (:class:`saferl.envs.vector.ScriptedPolicy`),
  a first-class model (``baselines:<name>``). Scripted baselines are deterministic functions of
  the env state; ``deterministic`` and ``rng`` are ignored.
* :class:`FunctionPolicy`: any ``fn(obs) -> actions`` (tests, user code).

A policy may also define ``rollout_context()``, a context manager entered around each batch of
episodes (:class:`ActorPolicy` uses it to run torch single-threaded).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np

from saferl.envs.vector import InstanceRNG

__all__ = [
    "ActorPolicy",
    "EvalPolicy",
    "FunctionPolicy",
    "ScriptedAdapter",
]


@runtime_checkable
class EvalPolicy(Protocol):
    """What evaluation runs (see the module docstring)."""

    name: str

    def reset(self, env: Any) -> None: ...

    def act(
        self, obs: np.ndarray, env: Any, *, deterministic: bool, rng: InstanceRNG
    ) -> np.ndarray: ...


class FunctionPolicy:
    """Wrap ``fn(obs (N, obs_dim) float32) -> actions (N, act_dim)``; deterministic.

    Args:
        fn: the action function.
        name: display name.
        obs_scale: optional per-dimension observation scale used by observation noise.
    """

    def __init__(
        self,
        fn: Callable[[np.ndarray], np.ndarray],
        name: str = "function",
        obs_scale: np.ndarray | None = None,
    ) -> None:
        self.fn = fn
        self.name = name
        self.obs_scale = obs_scale

    def reset(self, env: Any) -> None:
        pass

    def act(
        self, obs: np.ndarray, env: Any, *, deterministic: bool, rng: InstanceRNG
    ) -> np.ndarray:
        return np.asarray(self.fn(obs), np.float32)


class ScriptedAdapter:
    """A :class:`~saferl.envs.vector.ScriptedPolicy` as an :class:`EvalPolicy`.

    Args:
        factory: zero-argument factory from the env class's ``SCRIPTED_POLICIES``; a fresh
            policy is made for every batch of episodes, so no state leaks between batches.
        name: display name (``baselines:<name>``).
    """

    obs_scale = None

    def __init__(self, factory: Callable[[], Any], name: str) -> None:
        self.factory = factory
        self.name = name
        self._policy: Any = None

    def reset(self, env: Any) -> None:
        self._policy = self.factory()
        self._policy.reset(env)

    def act(
        self, obs: np.ndarray, env: Any, *, deterministic: bool, rng: InstanceRNG
    ) -> np.ndarray:
        if self._policy is None:
            raise RuntimeError("ScriptedAdapter.act called before reset(env)")
        return np.asarray(self._policy.act(obs, env), np.float32)


class ActorPolicy:
    """A trained Gaussian actor with its (frozen) observation normaliser.

    Args:
        actor: module with ``forward(obs) -> (mean (B, A), log_std (A,))`` (a ``GaussianActor``).
        normalizer: module with ``normalize(obs) -> obs`` (an ``ObsNormalizer``) or ``None``.
        name: display name.

    Both modules are copied at construction (the caller's are never modified, and later changes
    to them are not seen); the copies are in eval mode. Observations are
    normalised in float32 exactly as in training; the actor then runs on a float64 copy of its
    weights and the mean is rounded to float32. Why: float32 BLAS kernels round differently for
    different batch sizes (a 1-row product and a 32-row product differ in the last bit), which
    would make an episode's result depend on how many episodes run beside it; in float64 those
    differences vanish when rounding to float32. The observation scale used by observation noise
    is the normaliser's standard deviation (1 without a normaliser).
    """

    def __init__(self, actor: Any, normalizer: Any | None = None, name: str = "policy") -> None:
        import copy

        import torch

        self._torch = torch
        # Snapshots: the caller's modules are neither modified (not even switched to eval mode)
        # nor followed if they change later.
        self.actor = actor
        self._actor64 = copy.deepcopy(actor).double().eval()
        for p in self._actor64.parameters():
            p.requires_grad_(False)
        self.normalizer = copy.deepcopy(normalizer).eval() if normalizer is not None else None
        self.name = name
        self.obs_scale: np.ndarray | None = None
        if normalizer is not None and getattr(normalizer, "enabled", True):
            var = getattr(normalizer, "var", None)
            if var is not None:
                self.obs_scale = np.sqrt(var.detach().cpu().double().numpy()).astype(np.float32)
        self._param = next(self._actor64.parameters())

    @classmethod
    def from_algorithm(cls, algo: Any, name: str = "policy") -> ActorPolicy:
        """Snapshot of an algorithm's current policy (``algo.actor`` and ``algo.obs_norm``, as
        in :class:`saferl.algos.common.ActorCritic`); training can continue independently."""
        norm = getattr(algo, "obs_norm", None)
        if norm is not None and not getattr(norm, "enabled", True):
            norm = None
        return cls(algo.actor, norm, name=name)

    def reset(self, env: Any) -> None:
        pass

    @contextlib.contextmanager
    def rollout_context(self) -> Iterator[None]:
        """One torch intra-op thread while episodes run (restored afterwards).

        A 64x64 MLP on a few hundred rows gains nothing from intra-op threads, and when the env
        (numpy) and other processes compete for the cores, OpenMP's spinning threads made the
        forward pass 3-8x slower (measured: 1000 wheelchair episodes took 6.9 s with one thread
        and 21-53 s with two on a loaded 2-core machine).
        """
        torch = self._torch
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def act(
        self, obs: np.ndarray, env: Any, *, deterministic: bool, rng: InstanceRNG
    ) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            o = torch.as_tensor(np.asarray(obs, np.float32), device=self._param.device)
            if self.normalizer is not None:
                o = self.normalizer.normalize(o)
            mean, log_std = self._actor64(o.to(self._param.dtype))
            mean = mean.float().cpu().numpy()
            if deterministic:
                return mean
            std = np.exp(log_std.float().cpu().numpy())
        z = rng.normal(mean.shape[1])
        return (mean + std[None, :] * z).astype(np.float32)
