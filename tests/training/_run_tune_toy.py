"""``python tests/training/_run_tune_toy.py <saferl tune flags>``: ``saferl tune`` with the
stand-ins registered (Toy-v0, toy), for subprocess tests. Worker processes are spawned: they
import this file again (not as ``__main__``), so the registration is at the top level."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import _standins

_standins.register()

if __name__ == "__main__":
    from saferl.cli import main

    sys.argv = ["saferl", *sys.argv[1:]]
    main()
