"""``python tests/training/_run_toy.py <saferl train flags>``: the ``saferl`` CLI with the
stand-ins registered (Toy-v0, toy), for subprocess tests. Without ``--config`` a run starts from
the field defaults (the packaged default is the wheelchair's), as the in-process tests do."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import _standins

from saferl import cli

_standins.register()
cli.default_config_path = lambda: _standins.HERE / "toy_default.yaml"
sys.argv[1:1] = ["train"]
cli.main()
