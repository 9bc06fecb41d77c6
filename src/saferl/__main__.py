"""`python -m saferl` runs the CLI (also used by torchrun)."""

from saferl.cli import main

main()
