"""``python tests/training/_run_toy.py <saferl train flags>``: the trainer's CLI with the stand-ins
registered (Toy-v0, toy), for subprocess tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import _standins

from saferl.training.trainer import _main

_standins.register()
sys.exit(_main(sys.argv[1:]))
