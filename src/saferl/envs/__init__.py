"""saferl.envs."""
