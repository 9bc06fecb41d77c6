"""saferl.safety."""
