"""``python tests/training/_run_slow_cli.py train ...``: the real ``saferl`` CLI with every CPO
update preceded by a ``SAFERL_SLOW_UPDATE``-second sleep, so that a test can kill the process in
the middle of an epoch, between checkpoints, without racing it."""

import os
import sys
import time

from saferl.algos.cpo import CPO
from saferl.cli import main

_update = CPO.update


def _slow_update(self, batch):
    time.sleep(float(os.environ.get("SAFERL_SLOW_UPDATE", "0")))
    return _update(self, batch)


CPO.update = _slow_update
sys.argv[0] = "saferl"
sys.exit(main())
