"""A minimal training loop: collect a batch, update, repeat (no files, no trackers).

The trainer (``saferl.training``) wraps the same two calls with checkpoints, callbacks and
tracking; this function is the readable core and what tests and benchmarks use::

    env = saferl.envs.wheelchair.make_vec(64)
    algo = CPO.from_env(env, AlgoConfig(), seed=0)
    history = learn(env, algo, total_steps=200_000, steps_per_epoch=20_000)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from saferl.algos.buffer import RolloutCollector

__all__ = ["learn"]


def learn(
    env: Any,
    algo: Any,
    total_steps: int,
    steps_per_epoch: int,
    callback: Callable[[dict[str, Any]], bool | None] | None = None,
    *,
    seed: int | None = None,
    collector: RolloutCollector | None = None,
) -> list[dict[str, Any]]:
    """Train ``algo`` on the batched ``env`` for ``total_steps`` environment steps.

    Args:
        env: natively batched VectorEnv (same-step autoreset, ``info["cost"]``).
        algo: an algorithm with ``act``/``value``/``update`` (CPO, PPOLagrangian).
        total_steps: environment steps over all instances (rounded up to whole epochs).
        steps_per_epoch: steps per update over all instances; ``steps_per_epoch // N`` per
            instance (at least 1).
        callback: called with each epoch's row; returning ``False`` stops training.
        seed: seed of the first ``env.reset`` (default: the algorithm's seed).
        collector: continue with an existing collector (e.g. one restored from a checkpoint).

    Returns:
        One dict per epoch: ``epoch``, ``env_steps``, ``ep_return``, ``ep_cost``, ``ep_len``
        (NaN if no episode finished), ``cost_limit``, timings, ``steps_per_s`` and the
        algorithm's diagnostics.
    """
    if collector is None:
        collector = RolloutCollector(
            env,
            algo,
            max(1, steps_per_epoch // env.num_envs),
            seed=getattr(algo, "seed", 0) if seed is None else seed,
        )
    history: list[dict[str, Any]] = []
    epoch = 0
    start = time.perf_counter()
    while collector.total_steps < total_steps:
        t0 = time.perf_counter()
        batch = collector.collect()
        t1 = time.perf_counter()
        diag = algo.update(batch)
        t2 = time.perf_counter()
        epoch += 1
        row = {
            "epoch": epoch,
            "env_steps": collector.total_steps,
            **diag,
            "time_collect": t1 - t0,
            "time_update": t2 - t1,
            "steps_per_s": batch.num_steps / (t2 - t0),
            "wall_time": t2 - start,
        }
        history.append(row)
        if callback is not None and callback(row) is False:
            break
    return history
