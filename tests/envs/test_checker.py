"""check_safe_env catches each kind of broken environment with an actionable message."""

import numpy as np
import pytest
from _toy import ToyEnv, ToyVecEnv

from saferl.envs import SafeEnvCheckError, check_safe_env


class NegativeCost(ToyVecEnv):
    def _step_batch(self, actions):
        r, t, comps, info = super()._step_batch(actions)
        comps["far"] = comps["far"] - 2.0
        return r, t, comps, info


class InconsistentCost(ToyVecEnv):
    def step(self, actions):
        obs, r, te, tr, info = super().step(actions)
        info["cost"] = info["cost"] * 0 + 0.5
        return obs, r, te, tr, info


class Unseeded(ToyVecEnv):
    _global = np.random.default_rng()

    def _reset_instances(self, idx):
        super()._reset_instances(idx)
        self.x[idx] = self._global.uniform(-0.5, 0.5, len(idx))


class ForgetfulState(ToyVecEnv):
    def _get_state(self):
        return {"x": self.x}  # forgets the goal

    def _set_state(self, state):
        self.x[:] = state["x"]


class MissingCost(ToyVecEnv):
    def step(self, actions):
        obs, r, te, tr, info = super().step(actions)
        del info["cost"]
        return obs, r, te, tr, info


def test_a_correct_batched_env_passes():
    check_safe_env(ToyVecEnv(4))


@pytest.mark.parametrize(
    "cls,message",
    [
        (NegativeCost, "must be finite and >= 0"),
        (InconsistentCost, "is not the max of the components"),
        (Unseeded, "not deterministic"),
        (ForgetfulState, "state_dict round trip"),
        (MissingCost, "no 'cost' key"),
    ],
)
def test_broken_envs_are_rejected_with_a_clear_message(cls, message):
    with pytest.raises(SafeEnvCheckError, match=message):
        check_safe_env(cls(4), steps=40)


def test_single_env_runs_gymnasium_check_env_and_reports_its_warnings():
    # the toy's unbounded observation space makes gymnasium warn: surfaced as a failure
    with pytest.raises(SafeEnvCheckError, match="gymnasium check_env warned"):
        check_safe_env(ToyEnv())
