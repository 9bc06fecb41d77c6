"""Studies: storage, samplers and pruners, worker processes, stale trials, the tune entry point.

:func:`run_tune` is what ``saferl tune`` calls. It validates everything first (config, space,
sampler/pruner combination, storage URL) so that a user error writes nothing, opens or creates
the study, enqueues warm-start trials once, then runs ``hyperopt.n_workers`` worker loops (in
this process for one worker, else in spawned processes) and finally writes the report.

A worker loop, under a per-machine lock: fail the stale trials (a worker process on this machine
that is gone, or a heartbeat older than ``hyperopt.stale_after_s`` from another machine) and
re-enqueue their parameters, stop when the study holds ``n_trials`` finished (complete or pruned)
plus running trials, else ``study.ask()``; then, outside the lock, run the trial and ``tell``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from saferl.config import Config, ConfigError, HyperoptConfig, _short, config_to_dict, load_config
from saferl.training.hyperopt.space import SearchSpace, default_space, parse_space

logger = logging.getLogger(__name__)

__all__ = [
    "OPTUNA_EXTRA",
    "TuneError",
    "import_optuna",
    "open_storage",
    "run_tune",
    "storage_url",
]

OPTUNA_EXTRA = "pip install 'saferl[tune]'"
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_RDB_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+psycopg://", "postgresql+psycopg2://")
_MAX_FAILS_IN_A_ROW = 5
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


class TuneError(ConfigError):
    """A user error of ``saferl tune``: a one-line message (exit status 2)."""


def import_optuna() -> Any:
    """``optuna``, or a one-line error naming the extra that installs it."""
    try:
        import optuna
    except ModuleNotFoundError as exc:
        if exc.name == "optuna":
            raise TuneError(f"saferl tune needs Optuna: {OPTUNA_EXTRA}") from None
        raise
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


# --------------------------------------------------------------------------------------------
# storage
# --------------------------------------------------------------------------------------------


def study_dir(runs_dir: str | Path, study_name: str) -> Path:
    """``<runs_dir>/studies/<study>``: the study's files, trials and (by default) journal."""
    return Path(runs_dir) / "studies" / study_name


def storage_url(hopt: HyperoptConfig, runs_dir: str | Path) -> str:
    """The storage of the study: ``hyperopt.storage`` or the default journal file."""
    if hopt.storage:
        return hopt.storage
    return str(study_dir(runs_dir, hopt.study_name) / "journal.log")


def is_rdb(url: str) -> bool:
    """Whether the storage is a database URL (SQLite/PostgreSQL) rather than a journal file."""
    return url.startswith(_RDB_SCHEMES)


def redact(url: str) -> str:
    """The URL without its password (for messages and the summary)."""
    if not is_rdb(url):
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def check_storage_url(url: str, n_workers: int) -> None:
    """Refuse storage URLs saferl does not support, and SQLite shared by several processes."""
    if "://" in url and not is_rdb(url):
        raise TuneError(
            f"--storage {redact(url)[:200]}: must be a journal file path, sqlite:///FILE or "
            "postgresql://USER@HOST:PORT/DB"
        )
    if url.startswith("sqlite:///") and n_workers > 1:
        raise TuneError(
            "--n-workers: SQLite storage is for one process; use the default journal file or "
            "PostgreSQL for several workers"
        )
    if url.startswith("postgresql"):
        try:
            import psycopg  # noqa: F401
        except ModuleNotFoundError:
            try:
                import psycopg2  # noqa: F401
            except ModuleNotFoundError:
                raise TuneError(
                    "--storage postgresql://...: needs a PostgreSQL driver: "
                    "pip install 'saferl[postgres]'"
                ) from None


def _driver_url(url: str) -> str:
    """``postgresql://`` with the installed driver named (psycopg 3, else psycopg2)."""
    if not url.startswith("postgresql://"):
        return url
    try:
        import psycopg  # noqa: F401

        driver = "psycopg"
    except ModuleNotFoundError:
        driver = "psycopg2"
    return f"postgresql+{driver}://" + url[len("postgresql://") :]


def open_storage(url: str) -> Any:
    """An Optuna storage for ``url`` (journal file, SQLite or PostgreSQL).

    Raises:
        TuneError: the storage cannot be opened (one line, password hidden).
    """
    optuna = import_optuna()
    try:
        if is_rdb(url):
            kwargs: dict[str, Any] = {"pool_pre_ping": True}
            if url.startswith("postgresql"):
                kwargs["connect_args"] = {"connect_timeout": 10}
            return optuna.storages.RDBStorage(_driver_url(url), engine_kwargs=kwargs)
        from optuna.storages.journal import JournalFileBackend

        path = Path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except Exception as exc:
        cause = getattr(exc, "orig", None) or exc
        text = " ".join(str(cause).split())
        text = text if len(text) <= 200 else text[:200] + "…"
        raise TuneError(
            f"--storage {redact(url)}: cannot open it ({cause.__class__.__name__}: {text})"
        ) from None


# --------------------------------------------------------------------------------------------
# samplers and pruners
# --------------------------------------------------------------------------------------------


def directions(hopt: HyperoptConfig) -> list[str]:
    """Optuna's directions of the objective(s)."""
    if hopt.objective == "multi":
        return ["maximize", "minimize", "minimize"]
    return ["maximize"]


def objective_names(hopt: HyperoptConfig) -> list[str]:
    """Display names of the objective values."""
    if hopt.objective == "multi":
        return ["return", "cost", "wall seconds" if hopt.compute == "wall_time" else "env steps"]
    return ["composite"]


def resolved_pruner(hopt: HyperoptConfig) -> str:
    """``hyperopt.pruner`` with ``auto`` resolved (median for composite, rule for multi)."""
    if hopt.pruner == "auto":
        return "rule" if hopt.objective == "multi" else "median"
    return hopt.pruner


def check_combination(hopt: HyperoptConfig) -> None:
    """Refuse sampler/pruner choices that cannot work with the objective."""
    if hopt.objective == "multi" and hopt.pruner in ("median", "hyperband", "successive_halving"):
        raise TuneError(
            f"--pruner {hopt.pruner}: Optuna's pruners do not support multi-objective studies; "
            "use rule (saferl's rule, the default for --objective multi) or none"
        )
    if hopt.objective == "multi" and hopt.sampler == "cmaes":
        raise TuneError(
            "--sampler cmaes: single objective only; for --objective multi use tpe, nsga2, "
            "random, gp or qmc"
        )


def sampler_seed(seed: int, worker: int, existing: int) -> int:
    """A worker's sampler seed: from the study seed, the worker's index and the number of trials
    the study held when it started (so a restarted study does not repeat earlier draws)."""
    return int(np.random.SeedSequence([seed, worker, existing]).generate_state(1)[0])


def make_sampler(hopt: HyperoptConfig, seed: int) -> Any:
    """The Optuna sampler ``hyperopt.sampler`` seeded with ``seed``."""
    optuna = import_optuna()
    s = optuna.samplers
    name = hopt.sampler
    if name == "tpe":
        return s.TPESampler(seed=seed)
    if name == "random":
        return s.RandomSampler(seed=seed)
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ModuleNotFoundError:
            raise TuneError(f"--sampler cmaes: needs the cmaes package: {OPTUNA_EXTRA}") from None
        return s.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "nsga2":
        return s.NSGAIISampler(seed=seed)
    if name == "gp":
        return s.GPSampler(seed=seed, warn_independent_sampling=False)
    if name == "qmc":
        return s.QMCSampler(seed=seed, warn_independent_sampling=False)
    raise TuneError(f"--sampler: unknown sampler {name!r}")  # pragma: no cover (Literal)


def _first_step_after(grid: Sequence[int], warmup: int) -> int:
    return next((g for g in grid if g >= warmup), grid[-1])


def make_pruner(hopt: HyperoptConfig) -> Any:
    """Optuna's pruner for a composite study (NopPruner for ``rule``/``none``/multi)."""
    from saferl.training.hyperopt.trial import report_grid

    optuna = import_optuna()
    p = optuna.pruners
    name = resolved_pruner(hopt)
    grid = report_grid(hopt.trial_steps, hopt.report_points)
    warmup = int(hopt.prune_warmup * hopt.trial_steps)
    first = _first_step_after(grid, warmup)
    if name == "median":
        return p.MedianPruner(n_startup_trials=hopt.prune_min_trials, n_warmup_steps=warmup)
    if name == "hyperband":
        return p.HyperbandPruner(min_resource=first, max_resource=hopt.trial_steps)
    if name == "successive_halving":
        return p.SuccessiveHalvingPruner(min_resource=first)
    return p.NopPruner()


# --------------------------------------------------------------------------------------------
# the study's record: base config, space and settings stored with it
# --------------------------------------------------------------------------------------------

# Settings that define what a trial is; they must not change when a study is continued.
_DEFINING = (
    "objective",
    "compute",
    "trial_steps",
    "eval_episodes",
    "eval_checkpoint",
    "cost_penalty",
    "report_points",
)
# Config parts that may differ between machines/runs of the same study.
_LOCAL = ("hyperopt", "tracking")
_LOCAL_TRAIN = ("name", "runs_dir", "progress")


def _trial_relevant(cfg_dict: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in cfg_dict.items() if k not in _LOCAL}
    out["train"] = {k: v for k, v in cfg_dict.get("train", {}).items() if k not in _LOCAL_TRAIN}
    return out


def _first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for k in sorted(set(a) | set(b), key=str):
            d = _first_difference(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else str(k))
            if d:
                return d
        return None
    if a != b:
        return f"{prefix}: {_short(a, 40)} in the study, {_short(b, 40)} now"
    return None


def study_record(base: Config, space: SearchSpace) -> dict[str, Any]:
    """What the study stores about itself (user attributes)."""
    from saferl import __version__

    optuna = import_optuna()
    import torch

    hopt = base.hyperopt
    return {
        "saferl_base_config": config_to_dict(base),
        "saferl_space": space.to_dict(),
        "saferl_settings": {k: getattr(hopt, k) for k in _DEFINING},
        "saferl_objectives": objective_names(hopt),
        "versions": {
            "saferl": __version__,
            "optuna": optuna.__version__,
            "torch": torch.__version__,
            "python": sys.version.split()[0],
        },
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def check_compatible(study: Any, record: Mapping[str, Any], hopt: HyperoptConfig) -> None:
    """A continued study must keep its base config, space and defining settings."""
    attrs = study.user_attrs
    settings = attrs.get("saferl_settings")
    if settings is None:
        return
    for key in _DEFINING:
        if settings.get(key) != record["saferl_settings"][key]:
            flag = {"objective": "--objective"}.get(key, f"hyperopt.{key}")
            raise TuneError(
                f"{flag}: study '{hopt.study_name}' was created with {key}="
                f"{settings.get(key)!r}, not {record['saferl_settings'][key]!r}; use another "
                "--study name"
            )
    diff = _first_difference(
        _trial_relevant(attrs.get("saferl_base_config", {})),
        _trial_relevant(record["saferl_base_config"]),
    )
    if diff:
        raise TuneError(
            f"--config: study '{hopt.study_name}' was created with another base config "
            f"({diff}); use another --study name"
        )
    diff = _first_difference(attrs.get("saferl_space"), record["saferl_space"])
    if diff:
        raise TuneError(
            f"--space: study '{hopt.study_name}' was created with another search space "
            f"({diff}); use another --study name"
        )


def space_from_record(study: Any) -> tuple[Config, SearchSpace]:
    """The base config and space a study was created with (for reports and warm starts)."""
    from saferl.config import config_from_dict

    attrs = study.user_attrs
    if "saferl_base_config" not in attrs:
        raise TuneError(f"--study {study.study_name}: not a saferl study (no base config stored)")
    base = config_from_dict(attrs["saferl_base_config"])
    space = parse_space(attrs["saferl_space"], base, source=f"study {study.study_name}")
    return base, space


# --------------------------------------------------------------------------------------------
# workers and stale trials
# --------------------------------------------------------------------------------------------


def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart;
    None when there is no such live process (a zombie, killed but not yet reaped, is dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def worker_id() -> str:
    """``host:pid:start`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}:{_proc_start(os.getpid()) or '?'}"


def _alive(worker: str) -> bool | None:
    """Whether the worker process is alive (None: another machine, cannot tell)."""
    host, _, rest = worker.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    if Path("/proc").is_dir():
        now = _proc_start(pid)
        return now is not None and (start == "?" or now == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_reason(trial: Any, stale_after_s: float, now: float) -> str | None:
    """Why a RUNNING trial is stale (None: its worker is alive or may be)."""
    worker = trial.user_attrs.get("worker")
    if worker is not None:
        alive = _alive(worker)
        if alive is False:
            return f"worker {worker} is gone"
        if alive is True:
            return None
        beat = trial.user_attrs.get("heartbeat")
        if beat is not None and now - float(beat) > stale_after_s:
            return f"no heartbeat from worker {worker} for {now - float(beat):.0f} s"
        return None
    start = trial.datetime_start
    if start is not None and now - start.timestamp() > stale_after_s:
        return f"running for {now - start.timestamp():.0f} s without a worker record"
    return None


def fail_stale_trials(study: Any, hopt: HyperoptConfig) -> list[int]:
    """Mark stale RUNNING trials FAIL and re-enqueue their parameters (at most
    ``hyperopt.max_retries`` times per original trial); returns the failed trial numbers.

    Optuna's own heartbeat handling works only inside ``study.optimize`` with RDB storage; this
    covers journal storage and saferl's ask/tell loop on every storage.
    """
    optuna = import_optuna()
    state = optuna.trial.TrialState
    failed = []
    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(state.RUNNING,)):
        reason = stale_reason(t, hopt.stale_after_s, now)
        if reason is None:
            continue
        try:
            study._storage.set_trial_state_values(t._trial_id, state=state.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker got there first
        failed.append(t.number)
        retries = int(t.user_attrs.get("retries", 0))
        if not t.params:
            logger.warning(
                "trial %d failed (%s) before sampling; not re-enqueued", t.number, reason
            )
        elif retries >= hopt.max_retries:
            logger.warning(
                "trial %d failed (%s); its parameters were retried %d times already "
                "(hyperopt.max_retries): not re-enqueued",
                t.number,
                reason,
                retries,
            )
        else:
            study.enqueue_trial(
                dict(t.params),
                user_attrs={
                    "retry_of": int(t.user_attrs.get("retry_of", t.number)),
                    "retries": retries + 1,
                },
            )
            logger.warning("trial %d failed (%s); parameters re-enqueued", t.number, reason)
    return failed


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover (not POSIX)
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@dataclass
class WorkerJob:
    """What a worker process needs (picklable)."""

    config: dict[str, Any]
    space: dict[str, Any]
    url: str
    index: int
    deadline: float | None
    log_level: str | None = None


def _open_study(url: str, base: Config, sampler: Any = None) -> Any:
    optuna = import_optuna()
    hopt = base.hyperopt
    return optuna.create_study(
        storage=open_storage(url),
        study_name=hopt.study_name,
        directions=directions(hopt),
        sampler=sampler,
        pruner=make_pruner(hopt),
        load_if_exists=True,
    )


def worker_loop(job: WorkerJob, sampler: Any = None) -> int:
    """Run trials until the study holds ``n_trials`` finished ones (or the deadline, a signal,
    or repeated failures); returns an exit code (0, 1 failed, 130 interrupted)."""
    from saferl.config import config_from_dict
    from saferl.training.hyperopt.trial import (
        PruneRule,
        TrialFailed,
        TrialInterrupted,
        run_trial,
    )

    optuna = import_optuna()
    state = optuna.trial.TrialState
    base = config_from_dict(job.config)
    hopt = base.hyperopt
    space = parse_space(job.space, base, source="space")
    sd = study_dir(base.train.runs_dir, hopt.study_name)
    trials_dir = sd / "trials"
    lock = sd / ".ask.lock"
    study = _open_study(job.url, base)
    if sampler is None:
        seed = hopt.seed if hopt.seed is not None else base.train.seed
        sampler = make_sampler(hopt, sampler_seed(seed, job.index, len(study.trials)))
    study.sampler = sampler
    pruner_name = resolved_pruner(hopt)
    multi = hopt.objective == "multi"
    me = worker_id()
    fails_in_a_row = 0
    while True:
        if job.deadline is not None and time.time() >= job.deadline:
            logger.info("worker %d: --timeout reached", job.index)
            return EXIT_OK
        with _file_lock(lock):
            fail_stale_trials(study, hopt)
            trials = study.get_trials(deepcopy=False)
            done = sum(t.state in (state.COMPLETE, state.PRUNED) for t in trials)
            running = sum(t.state == state.RUNNING for t in trials)
            if done + running >= hopt.n_trials:
                return EXIT_OK
            trial = study.ask()
            trial.set_user_attr("worker", me)
            trial.set_user_attr("heartbeat", time.time())
        rule = None
        if pruner_name == "rule":
            rule = PruneRule(
                warmup_steps=int(hopt.prune_warmup * hopt.trial_steps),
                cost_factor=hopt.prune_cost_factor,
                quantile=hopt.prune_quantile,
                min_trials=hopt.prune_min_trials,
                reference=PruneRule.reference_from(
                    study.get_trials(deepcopy=False, states=(state.COMPLETE,))
                ),
            )
        from saferl.training.hyperopt.trial import Heartbeat

        try:
            with Heartbeat(trial, hopt.heartbeat_s):
                outcome = run_trial(
                    trial,
                    base=base,
                    space=space,
                    study_name=hopt.study_name,
                    trials_dir=trials_dir,
                    multi=multi,
                    optuna_pruning=pruner_name in ("median", "hyperband", "successive_halving"),
                    rule=rule,
                )
        except (TrialInterrupted, KeyboardInterrupt) as exc:
            _fail_and_requeue(study, trial, f"interrupted ({exc or 'KeyboardInterrupt'})")
            return EXIT_INTERRUPTED
        except TrialFailed as exc:
            fails_in_a_row += 1
            logger.error("trial %d failed: %s", trial.number, exc)
            with contextlib.suppress(Exception):
                trial.set_user_attr("fail_reason", _short(str(exc), 300))
            study.tell(trial, state=state.FAIL)
        except Exception as exc:
            fails_in_a_row += 1
            logger.error(
                "trial %d raised %s: %s", trial.number, exc.__class__.__name__, exc, exc_info=True
            )
            with contextlib.suppress(Exception):
                trial.set_user_attr("fail_reason", f"{exc.__class__.__name__}: {exc}"[:300])
            study.tell(trial, state=state.FAIL)
        else:
            fails_in_a_row = 0
            for k, v in outcome.attrs.items():
                trial.set_user_attr(k, v)
            if outcome.pruned:
                study.tell(trial, state=state.PRUNED)
                logger.info(
                    "trial %d pruned at %d env steps: %s",
                    trial.number,
                    outcome.attrs["pruned_at"],
                    outcome.attrs["pruned_reason"],
                )
            else:
                a = outcome.attrs
                trial.set_constraint("cost", a["eval_cost"] - a["cost_limit"])
                try:
                    study.tell(trial, outcome.values)
                except RuntimeError as exc:
                    # GridSampler calls study.stop() once its grid is done, which Optuna allows
                    # only inside study.optimize; the trial is stored by then (tell's finally).
                    if "Study.stop" not in str(exc):
                        raise
                    logger.info("the sampler's search space is exhausted")
                    return EXIT_OK
                logger.info(
                    "trial %d: return %.4g, cost %.4g / limit %.4g (%s), %.1f s",
                    trial.number,
                    a["eval_return"],
                    a["eval_cost"],
                    a["cost_limit"],
                    "feasible" if a["eval_cost"] <= a["cost_limit"] else "infeasible",
                    a["train_seconds"],
                )
        if fails_in_a_row >= _MAX_FAILS_IN_A_ROW:
            logger.error(
                "worker %d: %d trials in a row failed; stopping", job.index, fails_in_a_row
            )
            return EXIT_FAILED


def _fail_and_requeue(study: Any, trial: Any, reason: str) -> None:
    optuna = import_optuna()
    with contextlib.suppress(Exception):
        trial.set_user_attr("fail_reason", reason)
    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError, ValueError):
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    if trial.params:
        study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number, "retries": 0})
    logger.warning("trial %d %s; parameters re-enqueued", trial.number, reason)


def _worker_main(job: WorkerJob) -> int:
    """Entry point of a spawned worker process."""
    from saferl.log import setup_logging

    if job.log_level:
        setup_logging(job.log_level)
    try:
        return worker_loop(job)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _spawn_workers(jobs: Sequence[WorkerJob]) -> int:
    import multiprocessing as mp
    from multiprocessing.connection import wait

    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_exit_with, args=(job,), name=f"saferl-tune-{job.index}") for job in jobs
    ]
    for p in procs:
        p.start()
    codes = []
    try:
        # Reap each worker as soon as it exits (a killed one must not linger as a zombie).
        pending = {p.sentinel: p for p in procs}
        while pending:
            for sentinel in wait(list(pending)):
                pending.pop(sentinel).join()
    except KeyboardInterrupt:  # the workers got the signal too: let them checkpoint and leave
        for p in procs:
            p.join(timeout=120)
            if p.is_alive():
                p.terminate()
                p.join()
    for p, job in zip(procs, jobs, strict=True):
        code = p.exitcode if p.exitcode is not None else EXIT_FAILED
        if code < 0:
            logger.error("worker %d (pid %d) was killed by signal %d", job.index, p.pid, -code)
            code = EXIT_FAILED
        codes.append(code)
    if any(c == EXIT_INTERRUPTED for c in codes):
        return EXIT_INTERRUPTED
    return max(codes) if codes else EXIT_OK


def _exit_with(job: WorkerJob) -> None:
    sys.exit(_worker_main(job))


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------


def prepare(
    config_path: str | None,
    overrides: Sequence[str],
    *,
    space_path: str | None = None,
) -> tuple[Config, SearchSpace]:
    """Load and validate the base config and the space (nothing is written).

    Raises:
        ConfigError: a one-line message naming the option, file or field at fault.
    """
    from saferl.registry import ALGORITHMS, ENVS, RegistryError
    from saferl.training.hyperopt.space import load_space_file

    base = load_config(config_path, overrides)
    hopt = base.hyperopt
    if not _STUDY_NAME.match(hopt.study_name):
        raise TuneError(
            f"--study: must be 1-100 letters, digits, '.', '_' or '-' (not starting with '.', "
            f"'_' or '-'), got {_short(hopt.study_name)}"
        )
    check_combination(hopt)
    check_storage_url(storage_url(hopt, base.train.runs_dir), hopt.n_workers)
    for registry, name, fld in (
        (ENVS, base.env.id, "env.id"),
        (ALGORITHMS, base.algo.name, "algo.name"),
    ):
        try:
            registry.get(name)
        except RegistryError as exc:
            raise TuneError(f"{fld}: {exc}") from None
    if space_path is not None:
        space = load_space_file(space_path, base)
    elif hopt.search_space:
        space = parse_space(hopt.search_space, base, source="hyperopt.search_space")
    else:
        space = default_space(base.algo.name, base)
    spe = [base.train.steps_per_epoch]
    for p in space.all_params():
        if p.field == "train.steps_per_epoch":
            spe.append(max(p.choices) if p.kind == "categorical" else int(p.high))
    if max(spe) > hopt.trial_steps:
        raise TuneError(
            f"--trial-steps: {hopt.trial_steps} is less than one epoch of "
            f"train.steps_per_epoch={max(spe)} (base config or space); a trial would overrun "
            "its budget"
        )
    if hopt.sampler == "cmaes":
        make_sampler(hopt, 0)  # a missing cmaes package is a user error, found before any write
    return base, space


def warm_start(study: Any, source: Any, space: SearchSpace, top: int = 5) -> int:
    """Enqueue the best trials of ``source`` (the feasible best, or its Pareto front) whose
    parameters fit this study's space; returns how many were enqueued."""
    optuna = import_optuna()
    state = optuna.trial.TrialState
    if len(source.directions) > 1:
        best = list(source.best_trials)
    else:
        complete = [t for t in source.get_trials(states=(state.COMPLETE,)) if t.value is not None]
        feasible = [t for t in complete if all(v <= 0 for v in t.constraints.values())]
        pool = feasible or complete
        sign = 1 if source.direction == optuna.study.StudyDirection.MAXIMIZE else -1
        best = sorted(pool, key=lambda t: -sign * float(t.value))
    names = space.by_name()
    n = 0
    for t in best[:top]:
        params = {k: v for k, v in t.params.items() if k in names and names[k].contains(v)}
        if params:
            study.enqueue_trial(
                params, user_attrs={"warm_start_from": f"{source.study_name}#{t.number}"}
            )
            n += 1
    return n


def run_tune(
    config_path: str | None,
    overrides: Sequence[str] = (),
    *,
    space_path: str | None = None,
    warm_start_study: str | None = None,
    warm_start_storage: str | None = None,
    plots: bool = True,
    sampler: Any = None,
    log_level: str | None = None,
) -> int:
    """What ``saferl tune`` calls: run (or continue) a study, then write its report.

    Args:
        config_path: base config YAML (None: the packaged default, as ``saferl train``).
        overrides: ``--set`` overrides, ``hyperopt.*`` included (the CLI turns its flags into
            those).
        space_path: a search-space YAML file (default: ``hyperopt.search_space``, else the
            algorithm's default space).
        warm_start_study: enqueue the best trials of this study (once per study).
        warm_start_storage: its storage (default: this study's).
        plots: write the HTML/PNG plots of the report.
        sampler: an Optuna sampler object to use instead of ``hyperopt.sampler`` (library use,
            e.g. ``GridSampler``; one worker only).
        log_level: console log level for spawned workers.

    Returns:
        0 done, 1 a worker failed, 130 interrupted (the study continues when run again).

    Raises:
        TuneError / ConfigError: user errors, one line, before anything is written.
    """
    from saferl.training.hyperopt.report import write_report

    import_optuna()
    base, space = prepare(config_path, overrides, space_path=space_path)
    hopt = base.hyperopt
    if sampler is not None and hopt.n_workers > 1:
        raise TuneError("--n-workers: a sampler object can only drive one worker")
    url = storage_url(hopt, base.train.runs_dir)
    record = study_record(base, space)
    if warm_start_study is not None and warm_start_study == hopt.study_name:
        raise TuneError("--warm-start: a study cannot warm-start itself")
    storage = open_storage(url)  # the first thing that writes
    optuna = import_optuna()
    existing = {s.study_name for s in optuna.study.get_all_study_summaries(storage)}
    source = None
    if warm_start_study is not None:
        ws_storage = open_storage(warm_start_storage) if warm_start_storage else storage
        names = {s.study_name for s in optuna.study.get_all_study_summaries(ws_storage)}
        if warm_start_study not in names:
            raise TuneError(
                f"--warm-start: no study '{warm_start_study}' in "
                f"{redact(warm_start_storage or url)}"
            )
        source = optuna.load_study(study_name=warm_start_study, storage=ws_storage)
    if hopt.study_name in existing:
        check_compatible(
            optuna.load_study(study_name=hopt.study_name, storage=storage), record, hopt
        )
    study = optuna.create_study(
        storage=storage,
        study_name=hopt.study_name,
        directions=directions(hopt),
        load_if_exists=True,
    )
    if "saferl_settings" not in study.user_attrs:
        for k, v in record.items():
            study.set_user_attr(k, v)
    sd = study_dir(base.train.runs_dir, hopt.study_name)
    sd.mkdir(parents=True, exist_ok=True)
    if source is not None:
        key = f"warm_started_from:{source.study_name}"
        if key not in study.user_attrs:
            n = warm_start(study, source, space)
            study.set_user_attr(key, n)
            logger.info("enqueued %d trials of study '%s'", n, source.study_name)
    deadline = time.time() + hopt.timeout_s if hopt.timeout_s else None
    cfg_dict = config_to_dict(base)
    jobs = [
        WorkerJob(cfg_dict, space.to_dict(), url, i, deadline, log_level)
        for i in range(hopt.n_workers)
    ]
    logger.info(
        "study '%s' (%s, %s objective, sampler %s, pruner %s) in %s: %d finished trials wanted, "
        "%d worker(s)",
        hopt.study_name,
        space.source,
        hopt.objective,
        hopt.sampler if sampler is None else type(sampler).__name__,
        resolved_pruner(hopt),
        redact(url),
        hopt.n_trials,
        hopt.n_workers,
    )
    if hopt.n_workers == 1:
        try:
            code = worker_loop(jobs[0], sampler=sampler)
        except KeyboardInterrupt:
            code = EXIT_INTERRUPTED
    else:
        code = _spawn_workers(jobs)
    paths = write_report(study_name=hopt.study_name, url=url, out_dir=sd, plots=plots)
    print(
        f"saferl tune: study '{hopt.study_name}' report in {paths['summary'].parent}/", flush=True
    )
    return code


def run_report(study_name: str, url: str, out_dir: str | Path, plots: bool = True) -> int:
    """``saferl tune --report``: rebuild a study's files from its storage."""
    from saferl.training.hyperopt.report import write_report

    optuna = import_optuna()
    if not is_rdb(url) and not Path(url).is_file():  # do not create an empty journal
        raise TuneError(f"--study: no study '{study_name}' in {url} (no such journal file)")
    storage = open_storage(url)
    names = {s.study_name for s in optuna.study.get_all_study_summaries(storage)}
    if study_name not in names:
        raise TuneError(f"--study: no study '{study_name}' in {redact(url)}")
    paths = write_report(study_name=study_name, url=url, out_dir=Path(out_dir), plots=plots)
    print(f"saferl tune: study '{study_name}' report in {paths['summary'].parent}/", flush=True)
    return EXIT_OK
