"""``python tests/training/_run_toy_cli.py train ...``: the real ``saferl`` CLI with the
stand-ins registered (Toy-v0, toy), for subprocess tests of its flags."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import _standins

from saferl.cli import main

_standins.register()
sys.argv[0] = "saferl"
sys.exit(main())
