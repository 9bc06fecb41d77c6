"""saferl.algos: CPO and PPO-Lagrangian, their networks, rollout storage and trust-region math.

Learning only: nothing here knows about files, trackers or the CLI. Typical use without the
trainer::

    from saferl.algos import CPO, learn
    from saferl.envs.wheelchair import make_vec

    env = make_vec(64)
    algo = CPO.from_env(env, seed=0)  # cost limit from env.constraints
    history = learn(env, algo, total_steps=200_000, steps_per_epoch=20_000)
"""

from saferl.algos.buffer import RolloutBatch, RolloutCollector, compute_gae
from saferl.algos.cpo import CPO
from saferl.algos.learn import learn
from saferl.algos.ppo_lagrangian import PPOLagrangian

__all__ = ["CPO", "PPOLagrangian", "RolloutBatch", "RolloutCollector", "compute_gae", "learn"]
