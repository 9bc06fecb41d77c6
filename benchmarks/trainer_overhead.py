"""Trainer overhead as a fraction of wall time: everything the trainer adds around the
algorithm's collect and update (snapshots for rollback, finiteness checks, callbacks, plots,
best.pt, metrics files, checkpoints, the progress bar).

    python benchmarks/trainer_overhead.py                  # default config, 4 epochs
    python benchmarks/trainer_overhead.py --epochs 2 --set env.num_envs=16

Wall time is measured around ``Trainer.train()``; collection and update time are the trainer's
own per-epoch measurements of ``collector.collect()`` and ``algorithm.update()`` alone
(``time/collect``, ``time/update`` in metrics.jsonl). Overhead = wall - collect - update.
The same split is also reported in process CPU time (``time.process_time`` around the two
calls), which stays meaningful on a loaded machine where wall times are not.
With few epochs the final checkpoint and the final plots weigh more than in a long run, so the
number is an upper bound for the same settings.

The progress bar draws to a pseudo-terminal here (``--no-progress`` to leave it off), so its
cost is included.
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from saferl.config import default_config_path, load_config
from saferl.training.callbacks import ProgressBar
from saferl.training.trainer import Trainer


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 65536):
            pass
    except OSError:
        pass


def _wrap_cpu(obj: object, method: str, acc: dict[str, float]) -> None:
    """Accumulate the process CPU time spent in ``obj.method`` (stable under machine load)."""
    inner = getattr(obj, method)

    def timed(*args, **kwargs):
        c0 = time.process_time()
        try:
            return inner(*args, **kwargs)
        finally:
            acc[method] += time.process_time() - c0

    setattr(obj, method, timed)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", help="YAML config (default: the built-in default)")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="override")
    p.add_argument("--epochs", type=int, default=4, help="epochs to run (default 4)")
    p.add_argument("--no-progress", action="store_true", help="leave the progress bar off")
    p.add_argument("--json", help="also write the result as JSON to this file")
    args = p.parse_args(argv)

    config_path = args.config or default_config_path()  # the config `saferl train` runs
    base = load_config(config_path, args.overrides)
    total = args.epochs * base.train.steps_per_epoch
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(
            config_path,
            [
                *args.overrides,
                f"train.total_steps={total}",
                f"train.runs_dir={tmp}",
                "train.name=bench",
                "train.progress=false",
            ],
        )
        extra = []
        if not args.no_progress:
            master, slave = pty.openpty()
            tty = os.fdopen(slave, "w")
            # Drain the terminal's other end, or its buffer fills and the writes block.
            threading.Thread(target=_drain, args=(master,), daemon=True).start()
            bar = ProgressBar(total, enabled=True, stream=tty)
            bar.name = "progress_tty"
            extra.append(bar)
        trainer = Trainer(cfg, command=["benchmarks/trainer_overhead.py"], extra_callbacks=extra)
        cpu_in = {"collect": 0.0, "update": 0.0}
        _wrap_cpu(trainer.collector, "collect", cpu_in)
        _wrap_cpu(trainer.algo, "update", cpu_in)
        t0, c0 = time.perf_counter(), time.process_time()
        code = trainer.train()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows = [json.loads(line) for line in (Path(trainer.run_dir) / "metrics.jsonl").open()]
        if not args.no_progress:
            tty.close()
    collect = sum(r["time/collect"] for r in rows)
    update = sum(r["time/update"] for r in rows)
    overhead = wall - collect - update
    steps = rows[-1]["env_steps"] if rows else 0
    result = {
        "epochs": len(rows),
        "env_steps": steps,
        "num_envs": cfg.env.num_envs,
        "steps_per_epoch": cfg.train.steps_per_epoch,
        "wall_s": wall,
        "collect_s": collect,
        "update_s": update,
        "overhead_s": overhead,
        "overhead_fraction": overhead / wall if wall else float("nan"),
        "steps_per_s": steps / wall if wall else float("nan"),
        "cpu_s": cpu,
        "collect_cpu_s": cpu_in["collect"],
        "update_cpu_s": cpu_in["update"],
        "overhead_cpu_s": cpu - cpu_in["collect"] - cpu_in["update"],
        "overhead_cpu_fraction": (cpu - cpu_in["collect"] - cpu_in["update"]) / cpu,
        "torch_threads": torch.get_num_threads(),
        "exit_code": code,
        "load_average_1m": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }
    print(
        f"{result['epochs']} epochs, {steps:,} env steps in {wall:.1f} s "
        f"({result['steps_per_s']:,.0f} steps/s): collect {collect:.1f} s, update {update:.1f} s, "
        f"trainer overhead {overhead:.2f} s = {100 * result['overhead_fraction']:.2f} % "
        f"(load average {result['load_average_1m']:.1f} on {result['cpus']} CPUs); process CPU "
        f"time {cpu:.1f} s with {result['torch_threads']} torch threads, of which trainer "
        f"overhead {result['overhead_cpu_s']:.2f} s = "
        f"{100 * result['overhead_cpu_fraction']:.2f} %",
        file=sys.stderr,
    )
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
