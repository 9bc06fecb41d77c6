"""saferl.training."""
