"""saferl.algos."""
