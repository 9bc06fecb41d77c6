"""Readers for what tracking backends wrote, independent of saferl's tracking code, and a real
MLflow server process for tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

WANDB_BLOCK = 32 * 1024  # the .wandb file is a LevelDB-style log of 32 KiB blocks


def wandb_records(path: Path) -> list:
    """Every protobuf ``Record`` of an offline ``run-<id>.wandb`` file.

    Format: a 7-byte header (``:W&B`` + 3 bytes), then LevelDB log blocks whose records carry a
    7-byte header (crc32c, length uint16, type: 1 full, 2 first, 3 middle, 4 last).
    """
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", data[:8]
    pos, chunks, buf = 7, [], b""
    while pos + 7 <= len(data):
        left = WANDB_BLOCK - (pos % WANDB_BLOCK)
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pos += 7
        if kind == 0 and length == 0:
            break
        chunk = data[pos : pos + length]
        pos += length
        if kind == 1:
            chunks.append(chunk)
        elif kind == 2:
            buf = chunk
        elif kind == 3:
            buf += chunk
        elif kind == 4:
            chunks.append(buf + chunk)
            buf = b""
    records = []
    for chunk in chunks:
        rec = pb.Record()
        rec.ParseFromString(chunk)
        records.append(rec)
    return records


def wandb_history(path: Path) -> list[dict]:
    """The history rows (``run.log`` calls) of an offline run file, values JSON-decoded."""
    rows = []
    for rec in wandb_records(path):
        if rec.WhichOneof("record_type") == "history":
            rows.append(
                {
                    (item.key or "/".join(item.nested_key)): json.loads(item.value_json)
                    for item in rec.history.item
                }
            )
    return rows


def wandb_config(path: Path) -> dict:
    """The config the run was started with (``run`` record), values JSON-decoded."""
    for rec in wandb_records(path):
        if rec.WhichOneof("record_type") == "run":
            return {
                (u.key or "/".join(u.nested_key)): json.loads(u.value_json)
                for u in rec.run.config.update
            }
    return {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MLflowServer:
    """``mlflow server`` on 127.0.0.1 with a SQLite store in ``root``; start/kill/restart by PID
    (its own process group, so the workers go with it)."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> float:
        """Start and wait for ``/health``; returns the seconds it took."""
        t0 = time.monotonic()
        mlflow = Path(sys.executable).parent / "mlflow"
        self.proc = subprocess.Popen(
            [
                str(mlflow),
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.root / 'mlflow.db'}",
                "--artifacts-destination",
                str(self.root / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            stdout=open(self.root / "server.log", "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited: {(self.root / 'server.log').read_text()}"
                )
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=1) as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            except OSError:
                time.sleep(0.2)
        self.kill()
        raise RuntimeError("mlflow server did not answer /health")

    def kill(self) -> None:
        """SIGKILL the server's process group (the one this object started)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None
