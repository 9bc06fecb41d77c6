"""The trainer hands the env's constraints to the algorithm as declared."""

from __future__ import annotations

import numpy as np
import pytest
from _standins import ToyVecEnv

from saferl.config import Config, load_config
from saferl.registry import ENVS
from saferl.safety import Constraint, ConstraintSet
from saferl.training.trainer import Trainer

LIMITED = ConstraintSet(
    [
        Constraint("far", "beyond 0.6", limit=4.0, strict_limit=1.0),
        Constraint("fast", "moving fast"),  # no own limit: follows the combined one
    ],
    limit=5.0,
    strict_limit=2.0,
)


class TwoConstraintToy(ToyVecEnv):
    def __init__(self, num_envs=1, **kwargs):
        super().__init__(num_envs, **kwargs)
        self.constraints = LIMITED

    def _step_batch(self, actions):
        reward, terminated, components, extra = super()._step_batch(actions)
        components = {"far": components["far"], "fast": np.zeros_like(components["far"])}
        return reward, terminated, components, extra


@pytest.mark.parametrize(("strict", "expected"), [(False, [4.0, None]), (True, [1.0, None])])
def test_per_constraint_ppo_lagrangian_gets_each_declared_limit(tmp_path, strict, expected):
    ENVS.register("TwoConstraintToy-v0", lambda num_envs=1, **kw: TwoConstraintToy(num_envs, **kw),
                  overwrite=True)  # fmt: skip
    cfg = load_config(
        base=Config(),
        overrides=[
            "env.id=TwoConstraintToy-v0", "env.num_envs=2", f"env.strict={str(strict).lower()}",
            "algo.name=ppo_lagrangian", "algo.per_constraint=true", "algo.hidden_sizes=[8]",
            "train.total_steps=64", "train.steps_per_epoch=64", f"train.runs_dir={tmp_path}",
            "train.name=wired", "train.progress=false",
        ],
    )  # fmt: skip
    trainer = Trainer(cfg, command=["test"])
    assert trainer.algo.constraint_names == ("far", "fast")
    assert trainer.algo._own_limits == expected
    assert trainer.cost_limit == (2.0 if strict else 5.0)
