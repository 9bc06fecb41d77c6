"""Wall-time overhead of each tracking backend on the default main job, measured side by side.

    python benchmarks/tracking_overhead.py                          # 1e6 steps, 2 rounds
    python benchmarks/tracking_overhead.py --steps 2000000 --rounds 3
    python benchmarks/tracking_overhead.py --backends mlflow --out runs/bench_tracking

Each run is ``saferl train`` on the embedded default config (the CLI in a fresh process, as a
user runs it) with ``--set train.total_steps=STEPS``; the variants are the local files alone
(``local``) and the local files plus one backend (``mlflow``: the default SQLite store inside the
runs directory, final policy logged as an MLflow model; ``wandb``: offline mode; ``tensorboard``).
The order is interleaved, ``local mlflow wandb tensorboard local mlflow ...``, so slow drift of
the machine's load falls on every variant alike. Overhead of a backend = median wall time of its
runs / median wall time of the ``local`` runs - 1; the same ratio of CPU time (user + system of
the training process and the children it waited for: the backends' threads run inside it) is
reported beside it, as it is less sensitive to other load on the machine. Printed and written to ``OUT/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

FLAGS = {
    "local": [],
    "mlflow": ["--use-mlflow"],
    "wandb": ["--use-wandb"],
    "tensorboard": ["--use-tensorboard"],
}


def run_once(variant: str, steps: int, runs_dir: Path, name: str) -> tuple[float, float]:
    cmd = [
        sys.executable,
        "-m",
        "saferl",
        "train",
        "--name",
        name,
        "--runs-dir",
        str(runs_dir),
        "--set",
        f"train.total_steps={steps}",
        "--set",
        "train.progress=false",
        *FLAGS[variant],
    ]
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true")
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{variant} run failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return dt, cpu


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--backends", nargs="+", default=["mlflow", "wandb", "tensorboard"])
    p.add_argument("--out", default="runs/bench_tracking")
    args = p.parse_args()
    unknown = sorted(set(args.backends) - set(FLAGS) - {"local"})
    if unknown:
        p.error(f"--backends: unknown {unknown}; choose from mlflow, wandb, tensorboard")
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    variants = ["local", *[b for b in args.backends if b != "local"]]
    times: dict[str, list[float]] = {v: [] for v in variants}
    cpus: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(args.rounds):
        for v in variants:
            dt, cpu = run_once(v, args.steps, out / "runs", f"{v}_r{r}")
            times[v].append(dt)
            cpus[v].append(cpu)
            print(f"round {r} {v:<12} wall {dt:7.1f} s  cpu {cpu:7.1f} s", flush=True)

    def overhead(samples: dict[str, list[float]]) -> dict[str, float]:
        base = statistics.median(samples["local"])
        return {
            v: round(statistics.median(ts) / base - 1.0, 4)
            for v, ts in samples.items()
            if v != "local"
        }

    result = {
        "steps": args.steps,
        "rounds": args.rounds,
        "wall_seconds": {v: [round(t, 2) for t in ts] for v, ts in times.items()},
        "cpu_seconds": {v: [round(t, 2) for t in ts] for v, ts in cpus.items()},
        "overhead_vs_local": overhead(times),
        "cpu_overhead_vs_local": overhead(cpus),
    }
    for v, o in result["overhead_vs_local"].items():
        c = result["cpu_overhead_vs_local"][v]
        print(
            f"{v:<12} overhead {100 * o:+.1f} % wall, {100 * c:+.1f} % cpu "
            f"(medians of {args.rounds} vs local)"
        )
    (out / "results.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
