"""Latency and throughput of a deployed policy: in-process runtimes and ``saferl serve``.

    python benchmarks/deploy_latency.py                   # a fresh 1-epoch run of the default
                                                          # config (128x128 actor, obs_ema)
    python benchmarks/deploy_latency.py --run runs/NAME --json deploy.json

In-process, one call of the policy on a batch of 1 and of 256 observations, p50/p99 in
microseconds, for

* ``saferl``: the run's policy as saferl's evaluation loads it (``load_run_model``), clipped;
* ``torch``: the exported function as an eager torch module (what ``saferl serve RUN`` runs);
* ``torchscript``: the exported ``.pt`` loaded with ``torch.jit.load``;
* ``onnxruntime``: the exported ``.onnx`` in ONNX Runtime (CPU, one intra-op thread).

Over HTTP on loopback (``saferl serve`` of the ``.onnx`` in a subprocess): one client sending
sequential keep-alive requests (p50/p99 per request at batch 1), then ``--clients`` concurrent
clients sending a fixed number of requests each, requests/s and observations/s at batch 1 and
batch 256. The clients run in this process (threads, http.client), so on a small machine they
share its cores with the server: the numbers are a floor.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def _percentiles(samples: list[float]) -> dict[str, float]:
    import numpy as np

    a = np.asarray(samples) * 1e6
    return {"p50_us": float(np.percentile(a, 50)), "p99_us": float(np.percentile(a, 99))}


def _time_calls(fn, n: int) -> dict[str, float]:
    for _ in range(min(50, n)):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return _percentiles(out)


def _tiny_run(root: Path) -> Path:
    import saferl
    from saferl.config import default_config_path

    cfg = saferl.load_config(
        default_config_path(),
        [
            "env.num_envs=16",
            "train.total_steps=1024",
            "train.steps_per_epoch=1024",
            "train.best_eval_episodes=0",
            "train.progress=false",
            "train.plot_every=1000",
            f"train.runs_dir={root}",
            "train.name=bench",
        ],
    )
    trainer = saferl.Trainer(cfg, command=["benchmarks/deploy_latency.py"])
    trainer.train()
    return trainer.run_dir


class _Server:
    def __init__(self, target: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "saferl", "serve", str(target), "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], 120)
        line = self.proc.stdout.readline() if ready else ""
        if "http://127.0.0.1:" not in line:
            self.proc.kill()
            raise SystemExit(f"server did not start: {line!r}")
        self.port = int(line.split("http://127.0.0.1:")[1].split()[0])

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def _connect(port: int) -> http.client.HTTPConnection:
    """A keep-alive connection with TCP_NODELAY: http.client writes headers and body in two
    sends, and with Nagle's algorithm the body then waits ~40 ms for the server's delayed ACK
    (the HTTP clients of other languages and urllib3 set TCP_NODELAY too)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def _http_sequential(port: int, body: bytes, n: int) -> dict[str, float]:
    conn = _connect(port)
    headers = {"Content-Type": "application/json"}

    def call() -> None:
        conn.request("POST", "/act", body=body, headers=headers)
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise SystemExit(f"HTTP {r.status}")

    try:
        return _time_calls(call, n)
    finally:
        conn.close()


def _http_concurrent(port: int, bodies: list[bytes], per_client: int) -> dict[str, float]:
    errors = []

    def client(body: bytes) -> None:
        conn = _connect(port)
        headers = {"Content-Type": "application/json"}
        try:
            for _ in range(per_client):
                conn.request("POST", "/act", body=body, headers=headers)
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    errors.append(r.status)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(b,)) for b in bodies]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    n = len(bodies) * per_client
    return {"requests": n, "seconds": dt, "requests_per_s": n / dt, "errors": len(errors)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run", help="run directory (default: a fresh 1-epoch run, default config)")
    p.add_argument("--checkpoint", default="last")
    p.add_argument("--calls", type=int, default=2000, help="in-process calls at batch 1")
    p.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    p.add_argument("--requests", type=int, default=200, help="HTTP requests per client")
    p.add_argument("--json", help="write the results to this JSON file")
    args = p.parse_args()

    import numpy as np
    import torch

    from saferl.deploy import export_run, load_policy, policy_from_run
    from saferl.envs.vector import InstanceRNG
    from saferl.training.evaluation import load_run_model

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="saferl-deploy-bench-"))
    run = Path(args.run) if args.run else _tiny_run(tmp)
    onnx_path, _ = export_run(run, "onnx", tmp / "policy.onnx", checkpoint=args.checkpoint)
    ts_path, _ = export_run(run, "torchscript", tmp / "policy.pt", checkpoint=args.checkpoint)
    model = load_run_model(run, checkpoint=args.checkpoint)
    runtimes = {
        "torch": policy_from_run(run, checkpoint=args.checkpoint),
        "torchscript": load_policy(ts_path),
        "onnxruntime": load_policy(onnx_path),
    }
    rt = runtimes["onnxruntime"]
    env = model.env_factory(256, **model.env_options)
    wrapped, _ = env.reset(seed=list(range(256)))
    env.close()
    raw = np.asarray(wrapped[:, : rt.obs_dim], np.float32)
    if rt.stateful:  # the raw observation is the wrapped one without the appended averages
        e = rt.state_dim
        env_dim = rt.spec["observation"]["env_dim"]
        raw = np.concatenate([wrapped[:, :env_dim], wrapped[:, env_dim + e :]], axis=1)
        raw = np.ascontiguousarray(raw[:, : rt.obs_dim])
    rng = InstanceRNG(256)
    rng.seed(np.arange(256))
    results: dict = {
        "run": str(run),
        "policy": rt.spec["policy"],
        "obs_dim": rt.obs_dim,
        "stateful": rt.stateful,
        "torch_threads": torch.get_num_threads(),
        "in_process": {},
        "http": {},
    }
    low, high = rt.low, rt.high
    for batch, calls in ((1, args.calls), (256, max(200, args.calls // 10))):
        w = np.ascontiguousarray(wrapped[:batch])
        o = np.ascontiguousarray(raw[:batch])
        ema = np.zeros((batch, rt.state_dim), np.float32)
        start = np.zeros(batch, bool)
        row = {
            "saferl": _time_calls(
                lambda w=w: np.clip(
                    model.policy.act(w, None, deterministic=True, rng=rng), low, high
                ),
                calls,
            )
        }
        for name, r in runtimes.items():
            row[name] = _time_calls(lambda r=r, o=o, ema=ema, s=start: r.run(o, ema, s), calls)
        for v in row.values():
            v["obs_per_s"] = batch / (v["p50_us"] * 1e-6)
        results["in_process"][f"batch_{batch}"] = row

    server = _Server(onnx_path)
    try:
        one = {"obs": raw[0].tolist(), "session": "seq"}
        results["http"]["sequential_batch_1"] = _http_sequential(
            server.port, json.dumps(one).encode(), args.calls // 2
        )
        for batch in (1, 256):
            bodies = [
                json.dumps(
                    {
                        "obs": raw[:batch].tolist(),
                        "session": [f"c{k}-{i}" for i in range(batch)],
                    }
                ).encode()
                for k in range(args.clients)
            ]
            per_client = args.requests if batch == 1 else max(10, args.requests // 4)
            r = _http_concurrent(server.port, bodies, per_client)
            r["obs_per_s"] = r["requests_per_s"] * batch
            r["clients"] = args.clients
            results["http"][f"concurrent_batch_{batch}"] = r
    finally:
        server.stop()

    print(
        f"policy: {rt.spec['policy']['hidden_sizes']} {rt.spec['policy']['activation']}, "
        f"obs {rt.obs_dim}, stateful {rt.stateful}, torch threads 1, ORT threads 1"
    )
    print("| in-process | batch | p50 us | p99 us | obs/s (p50) |")
    print("|---|---|---|---|---|")
    for key, row in results["in_process"].items():
        b = key.split("_")[1]
        for name, v in row.items():
            print(
                f"| {name} | {b} | {v['p50_us']:.0f} | {v['p99_us']:.0f} | {v['obs_per_s']:.0f} |"
            )
    s = results["http"]["sequential_batch_1"]
    print(f"HTTP sequential, batch 1: p50 {s['p50_us']:.0f} us, p99 {s['p99_us']:.0f} us")
    for b in (1, 256):
        r = results["http"][f"concurrent_batch_{b}"]
        print(
            f"HTTP {r['clients']} clients, batch {b}: {r['requests_per_s']:.0f} requests/s, "
            f"{r['obs_per_s']:.0f} obs/s, {r['errors']} errors ({r['requests']} requests)"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
