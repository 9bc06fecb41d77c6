"""A trained policy as an MLflow pyfunc model (imported only when MLflow logs one).

The model's artifact ``run`` is a minimal run directory (``config.yaml`` and the checkpoint);
loading it goes through saferl's own loader
(:func:`saferl.training.evaluation.load_run_model`), so ``predict`` returns exactly the mean
actions that ``saferl.load_model(run_dir).policy.act(obs, env, deterministic=True, rng=...)``
gives: float32 array (batch, action dims), unclipped (the env clips to its action box).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np

__all__ = ["SaferlPolicyModel", "example_batch"]


class SaferlPolicyModel(mlflow.pyfunc.PythonModel):
    """``predict(observations)``: observations float32 (batch, obs dims) -> mean actions
    float32 (batch, action dims).

    Args:
        checkpoint: the checkpoint file's name inside the ``run`` artifact's ``checkpoints/``.
    """

    def __init__(self, checkpoint: str = "best.pt") -> None:
        self.checkpoint = checkpoint
        self._policy: Any = None

    def load_context(self, context: Any) -> None:
        from saferl.training.evaluation import load_run_model

        run = Path(context.artifacts["run"])
        self._policy = load_run_model(run, checkpoint=self.checkpoint).policy

    def predict(self, context: Any, model_input: Any, params: Any = None) -> np.ndarray:
        obs = np.asarray(model_input, dtype=np.float32)
        if obs.ndim == 1:
            obs = obs[None, :]
        return self._policy.act(obs, None, deterministic=True, rng=None)


def example_batch(run_dir: str | Path, checkpoint: str) -> tuple[np.ndarray, np.ndarray]:
    """Two first observations of the run's env (seeds 0 and 1) and the policy's mean actions:
    the model's input example and what its signature is inferred from."""
    from saferl.training.evaluation import load_run_model

    model = load_run_model(run_dir, checkpoint=checkpoint)
    env = model.env_factory(num_envs=2, **model.env_options)
    try:
        obs, _ = env.reset(seed=0)
    finally:
        close = getattr(env, "close", None)
        if callable(close):
            close()
    obs = np.asarray(obs, dtype=np.float32)
    return obs, model.policy.act(obs, None, deterministic=True, rng=None)
