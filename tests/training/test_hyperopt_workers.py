"""Studies shared by processes: two local workers on a journal file, a killed worker, a killed
and restarted command, and a real PostgreSQL server as the storage of "several machines"."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import yaml

from saferl.config import dump_config, load_config
from saferl.training.hyperopt import run_tune
from saferl.training.hyperopt.study import open_storage

sys.path.insert(0, str(Path(__file__).parent))
from test_hyperopt import PLAIN_SPACE, TRIAL_STEPS, toy_tune_overrides

HERE = Path(__file__).parent
STATE = optuna.trial.TrialState

#: the stand-in runs start from the field defaults (the packaged default is the wheelchair's)
TOY_BASE = str(Path(__file__).parent / "toy_default.yaml")


def toy_files(tmp_path: Path, runs: Path, study: str, **hyperopt: object) -> list[str]:
    """Base config and space files for the command line; returns the common flags."""
    cfg = load_config(TOY_BASE, toy_tune_overrides(runs, study, pruner="none", **hyperopt))
    dump_config(cfg, tmp_path / "base.yaml")
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(PLAIN_SPACE))
    return ["--config", str(tmp_path / "base.yaml"), "--space", str(tmp_path / "space.yaml")]


def tune_cmd(*args: str) -> list[str]:
    return [sys.executable, str(HERE / "_run_tune_toy.py"), "tune", *args]


def journal_study(path: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(str(path)))


def wait_for_running_trial(
    proc: subprocess.Popen, journal: Path, name: str
) -> optuna.trial.FrozenTrial:
    """The first trial that is training (run directory recorded) while the command runs."""
    deadline = time.time() + 120
    while time.time() < deadline:
        assert proc.poll() is None, "the command ended before a trial was seen running"
        if journal.exists():
            try:
                study = journal_study(journal, name)
            except KeyError:  # the study is not created yet
                study = None
            for t in study.get_trials(states=(STATE.RUNNING,)) if study else []:
                if "run_dir" in t.user_attrs and "worker" in t.user_attrs:
                    return t
        time.sleep(0.1)
    raise AssertionError("no trial was seen running")


def test_two_workers_record_every_trial_once_and_a_killed_workers_trial_is_re_enqueued(tmp_path):
    runs = tmp_path / "runs"
    flags = toy_files(tmp_path, runs, "w")
    cmd = tune_cmd(*flags, "--n-trials", "6", "--n-workers", "2")
    journal = runs / "studies" / "w" / "journal.log"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        victim = wait_for_running_trial(proc, journal, "w")
        pid = int(victim.user_attrs["worker"].split(":")[1])
        assert pid != proc.pid  # a worker process, not the command
        os.kill(pid, signal.SIGKILL)
        _out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err[-2000:]  # a worker was killed: reported, not hidden
    assert f"was killed by signal {int(signal.SIGKILL)}" in err

    study = journal_study(journal, "w")
    trials = study.trials
    killed = trials[victim.number]
    assert killed.state == STATE.FAIL
    retries = [t for t in trials if t.user_attrs.get("retry_of") == victim.number]
    assert len(retries) == 1
    assert retries[0].params == killed.params
    assert retries[0].state == STATE.COMPLETE
    finished = [t for t in trials if t.state in (STATE.COMPLETE, STATE.PRUNED)]
    assert len(finished) == 6
    assert [t.number for t in trials] == list(range(len(trials)))
    assert len({t.user_attrs["worker"] for t in trials}) >= 2  # both workers ran trials
    for t in finished:
        manifest = yaml.safe_load((Path(t.user_attrs["run_dir"]) / "manifest.json").read_text())
        assert manifest["status"] == "finished"
        assert manifest["env_steps"] == TRIAL_STEPS
    # trials.csv was written after the last trial, one row per trial
    rows = (runs / "studies" / "w" / "trials.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [t.number for t in trials]

    # starting the command again: the study is complete, nothing runs
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(journal_study(journal, "w").trials) == len(trials)


def test_killed_command_continues_when_started_again_with_the_orphan_re_enqueued(tmp_path):
    runs = tmp_path / "runs"
    flags = toy_files(tmp_path, runs, "k")
    cmd = tune_cmd(*flags, "--n-trials", "2")
    journal = runs / "studies" / "k" / "journal.log"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        victim = wait_for_running_trial(proc, journal, "k")
        proc.send_signal(signal.SIGKILL)  # no clean-up at all
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert journal_study(journal, "k").trials[victim.number].state == STATE.RUNNING

    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    trials = journal_study(journal, "k").trials
    assert trials[victim.number].state == STATE.FAIL
    retry = [t for t in trials if t.user_attrs.get("retry_of") == victim.number]
    assert len(retry) == 1 and retry[0].params == victim.params
    assert retry[0].state == STATE.COMPLETE
    assert sum(t.state == STATE.COMPLETE for t in trials) == 2


# ------------------------------------------------------------------------------------------------
# PostgreSQL
# ------------------------------------------------------------------------------------------------


def _pg_bin() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "pg_ctl").exists():
            return candidate
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url():
    """A throwaway PostgreSQL cluster on 127.0.0.1 (trust auth, data in a temp folder), stopped
    and removed at the end. Fails when it cannot start; skips only where no PostgreSQL is
    installed and the run is not CI (CI must run this test)."""
    bindir = _pg_bin()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed (CI must provide /usr/lib/postgresql/*/bin)")
        pytest.skip("PostgreSQL is not installed on this machine")
    d = Path(tempfile.mkdtemp(prefix="saferl-pg-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(d, "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    data = d / "data"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*as_owner, *args], capture_output=True, text=True, timeout=120)

    res = run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "saferl")
    if res.returncode != 0:
        shutil.rmtree(d, ignore_errors=True)
        pytest.fail(f"initdb failed: {res.stderr[-1000:]}")
    pg_ctl = str(bindir / "pg_ctl")
    opts = f"-k {d} -h 127.0.0.1 -p {port}"
    res = run(pg_ctl, "-D", str(data), "-o", opts, "-l", str(d / "log"), "-w", "start")
    if res.returncode != 0:
        log = (d / "log").read_text() if (d / "log").exists() else ""
        shutil.rmtree(d, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {res.stderr[-500:]} {log[-1000:]}")
    try:
        yield f"postgresql://saferl@127.0.0.1:{port}/postgres"
    finally:
        run(pg_ctl, "-D", str(data), "-m", "fast", "stop")
        shutil.rmtree(d, ignore_errors=True)


def test_postgresql_study_is_shared_by_machines_and_reported_from_the_storage(
    tmp_path, postgres_url
):
    # "machine A": this process, its own runs directory
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(PLAIN_SPACE))
    a = tmp_path / "machine_a"
    overrides = toy_tune_overrides(a, "pg", n_trials=2, pruner="none")
    overrides.append(f"hyperopt.storage={postgres_url}")
    assert run_tune(TOY_BASE, overrides, space_path=str(space)) == 0
    # "machine B": another process and runs directory, the same URL: the study continues there
    b = tmp_path / "machine_b"
    flags = toy_files(tmp_path, b, "pg")
    res = subprocess.run(
        tune_cmd(*flags, "--storage", postgres_url, "--n-trials", "3"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    study = optuna.load_study(study_name="pg", storage=open_storage(postgres_url))
    runs = [Path(t.user_attrs["run_dir"]) for t in study.trials]
    assert [t.state for t in study.trials] == [STATE.COMPLETE] * 3
    assert [r.parent.parent.parent.parent for r in runs] == [a, a, b]
    # a third place rebuilds the report from the storage alone
    c = tmp_path / "machine_c"
    res = subprocess.run(
        tune_cmd("--study", "pg", "--storage", postgres_url, "--runs-dir", str(c), "--report"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    out = c / "studies" / "pg"
    assert len((out / "trials.csv").read_text().splitlines()) == 4
    assert (out / "best.yaml").is_file() and (out / "summary.md").is_file()
    assert (
        "***" not in postgres_url
        and "postgresql://saferl@127.0.0.1" in (out / "summary.md").read_text()
    )
