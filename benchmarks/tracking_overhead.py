"""Wall-time overhead of each tracking backend on the default main job, measured side by side.

    python benchmarks/tracking_overhead.py                          # 1e6 steps, 2 rounds
    python benchmarks/tracking_overhead.py --steps 2000000 --rounds 3
    python benchmarks/tracking_overhead.py --backends mlflow --out runs/bench_tracking

Each run is ``saferl train`` on the embedded default config (the CLI in a fresh process, as a
user runs it) with ``--set train.total_steps=STEPS``; the variants are the local files alone
(``local``) and the local files plus one backend (``mlflow``: the default SQLite store inside the
runs directory, final policy logged as an MLflow model; ``wandb``: offline mode; ``tensorboard``).
The order is interleaved, ``local mlflow wandb tensorboard local mlflow ...``, so slow drift of
the machine's load falls on every variant alike; with ``--pairs`` each backend's run starts at the
same time as a local-only run (one core each: the default job trains on one thread), so both see
the same machine. Overhead of a backend = median wall time of its
runs / median wall time of the ``local`` runs - 1 (with ``--pairs`` also against the local-only
run beside it); the same ratio of CPU time (user + system of
the training process and the children it waited for: the backends' threads run inside it) is
reported beside it, as it is less sensitive to other load on the machine. Printed and written to ``OUT/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
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


def _command(variant: str, steps: int, runs_dir: Path, name: str) -> list[str]:
    return [
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


def run_together(
    jobs: list[tuple[str, str]], steps: int, runs_dir: Path
) -> list[tuple[float, float]]:
    """Start one ``saferl train`` per (variant, name) at once; (wall s, CPU s) of each, in order.
    CPU = user + system of that process and the children it waited for (``os.wait4``)."""
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true")
    t0 = time.perf_counter()
    procs = {}
    for i, (variant, name) in enumerate(jobs):
        proc = subprocess.Popen(
            _command(variant, steps, runs_dir, name),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs[proc.pid] = (i, variant, proc)
    out: list[tuple[float, float]] = [(0.0, 0.0)] * len(jobs)
    while procs:
        pid, status, usage = os.wait4(-1, 0)
        if pid not in procs:
            continue
        i, variant, proc = procs.pop(pid)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"{variant} run failed (exit {proc.returncode}); see {runs_dir}")
        out[i] = (time.perf_counter() - t0, usage.ru_utime + usage.ru_stime)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--backends", nargs="+", default=["mlflow", "wandb", "tensorboard"])
    p.add_argument("--out", default="runs/bench_tracking")
    p.add_argument(
        "--pairs",
        action="store_true",
        help="run each backend at the same time as a local-only run (one core each)",
    )
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
    paired: dict[str, list[tuple[float, float]]] = {v: [] for v in variants[1:]}
    for r in range(args.rounds):
        if args.pairs:  # the local files alone and one backend side by side, one core each
            batches = [[("local", f"local_{b}_r{r}"), (b, f"{b}_r{r}")] for b in variants[1:]]
        else:  # one run at a time, interleaved
            batches = [[(v, f"{v}_r{r}")] for v in variants]
        for batch in batches:
            results = run_together(batch, args.steps, out / "runs")
            for (v, _), (dt, cpu) in zip(batch, results, strict=True):
                times[v].append(dt)
                cpus[v].append(cpu)
                print(f"round {r} {v:<12} wall {dt:7.1f} s  cpu {cpu:7.1f} s", flush=True)
            if args.pairs:  # this backend against the local-only run beside it
                (w0, c0), (w1, c1) = results
                paired[batch[1][0]].append((w1 / w0 - 1.0, c1 / c0 - 1.0))

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
    if args.pairs:
        result["paired_overhead"] = {
            v: {
                "wall": round(statistics.median(w for w, _ in ps), 4),
                "cpu": round(statistics.median(c for _, c in ps), 4),
            }
            for v, ps in paired.items()
        }
    for v, o in result["overhead_vs_local"].items():
        c = result["cpu_overhead_vs_local"][v]
        print(
            f"{v:<12} overhead {100 * o:+.1f} % wall, {100 * c:+.1f} % cpu "
            f"(medians of {args.rounds} vs local)"
        )
    for v, o in result.get("paired_overhead", {}).items():
        print(
            f"{v:<12} overhead {100 * o['wall']:+.1f} % wall, {100 * o['cpu']:+.1f} % cpu "
            "against the local-only run beside it (median over rounds)"
        )
    (out / "results.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
