"""``saferl serve`` as a real process on 127.0.0.1 (a free port), queried over HTTP."""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from saferl.deploy import SessionStore, load_policy, sidecar_path

MAX_BATCH = 64


class Server:
    """A ``saferl serve`` process; ``port`` read from its first stdout line."""

    def __init__(self, target: Path, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "saferl", "serve", str(target), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        line = self._readline(timeout=120)
        if "http://127.0.0.1:" not in line:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.proc.stderr.read()}")
        self.port = int(line.split("http://127.0.0.1:")[1].split()[0])

    def _readline(self, timeout: float) -> str:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline() if ready else ""

    def connect(self) -> http.client.HTTPConnection:
        """Keep-alive connection with TCP_NODELAY (http.client sends headers and body
        separately; with Nagle's algorithm the body waits for the server's delayed ACK)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        content_type: str | None = "application/json",
        conn: http.client.HTTPConnection | None = None,
    ) -> tuple[int, bytes]:
        own = conn is None
        c = conn or self.connect()
        headers = {"Content-Type": content_type} if body is not None and content_type else {}
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        if own:
            c.close()
        return r.status, data

    def act(self, payload: dict, **kw) -> tuple[int, dict]:
        status, data = self.request("POST", "/act", json.dumps(payload), **kw)
        return status, json.loads(data)

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, out, err


@pytest.fixture(scope="module")
def served(wheelchair):
    server = Server(wheelchair.onnx, "--max-batch", str(MAX_BATCH))
    try:
        yield server, load_policy(wheelchair.onnx)
    finally:
        if server.proc.poll() is None:
            server.stop()


def _obs(rt, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, rt.obs_dim)).astype(np.float32)


def test_health_and_metadata(served, wheelchair):
    server, _rt = served
    status, data = server.request("GET", "/health")
    health = json.loads(data)
    assert status == 200 and health["status"] == "ok" and health["stateful"] is True
    assert health["backend"] == "onnxruntime" and health["obs_dim"] == 49
    status, data = server.request("GET", "/metadata")
    assert status == 200
    assert json.loads(data) == json.loads(sidecar_path(wheelchair.onnx).read_text())


def test_act_one_and_a_batch_equal_the_runtime(served):
    server, rt = served
    obs = _obs(rt, 3)
    status, reply = server.act({"obs": obs[0].tolist(), "session": "one"})
    assert status == 200
    expected, _ = rt.run(obs[:1])
    assert np.asarray(reply["action"], np.float32).shape == (3,)
    np.testing.assert_array_equal(np.asarray(reply["action"], np.float32), expected[0])
    status, reply = server.act({"obs": obs.tolist(), "session": ["b0", "b1", "b2"]})
    assert status == 200
    np.testing.assert_array_equal(np.asarray(reply["action"], np.float32), rt.run(obs)[0])


def test_sessions_over_http_carry_the_averages_and_reset(served):
    server, rt = served
    local = SessionStore(rt)
    obs = _obs(rt, 6, seed=1)
    for t in range(6):
        reset = t == 4
        status, reply = server.act({"obs": obs[t].tolist(), "session": "s", "reset": reset})
        assert status == 200
        expected = local.act(obs[t : t + 1], ["s"], [reset])
        np.testing.assert_array_equal(np.asarray(reply["action"], np.float32), expected[0])
    assert server.request("DELETE", "/sessions/s")[0] == 200
    assert server.request("DELETE", "/sessions/s")[0] == 404


BAD = [
    ("wrong shape", {"obs": [0.0] * 48, "session": "x"}, 422, "expected 49 numbers"),
    ("3-d", {"obs": [[[0.0] * 49]], "session": ["x"]}, 422, "expected 49 numbers"),
    ("ragged", {"obs": [[0.0] * 49, [0.0] * 48], "session": ["x", "y"]}, 422, "ragged"),
    ("empty", {"obs": [], "session": "x"}, 422, "obs: expected a list"),
    ("string", {"obs": [0.0] * 48 + ["1"], "session": "x"}, 422, "numbers only"),
    ("bool", {"obs": [0.0] * 48 + [True], "session": "x"}, 422, "true/false"),
    ("null", {"obs": [0.0] * 48 + [None], "session": "x"}, 422, "numbers only"),
    ("overflow", {"obs": [0.0] * 48 + [1e39], "session": "x"}, 422, "dim 48 is not a finite"),
    ("no obs", {"session": "x"}, 422, "obs: missing"),
    ("unknown field", {"obs": [0.0] * 49, "session": "x", "x": 1}, 422, "unknown field"),
    ("no session", {"obs": [0.0] * 49}, 422, "session: this policy keeps per-user state"),
    ("duplicate ids", {"obs": [[0.0] * 49] * 2, "session": ["a", "a"]}, 422, "distinct"),
    ("id count", {"obs": [[0.0] * 49] * 2, "session": ["a"]}, 422, "one per observation"),
    ("bad reset", {"obs": [0.0] * 49, "session": "x", "reset": "yes"}, 422, "reset:"),
    ("not an object", [0.0] * 49, 422, "JSON object"),
]


@pytest.mark.parametrize(("what", "payload", "status", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_a_4xx_naming_the_problem(served, what, payload, status, message):
    server, _ = served
    got, data = server.request("POST", "/act", json.dumps(payload))
    assert got == status, data
    assert message in json.loads(data)["error"]


def test_non_json_bodies_oversize_and_wrong_routes(served):
    server, _rt = served
    for literal in ("NaN", "Infinity", "-Infinity"):
        body = '{"obs": [' + ", ".join(["0"] * 48 + [literal]) + '], "session": "x"}'
        status, data = server.request("POST", "/act", body)
        assert status == 422 and "not a finite" in json.loads(data)["error"], data
    status, data = server.request("POST", "/act", '{"obs": [1, 2,')
    assert status == 400 and "malformed JSON" in json.loads(data)["error"]
    status, data = server.request("POST", "/act", b"\xff\xfe", content_type="application/json")
    assert status == 400
    body = json.dumps({"obs": [0.0] * 49, "session": "x"})
    status, data = server.request("POST", "/act", body, content_type="text/plain")
    assert status == 415 and "application/json" in json.loads(data)["error"]
    status, data = server.request("POST", "/act", body, content_type=None)
    assert status == 415
    big = {"obs": [[0.0] * 49] * (MAX_BATCH + 1), "session": [str(i) for i in range(65)]}
    status, data = server.act(big)
    assert status == 413 and f"limit {MAX_BATCH}" in data["error"]
    huge = b'{"obs": [' + b" " * (MAX_BATCH * 49 * 32 + 70000) + b"0]}"
    status, data = server.request("POST", "/act", huge)
    assert status == 413 and b"exceeds" in data
    assert server.request("GET", "/act")[0] == 405
    assert server.request("GET", "/nope")[0] == 404
    # still serving
    assert server.request("GET", "/health")[0] == 200


def test_bounded_load_from_concurrent_clients_has_no_errors(served):
    """8 clients x 40 requests each (keep-alive), batch 1 with a session each and batch 64;
    every reply equals the in-process answer for the same session history."""
    server, rt = served
    n_clients, n_requests = 8, 40
    obs = _obs(rt, n_clients * n_requests, seed=3)
    replies: dict[int, list] = {}
    failures: list[str] = []

    def client(k: int) -> None:
        conn = server.connect()
        got = []
        try:
            for t in range(n_requests):
                row = obs[k * n_requests + t]
                status, data = server.request(
                    "POST",
                    "/act",
                    json.dumps({"obs": row.tolist(), "session": f"load-{k}"}),
                    conn=conn,
                )
                if status != 200:
                    failures.append(f"{k}/{t}: {status} {data[:100]!r}")
                    return
                got.append(json.loads(data)["action"])
                if t % 10 == 0:
                    batch = obs[:MAX_BATCH]
                    status, _ = server.request(
                        "POST",
                        "/act",
                        json.dumps(
                            {
                                "obs": batch.tolist(),
                                "session": [f"b{k}-{t}-{i}" for i in range(MAX_BATCH)],
                            }
                        ),
                        conn=conn,
                    )
                    if status != 200:
                        failures.append(f"{k}/{t} batch: {status}")
        finally:
            conn.close()
        replies[k] = got

    threads = [threading.Thread(target=client, args=(k,)) for k in range(n_clients)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    elapsed = time.perf_counter() - t0
    assert not failures, failures[:5]
    local = SessionStore(rt)
    for k in range(n_clients):
        assert len(replies[k]) == n_requests
        for t in range(n_requests):
            expected = local.act(obs[k * n_requests + t][None], [f"load-{k}"])
            np.testing.assert_array_equal(np.asarray(replies[k][t], np.float32), expected[0])
    total = n_clients * (n_requests + n_requests // 10)
    print(f"{total} requests from {n_clients} clients in {elapsed:.2f} s")
    metrics = server.request("GET", "/metrics")[1].decode()
    assert 'status="500"' not in metrics


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_requests_errors_and_latency(served):
    server, rt = served
    before = server.request("GET", "/metrics")[1].decode()
    server.act({"obs": _obs(rt, 1)[0].tolist(), "session": "m"})
    server.act({"obs": [0.0] * 48, "session": "m"})
    server.request("POST", "/act", '{"obs": [NaN], "session": "m"}')
    after = server.request("GET", "/metrics")[1].decode()
    assert "# TYPE saferl_act_latency_seconds histogram" in after
    assert _metric(after, "saferl_act_latency_seconds_count") == (
        _metric(before, "saferl_act_latency_seconds_count") + 1
    )
    assert _metric(after, 'saferl_errors_total{reason="bad_shape"}') == (
        _metric(before, 'saferl_errors_total{reason="bad_shape"}') + 1
    )
    assert _metric(after, 'saferl_errors_total{reason="non_finite"}') == (
        _metric(before, 'saferl_errors_total{reason="non_finite"}') + 1
    )
    assert _metric(after, "saferl_actions_out_of_range_total") == 0
    assert _metric(after, "saferl_observations_total") >= 1
    assert _metric(after, "saferl_sessions") >= 1


def test_serve_a_run_directory_and_stop_cleanly(exo):
    server = Server(exo.run_dir, "--checkpoint", "last")
    try:
        status, data = server.request("GET", "/health")
        assert status == 200 and json.loads(data)["backend"] == "torch"
        rt = load_policy(exo.onnx)
        obs = _obs(rt, 5)
        status, reply = server.act({"obs": obs.tolist()})  # stateless: no session needed
        assert status == 200
        np.testing.assert_array_equal(np.asarray(reply["action"], np.float32), rt.run(obs)[0])
    finally:
        rc, out, err = server.stop(signal.SIGINT)
    assert rc == 0 and "saferl serve: stopped" in out
    assert "Traceback" not in err


def test_serve_refuses_bad_arguments_in_one_line(wheelchair, tmp_path):
    from typer.testing import CliRunner

    from saferl.cli import app

    runner = CliRunner()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        cases = (
            ((str(wheelchair.onnx), "--port", "70000"), "--port: expected 0..65535"),
            ((str(wheelchair.onnx), "--max-batch", "0"), "--max-batch: must be >= 1"),
            ((str(tmp_path / "nope.onnx"),), "no such file"),
            ((str(tmp_path),), "is not a run directory"),
            ((str(wheelchair.onnx), "--host", "no such host."), "--host: cannot resolve"),
            (
                (str(wheelchair.onnx), "--port", str(taken.getsockname()[1])),
                "--port: cannot bind",
            ),
        )
        for args, message in cases:
            res = runner.invoke(app, ["serve", *args])
            assert res.exit_code == 2, (args, res.stdout, res.stderr)
            lines = res.stderr.strip().splitlines()
            assert len(lines) == 1 and message in lines[0], res.stderr
            assert "Traceback" not in res.stderr


def test_replies_are_not_held_back_by_nagles_algorithm(served):
    """The listening socket is a TCP socket to asyncio (TCP_NODELAY on every connection):
    without it each reply waited ~40 ms for the client's delayed ACK."""
    server, rt = served
    conn = server.connect()
    body = json.dumps({"obs": _obs(rt, 1)[0].tolist(), "session": "nagle"})
    times = []
    try:
        for _ in range(21):
            t0 = time.perf_counter()
            assert server.request("POST", "/act", body, conn=conn)[0] == 200
            times.append(time.perf_counter() - t0)
    finally:
        conn.close()
    assert sorted(times)[10] < 0.02, f"median {sorted(times)[10] * 1e3:.1f} ms"
