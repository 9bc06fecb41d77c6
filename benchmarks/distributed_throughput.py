"""Env steps per second of the same run on 1 and on N processes (``saferl train --nproc``).

    python benchmarks/distributed_throughput.py                      # 1 vs 2, CPU, gloo
    python benchmarks/distributed_throughput.py --nproc 1 2 4 --set train.device=cuda

Every variant trains the same config (the same total batch, ``env.num_envs`` split over the
processes) for ``--epochs`` epochs; the first epoch (start-up, first allocations) is left out.
The variants run one after the other, ``--repeats`` times interleaved, so that a machine's
changing load affects them alike; the table gives the median over repeats of each run's mean
over its epochs of: env steps/s (``fps``, steps of all processes per second of rank 0's epoch
time), rank 0's collection and update time per epoch, and within the update CPO's actor step
and the critics' steps. Rank 0 waits for the slowest rank in every collective, so its update
time includes the others' stragglers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

COLUMNS = ("fps", "time/collect", "time/update", "time_actor", "time_critic")


def run_once(nproc: int, args: argparse.Namespace, runs: Path, name: str) -> dict[str, float]:
    cmd = [sys.executable, "-m", "saferl", "--log-level", "WARNING", "train", "--name", name]
    cmd += ["--runs-dir", str(runs)]
    if args.config:
        cmd += ["--config", args.config]
    sets = [
        f"env.num_envs={args.num_envs}",
        f"train.steps_per_epoch={args.batch}",
        f"train.total_steps={args.batch * args.epochs}",
        "train.best_eval_episodes=0",
        "train.progress=false",
        "train.plot_every=1000",
        "train.checkpoint_every=1000",
        *args.set,
    ]
    for s in sets:
        cmd += ["--set", s]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    rows = [json.loads(x) for x in (runs / name / "metrics.jsonl").read_text().splitlines()]
    rows = rows[1:]  # the first epoch: start-up
    return {c: statistics.fmean(r[c] for r in rows) for c in COLUMNS}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    p.add_argument("--config", help="YAML config (default: the packaged default)")
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--batch", type=int, default=16_384, help="env steps per epoch, all ranks")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    results: dict[int, list[dict[str, float]]] = {n: [] for n in args.nproc}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for n in args.nproc:
                results[n].append(run_once(n, args, Path(tmp), f"n{n}_r{rep}"))
    print(f"{'procs':>5} " + " ".join(f"{c:>13}" for c in COLUMNS))
    base = None
    for n, reps in results.items():
        med = {c: statistics.median(r[c] for r in reps) for c in COLUMNS}
        base = base or med["fps"]
        cells = " ".join(f"{med[c]:>13.4g}" for c in COLUMNS)
        print(f"{n:>5} {cells}   x{med['fps'] / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
