"""A run survives being killed at any moment and a full disk at any write: it resumes (or, with no
complete checkpoint yet, restarts from scratch) and ends exactly like the run that was never
interrupted: the same metrics rows (without the wall-clock columns) and the same weights, env and
RNG states.

Kills are real ``SIGKILL``s of a forked child that trains the stand-ins (no ``finally`` runs, no
buffer is flushed). The kill points are the run's own writes, counted by a hook on
:func:`saferl.utils.atomic_write` (every checkpoint, manifest, config, metrics rewrite and plot
goes through it) and on the metrics appends: the child dies with a half-written temp file of
write *k*, or right after an append, or after a fixed delay. Every write of the first checkpoint
cycle is a kill point; later writes are sampled (``SAFERL_KILL_ALL=1`` sweeps them all). The
points tried are printed (``pytest -s``).

A full disk is injected the same way (``ENOSPC`` from write *k* on, as on a disk that stays
full), and for real on a small tmpfs where the tests run as root.
"""

from __future__ import annotations

import errno
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import _standins
import pytest
from _standins import HERE, toy_config, toy_overrides
from test_trainer import assert_same_training_state, deterministic

import saferl.utils
from saferl.training.checkpoint import RunManifest
from saferl.training.tracking import LocalTracker, read_metrics
from saferl.training.trainer import Trainer, TrainError

# 5 epochs of 64 steps, a checkpoint every 2: the first checkpoint cycle is epochs 1-2.
RUN = {"train.total_steps": 320, "train.checkpoint_every": 2}
KILL_POINTS: list[str] = []


def _config(runs_dir: Path, name: str, **extra: object):
    return toy_config(runs_dir, name, **{**RUN, **extra})


class Writes:
    """Counts the run's writes (``atomic_write`` calls and metrics appends) and acts at one."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.files: list[str] = []
        self.appends = 0
        self.action: Callable[[str, int, str], None] | None = None
        original_write = saferl.utils.atomic_write
        original_append = LocalTracker._append

        def atomic_write(path, write):
            self.files.append(Path(path).name)
            k, action = len(self.files), self.action
            if action is None:
                return original_write(path, write)
            return original_write(path, lambda f: action("write", k, str(path), f, write))

        def append(path, text):
            self.appends += 1
            if self.action is not None:
                self.action("append-before", self.appends, str(path), None, None)
            original_append(path, text)
            if self.action is not None:
                self.action("append", self.appends, str(path), None, None)

        monkeypatch.setattr(saferl.utils, "atomic_write", atomic_write)
        monkeypatch.setattr(LocalTracker, "_append", staticmethod(append))


def _die_at(kind: str, k: int) -> Callable:
    """An action that SIGKILLs the process at write ``k`` (temp file half written) or right
    after append ``k``; other writes go through."""

    def action(what, n, path, f, write):
        if what == "write":
            if kind == "write" and n == k:
                buf = io.BytesIO()
                write(buf)
                data = buf.getvalue()
                f.write(data[: len(data) // 2])
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            write(f)
        elif kind == "append" and n == k:
            os.kill(os.getpid(), signal.SIGKILL)

    return action


def _fork(body: Callable[[], None], *, kill_after: float | None = None, timeout: float = 120):
    """Run ``body`` in a forked child; SIGKILL it after ``kill_after`` seconds if given. Returns
    the child's wait status."""
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 1)
                os.dup2(null.fileno(), 2)
            body()
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + (kill_after if kill_after is not None else timeout)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            assert kill_after is not None, "the child hung"
            return status
        time.sleep(0.005)


def _continue(run: Path, config) -> Trainer:
    """What a user does after a crash: ``--resume`` the run; a directory without config.yaml
    holds no run yet (killed before it was written), so ``--name`` starts it again."""
    if (run / "config.yaml").is_file():
        return Trainer.resume(run, command=["resume"])
    assert not (run / "manifest.json").exists()  # so --name accepts the directory
    return Trainer(config, command=["again"])


def _assert_same_as(ref: Path, run: Path) -> None:
    assert deterministic(read_metrics(run / "metrics.jsonl")) == deterministic(
        read_metrics(ref / "metrics.jsonl")
    )
    assert_same_training_state(ref, run)
    leftovers = [p for d in (run, run / "checkpoints") for p in d.glob(".*.tmp")]
    assert not leftovers, leftovers  # cleaned at the next start


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, list[str], int]:
    """The uninterrupted run, with the list of its writes and the number of appends."""
    _standins.register()  # the autouse fixture registering them is function-scoped
    mp = pytest.MonkeyPatch()
    try:
        writes = Writes(mp)
        root = tmp_path_factory.mktemp("ref")
        assert Trainer(_config(root, "ref"), command=["ref"]).train() == 0
    finally:
        mp.undo()
    return root / "ref", writes.files, writes.appends


def _kill_points(files: list[str], appends: int) -> list[tuple[str, int]]:
    first_last = files.index("last.pt") + 1  # the first checkpoint is complete after this write
    points = [("write", k) for k in range(1, first_last + 2)]
    later = list(range(first_last + 2, len(files) + 1))
    if os.environ.get("SAFERL_KILL_ALL") != "1":
        later = sorted(random.Random(0).sample(later, min(6, len(later))))
    points += [("write", k) for k in later]
    points += [("append", k) for k in (1, 2, appends - 1)]
    return points


def test_sigkill_at_each_write_then_resume_matches_uninterrupted_run(
    tmp_path, reference, monkeypatch
):
    ref, files, appends = reference
    writes = Writes(monkeypatch)
    restarted = resumed = 0
    for kind, k in _kill_points(files, appends):
        name = f"{kind}{k}"
        config = _config(tmp_path, name)
        writes.files.clear()
        writes.appends = 0
        writes.action = _die_at(kind, k)
        status = _fork(lambda config=config: Trainer(config, command=["t"]).train())
        writes.action = None
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (name, status)
        run = tmp_path / name
        target = files[k - 1] if kind == "write" else "metrics row"
        KILL_POINTS.append(f"{kind} {k} ({target})")
        trainer = _continue(run, config)
        restarted += trainer.epoch == 0
        resumed += trainer.epoch > 0
        assert trainer.train() == 0, name
        _assert_same_as(ref, run)
    assert restarted and resumed  # both paths were taken
    print(f"\nkill points ({len(KILL_POINTS)}): {', '.join(KILL_POINTS)}")


def test_sigkill_at_moments_in_time_and_again_during_the_resume(tmp_path, reference, monkeypatch):
    ref, files, _ = reference
    monkeypatch.setenv("SAFERL_TOY_SLEEP", "0.08")  # each update sleeps: kills land anywhere
    for i, delay in enumerate((0.1, 0.25, 0.4, 0.55)):
        config = _config(tmp_path, f"t{i}")
        _fork(lambda config=config: Trainer(config, command=["t"]).train(), kill_after=delay)
        trainer = _continue(tmp_path / f"t{i}", config)
        KILL_POINTS.append(f"after {delay:.2f} s (resumed at epoch {trainer.epoch})")
        assert trainer.train() == 0
        _assert_same_as(ref, tmp_path / f"t{i}")
    # Killed at the first checkpoint write, then again while the restarted run writes it.
    writes = Writes(monkeypatch)
    config = _config(tmp_path, "twice")
    k = files.index("epoch_2.pt") + 1
    writes.action = _die_at("write", k)
    _fork(lambda: Trainer(config, command=["t"]).train())
    writes.files.clear()
    _fork(lambda: Trainer.resume(tmp_path / "twice").train())
    writes.action = None
    manifest = RunManifest(tmp_path / "twice" / "manifest.json").data
    assert manifest["status"] == "running" and not manifest["checkpoints"].get("epoch_2.pt")
    assert Trainer.resume(tmp_path / "twice").train() == 0
    _assert_same_as(ref, tmp_path / "twice")
    manifest = RunManifest(tmp_path / "twice" / "manifest.json").data
    assert [bool(r.get("restarted")) for r in manifest["resumes"]] == [True, True]
    print(f"\nkill points in time: {', '.join(KILL_POINTS[-4:])}; and twice at epoch_2.pt")


# --------------------------------------------------------------------------------------------
# a run with no complete checkpoint
# --------------------------------------------------------------------------------------------


def test_resume_without_a_usable_checkpoint_restarts_from_scratch_and_says_so(
    tmp_path, reference, monkeypatch, caplog
):
    ref, files, _ = reference
    # Killed while the manifest got the first epoch file's hash: best.pt is recorded,
    # epoch_2.pt is on disk without a hash, a half-written manifest temp file is left.
    writes = Writes(monkeypatch)
    writes.action = _die_at("write", files.index("epoch_2.pt") + 2)
    config = _config(tmp_path, "r")
    _fork(lambda: Trainer(config, command=["t"]).train())
    writes.action = None
    run = tmp_path / "r"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "epoch_2.pt"]
    assert list(run.glob(".manifest.json.*.tmp"))
    # --name refuses the directory and points to --resume, which now works.
    with pytest.raises(TrainError, match="--resume"):
        Trainer(config, command=["again"])
    with caplog.at_level("INFO"):
        trainer = Trainer.resume(run, command=["resume"])
    assert trainer.epoch == 0
    assert "restarting the run from scratch" in caplog.text
    assert "epoch_2.pt has no SHA-256" in caplog.text
    assert "removed 1 unfinished temp file" in caplog.text
    discarded = sorted(p.name for p in (run / "checkpoints" / "discarded").iterdir())
    assert discarded == ["best.pt", "epoch_2.pt"]
    assert trainer.train() == 0
    _assert_same_as(ref, run)
    log = (run / "log.jsonl").read_text()
    assert "refusing" in log and "restarting the run from scratch" in log
    entry = RunManifest(run / "manifest.json").data["resumes"][-1]
    assert "no usable checkpoint" in entry["restarted"] and entry["epoch"] == 0


# --------------------------------------------------------------------------------------------
# a full disk
# --------------------------------------------------------------------------------------------


def _disk_full_from(k: int) -> Callable:
    """ENOSPC for write ``k`` and every later write and append (a disk that stays full)."""
    state = {"full": False}

    def action(what, n, path, f, write):
        if what == "write" and n >= k:
            state["full"] = True
        if what == "append":
            return
        if state["full"]:
            if f is not None:
                f.write(b"x")  # the temp file got a little before the disk filled
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        if write is not None:
            write(f)

    return action


def test_disk_full_at_any_checkpoint_write_stops_in_one_line_and_resume_takes_the_newest_valid(
    tmp_path, reference, monkeypatch, caplog
):
    ref, files, _ = reference
    writes = Writes(monkeypatch)
    second_last = [i for i, f in enumerate(files) if f == "last.pt"][1] + 1
    # the case first: last.pt of epoch 4 cannot be replaced, epoch_4.pt is complete
    points = [second_last] + [
        k for k in range(second_last - 3, second_last + 3) if k != second_last
    ]
    for k in points:
        name = f"full{k}"
        writes.files.clear()
        writes.appends = 0
        writes.action = _disk_full_from(k)
        caplog.clear()
        with caplog.at_level("WARNING"):
            trainer = Trainer(_config(tmp_path, name), command=["t"])
            assert trainer.train() == 1, name
        writes.action = None
        errors = [r for r in caplog.records if r.levelname == "ERROR"]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        message = errors[0].getMessage()
        assert "No space left on device" in message and str(tmp_path / name) in message
        assert "\n" not in message and not any(r.exc_info for r in caplog.records)
        assert "No space left on device" in trainer.stop_reason
        # space freed: resume takes the newest checkpoint that verifies
        resumed = Trainer.resume(tmp_path / name, command=["resume"])
        if k == second_last:
            assert resumed.epoch == 4  # epoch_4.pt, not last.pt (epoch 2)
        assert resumed.train() == 0
        _assert_same_as(ref, tmp_path / name)


def test_disk_full_on_a_real_small_tmpfs_then_resume_matches_uninterrupted_run(tmp_path, reference):
    """The CLI on a tmpfs too small for the run (a checkpoint is 28 KiB; 160 KiB fill up while
    last.pt of epoch 4 is replaced, epoch_4.pt being complete): exit 1 with one line naming the
    directory and no traceback; after the tmpfs grows, --resume takes epoch_4.pt (not last.pt of
    epoch 2) and ends like the uninterrupted run."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root (the injected-ENOSPC test covers the logic)")
    ref, _, _ = reference
    mnt = tmp_path / "small"
    mnt.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mnt)], capture_output=True
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.decode().strip()}")
    try:
        sets = [a for o in toy_overrides(**RUN) for a in ("--set", o)]
        cmd = [sys.executable, str(HERE / "_run_toy.py"), "--runs-dir", str(mnt), "--name", "ref"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        res = subprocess.run(cmd + sets, capture_output=True, text=True, timeout=300, env=env)
        assert res.returncode == 1, res.stderr
        assert "Traceback" not in res.stderr and "Logging error" not in res.stderr
        errors = [line for line in res.stderr.splitlines() if line.startswith("ERROR")]
        assert len(errors) == 1, res.stderr
        assert "No space left on device" in errors[0] and str(mnt / "ref") in errors[0]
        recorded = RunManifest(mnt / "ref" / "manifest.json").checkpoints
        newest = max(e["epoch"] for n, e in recorded.items() if n.startswith("epoch_"))
        if "cannot write last.pt" in errors[0]:  # where 160 KiB fill up with today's sizes
            assert recorded["last.pt"]["epoch"] < newest
        subprocess.run(["mount", "-o", "remount,size=16m", str(mnt)], check=True)
        again = subprocess.run(
            [sys.executable, str(HERE / "_run_toy.py"), "--resume", str(mnt / "ref")],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert again.returncode == 0, again.stderr
        assert f"from epoch_{newest}.pt" in again.stderr or f"from last.pt (epoch {newest}," in (
            again.stderr
        )
        _assert_same_as(ref, mnt / "ref")
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
