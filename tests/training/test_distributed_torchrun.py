"""Distributed training end to end: real torchrun processes with gloo on 127.0.0.1.

One uninterrupted 2-rank run (``saferl train --nproc 2``, 8 CPO epochs of 256 wheelchair steps,
8 instances) is the reference; a single process on all 8 instances, the same run with ZeRO
(checkpointed and resumed), a run whose rank 1 is SIGKILLed under ``torchrun --max-restarts 1``
and a run on two "nodes" (two torchrun agents meeting at a c10d rendezvous) are compared with it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from saferl.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch.distributed unavailable"
)

CONFIG = {
    "env": {"id": "WheelchairSC-v0", "num_envs": 8},
    "algo": {
        "name": "cpo",
        "hidden_sizes": [16, 16],
        "critic_minibatch": 64,
        "critic_epochs": 2,
        "fvp_fraction": 0.5,
        "cg_damping": 0.5,
    },
    "train": {
        "total_steps": 2048,
        "steps_per_epoch": 256,
        "checkpoint_every": 2,
        "plot_every": 100,
        "progress": False,
        "seed": 3,
    },
    "distributed": {"timeout_s": 60, "check_every": 1},
}
#: wall-clock columns, which naturally differ between runs
TIMING = {"fps", "time/collect", "time/update", "time/overhead", "time/total"}
TIMING |= {"time_prepare", "time_actor", "time_critic"}
TIMEOUT = 300


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    return env


def _saferl(cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: int = TIMEOUT):
    return subprocess.run(
        [sys.executable, "-m", "saferl", "--log-level", "WARNING", *args],
        cwd=cwd,
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _torchrun(cwd: Path, torchrun_args: list[str], *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", *torchrun_args, "-m", "saferl"]
    cmd += ["--log-level", "WARNING", "train", "--config", "tiny.yaml", *args]
    return subprocess.Popen(
        cmd, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _same_rows(a: Path, b: Path) -> None:
    rows_a, rows_b = _rows(a), _rows(b)
    assert [r["epoch"] for r in rows_a] == [r["epoch"] for r in rows_b]
    for x, y in zip(rows_a, rows_b, strict=True):
        for key in x.keys() - TIMING:
            same = x[key] == y[key] or (
                isinstance(x[key], float) and math.isnan(x[key]) and math.isnan(y[key])
            )
            assert same, (x["epoch"], key, x[key], y[key])


def _algo(run: Path) -> dict:
    return load_checkpoint(run / "checkpoints" / "last.pt")["algo"]


def _same_weights(a: Path, b: Path) -> None:
    sa, sb = _algo(a), _algo(b)
    for part in ("actor", "critics", "obs_norm"):
        for name, value in sa[part].items():
            assert torch.equal(value, sb[part][name]), (part, name)
    for idx, st in sa["critic_optim"]["state"].items():
        for name, value in st.items():
            assert torch.equal(value, sb["critic_optim"]["state"][idx][name]), (idx, name)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("dist")
    (d / "tiny.yaml").write_text(yaml.safe_dump(CONFIG))
    return d


@pytest.fixture(scope="module")
def reference(workdir: Path) -> Path:
    """The uninterrupted 2-rank run (``saferl train --nproc 2``)."""
    res = _saferl(workdir, "train", "--config", "tiny.yaml", "--name", "ref", "--nproc", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    return workdir / "runs" / "ref"


def test_two_ranks_equal_one_process_on_all_instances_and_only_rank_0_writes(workdir, reference):
    res = _saferl(workdir, "train", "--config", "tiny.yaml", "--name", "single")
    assert res.returncode == 0, res.stderr[-3000:]
    single = workdir / "runs" / "single"
    # the same episodes: the first update sees identical rollouts (global episode statistics)
    # and the updates agree to float32 summation order, amplified by conjugate gradient
    rows_1, rows_2 = _rows(single), _rows(reference)
    assert [r["episodes"] for r in rows_1] == [r["episodes"] for r in rows_2]
    assert any(r["episodes"] for r in rows_2)
    for key in ("kl", "lambda", "q", "J_c", "loss_v_r"):
        assert rows_2[0][key] == pytest.approx(rows_1[0][key], rel=1e-5, abs=1e-12), key
    s1, s2 = _algo(single), _algo(reference)
    for part in ("actor", "critics"):
        for name, value in s1[part].items():
            # measured: max |difference| 8e-4 after 8 updates
            torch.testing.assert_close(s2[part][name], value, rtol=1e-2, atol=2e-3)
    # one writer: the files of one run, each epoch logged once (check_every=1 also verified
    # after every epoch that both ranks held bit-identical weights)
    expected = {"checkpoints", "config.yaml", "log.jsonl", "manifest.json", "metrics.csv"}
    expected |= {"metrics.jsonl", "plots", ".lock"}
    assert {p.name for p in reference.iterdir()} == expected
    assert sorted(p.name for p in (workdir / "runs").iterdir()) == ["ref", "single"]
    records = [json.loads(line) for line in (reference / "log.jsonl").read_text().splitlines()]
    steps = [r["env_steps"] for r in records if r.get("event") == "epoch"]
    assert steps == [256 * e for e in range(1, 9)]
    manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["distributed"]["world_size"] == 2
    ckpt = load_checkpoint(reference / "checkpoints" / "last.pt")
    ranks = ckpt["distributed"]["ranks"]
    assert len(ranks) == 2 and ranks[1]["env"]["rng"]["instance_offset"] == 4


def test_zero_checkpoint_resumes_and_the_run_equals_the_one_without_zero(workdir, reference):
    zero = ["--set", "distributed.zero=true"]
    res = _saferl(
        workdir, "train", "--config", "tiny.yaml", "--name", "zero", "--nproc", "2", *zero,
        "--set", "train.total_steps=1024",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    run = workdir / "runs" / "zero"
    res = _saferl(workdir, "train", "--resume", str(run), "--nproc", "2", "--set",
                  "train.total_steps=2048")  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(json.loads((run / "manifest.json").read_text())["resumes"]) == 1
    _same_weights(run, reference)  # ZeRO's Adam shards take the same steps, bit for bit
    _same_rows(run, reference)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _has_rank(pid: int, rank: int) -> bool:
    try:
        return f"RANK={rank}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs /proc")
def test_elastic_restart_after_sigkill_of_a_worker_equals_the_uninterrupted_run(workdir, reference):
    run = workdir / "runs" / "elastic"
    proc = _torchrun(
        workdir, ["--standalone", "--nproc-per-node=2", "--max-restarts=1"], "--name", "elastic"
    )
    killed = None
    deadline = time.monotonic() + TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        if killed is None and (run / "manifest.json").is_file():
            try:
                checkpoints = json.loads((run / "manifest.json").read_text())["checkpoints"]
            except (ValueError, KeyError):
                checkpoints = {}
            if "epoch_2.pt" in checkpoints:
                workers = [c for c in _children(proc.pid) if _has_rank(c, 1)]
                if workers:
                    os.kill(workers[0], signal.SIGKILL)
                    killed = workers[0]
        time.sleep(0.02)
    out = proc.communicate(timeout=60)[0]
    assert killed is not None, out[-3000:]
    assert proc.returncode == 0, out[-3000:]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished"
    assert [r["epoch"] for r in manifest["resumes"]] in ([2], [4], [6])
    _same_weights(run, reference)
    _same_rows(run, reference)


def test_two_nodes_meeting_at_a_c10d_rendezvous_equal_the_single_node_run(workdir, reference):
    port = _free_port()
    args = ["--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d", "--max-restarts=0"]
    args += [f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=two-nodes"]
    nodes = [_torchrun(workdir, args, "--name", "nodes") for _ in range(2)]
    outs = [p.communicate(timeout=TIMEOUT)[0] for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], outs[0][-2000:] + outs[1][-2000:]
    _same_weights(workdir / "runs" / "nodes", reference)
    _same_rows(workdir / "runs" / "nodes", reference)


def test_a_world_that_cannot_form_is_one_line_and_exit_2(tmp_path):
    env = _env()
    env.update(RANK="0", WORLD_SIZE="2", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
    env["MASTER_PORT"] = str(_free_port())
    res = _saferl(
        tmp_path, "train", "--set", "distributed.timeout_s=2", "--set", "env.num_envs=8",
        env=env, timeout=120,
    )  # fmt: skip
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: distributed: the process group did not form within ")
    assert "rank 0 of 2" in lines[0] and "Traceback" not in res.stderr
    assert not (tmp_path / "runs").exists()


def test_launcher_user_errors_are_one_line(workdir, tmp_path):
    res = _saferl(workdir, "train", "--config", "tiny.yaml", "--max-restarts", "1")
    assert res.returncode == 2
    assert res.stderr.strip() == (
        "error: --max-restarts needs --nproc N (or give --max-restarts to torchrun itself)"
    )
    res = _saferl(workdir, "train", "--config", "tiny.yaml", "--nproc", "3", "--runs-dir",
                  str(tmp_path))  # fmt: skip
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert lines[-1] == (
        "error: env.num_envs: 8 instances do not split evenly over 3 ranks (use a multiple of 3)"
    )
    if len(os.sched_getaffinity(0)) < 3:
        assert lines[0].startswith("warning: --nproc 3 is more than the ")
    assert not any(tmp_path.iterdir())


def test_resuming_with_another_number_of_processes_is_one_line(workdir, reference):
    res = _saferl(workdir, "train", "--resume", str(reference), "--nproc", "4")
    assert res.returncode == 2  # (after a warning where there are fewer than 4 cores)
    assert res.stderr.strip().splitlines()[-1] == (
        f"error: --nproc 4: {reference} was trained on 2 process(es); resume it with as many "
        "(each one's env state is in its checkpoint)"
    )


def test_a_checkpoint_of_two_ranks_resumes_only_on_two(workdir, reference, tmp_path):
    copy = shutil.copytree(reference, tmp_path / "ref")
    res = _saferl(workdir, "train", "--resume", str(copy))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1] == (
        "error: the checkpoint was taken by 2 rank(s); resume it with 2 (got 1): each rank's "
        "env state is in it"
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_distributed_example_without_gpus_says_so_and_runs_cpu_processes(workdir):
    example = Path(__file__).resolve().parents[2] / "examples" / "distributed_training.py"
    res = subprocess.run(
        [sys.executable, str(example), "--gpus-per-node", "2", "--batch-size", "256",
         "--num-envs", "8", "--total-steps", "512", "--use-zero-optimizer", "--name", "example",
         "--set", "algo.hidden_sizes=[16, 16]", "--set", "train.progress=false",
         "--set", "train.best_eval_episodes=0"],
        cwd=workdir, env=_env(), capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.splitlines()[0].startswith("no GPU here: running 2 CPU processes with gloo")
    manifest = json.loads((workdir / "runs" / "example" / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["distributed"]["zero"] is True
    assert manifest["distributed"]["backend"] == "gloo"
