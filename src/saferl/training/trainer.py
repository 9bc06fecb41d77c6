"""The training loop and the run directory it owns.

One epoch, top to bottom, in :meth:`Trainer.train`::

    collect  -> the algorithm's collector steps the env for train.steps_per_epoch steps
    update   -> algorithm.update(batch); a non-finite loss/parameter rolls it back
    callbacks-> safety monitor, best model, early stopping, schedules, plots, progress
    trackers -> one metrics row (metrics.csv, metrics.jsonl, extra backends)
    checkpoint every train.checkpoint_every epochs (and always at the end)

Run directory ``runs/<name>/`` (docs/training.md): ``config.yaml`` (resolved), ``manifest.json``
(command, seed, git commit, package versions, checkpoint SHA-256s, resumes, status),
``metrics.csv`` + ``metrics.jsonl``, ``checkpoints/{last,best,epoch_N}.pt``, ``plots/*.png`` and
``log.jsonl`` (every log record as JSON lines).

Resume (``saferl train --resume runs/<name>``) rebuilds everything from ``config.yaml`` (plus
``--set`` overrides, which may not change :data:`FIXED_ON_RESUME`), loads the newest checkpoint
whose SHA-256 matches the manifest and continues; the metrics files are cut back to the
checkpoint's epoch, so an interrupted and resumed run writes the same rows and ends with the same
weights as an uninterrupted one (columns ``fps`` and ``time/*`` measure wall time and naturally
differ). A run without a usable checkpoint (killed before its first one was complete) restarts
from scratch with the same config and seed, which gives the same run.

Exit codes of :meth:`Trainer.train` / :func:`run_train`: 0 finished, stopped early or stopped by
SIGINT/SIGTERM (checkpoint written); 1 stopped by an environment error or by repeated non-finite
updates (checkpoint of the last good state written) or by a write that failed (a full disk: one
log line naming the file and directory; the newest complete checkpoint stays usable); user errors
raise :class:`TrainError` (a :class:`~saferl.config.ConfigError`) with a one-line message.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import platform
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from saferl.algos.base import ALGORITHM_MEMBERS, Algorithm
from saferl.config import (
    Config,
    ConfigError,
    config_to_dict,
    dump_config,
    load_config,
    short_repr,
)
from saferl.log import add_jsonl_handler, remove_handler
from saferl.training import setup
from saferl.training.callbacks import (
    BestModel,
    Callback,
    CallbackList,
    EarlyStopping,
    LRScheduleCallback,
    PlotCallback,
    ProgressBar,
    SafetyMonitor,
    cost_status,
    group_status,
)
from saferl.training.checkpoint import (
    CheckpointError,
    CheckpointManager,
    CheckpointWriteError,
    RunManifest,
    from_plain,
    get_rng_states,
    load_checkpoint,
    set_rng_states,
    to_plain,
)
from saferl.training.distributed import (
    NoLock,
    NoPlots,
    NoWriteCheckpoints,
    NoWriteManifest,
    World,
    elastic_resume_dir,
    shutdown,
    start_world,
)
from saferl.training.schedulers import build_schedules
from saferl.training.tracking import MultiTracker, build_trackers
from saferl.utils import accepts_kwarg, remove_stale_temp_files

logger = logging.getLogger(__name__)

#: ``best.pt``'s evaluation episodes start at ``eval.seed`` plus this (validation apart from test)
BEST_EVAL_SEED_OFFSET = 1_000_000

__all__ = ["EnvError", "TrainError", "Trainer", "run_train"]

STATE_FORMAT = 1
EXIT_OK, EXIT_FAILED = 0, 1
# Columns that measure wall-clock time; everything else in a row is deterministic.
TIMING_COLUMNS = ("fps", "time/collect", "time/update", "time/overhead", "time/total")
SHRINK = 0.5  # step shrink factor after a non-finite update


class TrainError(ConfigError):
    """A user error while setting up or resuming a run (one-line message, CLI exit 2)."""


class EnvError(RuntimeError):
    """An exception raised by the environment during collection (wrapped with env name/step)."""


def _git_commit() -> str | None:
    """HEAD of the git checkout holding saferl (``+dirty`` if modified), None outside git."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("saferl", "torch", "numpy", "gymnasium", "pydantic", "scipy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _scalar(value: Any) -> Any:
    """A float/int/str for a metrics row, or None for values that are not scalars."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float, str)):
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, np.ndarray) and value.size == 1:
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return None


def _nonfinite_tensors(state: Any, prefix: str = "") -> list[str]:
    """Dotted paths of floating tensors/arrays in ``state`` holding NaN or inf."""
    bad: list[str] = []
    if isinstance(state, torch.Tensor):
        if state.is_floating_point() and not bool(torch.isfinite(state).all()):
            bad.append(prefix or "<tensor>")
    elif isinstance(state, np.ndarray):
        if state.dtype.kind == "f" and not np.isfinite(state).all():
            bad.append(prefix or "<array>")
    elif isinstance(state, Mapping):
        for k, v in state.items():
            bad.extend(_nonfinite_tensors(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(state, (list, tuple)):
        for i, v in enumerate(state):
            bad.extend(_nonfinite_tensors(v, f"{prefix}[{i}]"))
    return bad


def _fmt_duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


#: Fields a resumed run keeps: the checkpoint's env, algorithm and networks depend on them.
FIXED_ON_RESUME = (
    "env.id",
    "env.num_envs",
    "env.options",
    "env.obs_ema",
    "algo.name",
    "algo.hidden_sizes",
    "algo.activation",
    "algo.asymmetric_critic",
)


def _field(cfg: Config, dotted: str) -> Any:
    value: Any = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def _check_unchanged_on_resume(saved: Config, config: Config) -> None:
    """Refuse ``--set`` overrides of :data:`FIXED_ON_RESUME` fields in one line.

    Raises:
        TrainError: naming the first changed field, its value in the run and the override.
    """
    for dotted in FIXED_ON_RESUME:
        old, new = _field(saved, dotted), _field(config, dotted)
        if dotted == "env.id":  # saferl/NAME is NAME
            old, new = setup.resolve_env_id(old), setup.resolve_env_id(new)
        if dotted == "env.obs_ema" and old is not None and new is not None:
            # dims may be spelled as indices or layout names: they are compared as indices
            # once the env is built (Trainer.load_state_dict); the weights here
            old, new = old["weights"], new["weights"]
            dotted = "env.obs_ema.weights"
        if old != new:
            raise TrainError(
                f"{dotted}: a resumed run keeps the value it was trained with ({short_repr(old)}), "
                f"got {short_repr(new)}; start a new run for another value"
            )


def _write_failure(exc: OSError | CheckpointWriteError) -> str:
    """One line for a failed write: the file, its directory and the OS's reason."""
    if isinstance(exc, CheckpointWriteError):
        return str(exc)
    if exc.filename:
        path = Path(os.fsdecode(exc.filename))
        return f"cannot write {path.name} in {path.parent}: {exc.strerror or exc}"
    return f"cannot write to the run directory: {exc.strerror or exc}"


class RunLock:
    """An exclusive ``flock`` on ``run_dir/.lock`` held while a process owns the run.

    The kernel drops the lock when the process dies (also on ``kill -9``), so a crashed run can
    be resumed at once; a second live process is refused instead of interleaving checkpoints.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / ".lock"
        self._fd: int | None = None
        try:
            import fcntl
        except ImportError:  # not POSIX: no locking
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise TrainError(
                f"run directory {run_dir} is in use by another process (pid {holder})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:
        self.release()


class Trainer:
    """Holds config, env, algorithm, collector, schedules, callbacks and trackers of one run.

    Args:
        config: the validated run configuration.
        command: the command line that started the run (recorded in the manifest).
        run_dir: the run directory (default ``train.runs_dir/train.name``).
        resume_state: a checkpoint's state to continue from (see :meth:`resume`).
        init_from: a checkpoint file whose policy/critic weights start this new run (new
            optimiser state); shapes must match.
        extra_callbacks: callbacks appended after the built-in ones.
        restart: why an existing run directory starts over from scratch (set by :meth:`resume`
            when no checkpoint is usable): its checkpoints are moved to
            ``checkpoints/discarded/``, its metrics start empty, the manifest records the restart.
        world: this process's rank among the training processes (default: a single process;
            see saferl.training.distributed). Only rank 0 writes the run directory.

    Raises:
        TrainError: the run directory already holds a run, an unknown env/algorithm, or an
            ``init_from`` checkpoint that does not fit.
    """

    def __init__(
        self,
        config: Config,
        *,
        command: Sequence[str] | None = None,
        run_dir: str | Path | None = None,
        resume_state: Mapping[str, Any] | None = None,
        resume_from: str | Path | None = None,
        init_from: str | Path | None = None,
        extra_callbacks: Sequence[Callback] = (),
        restart: str | None = None,
        world: World | None = None,
    ) -> None:
        self.config = cfg = config
        tc = cfg.train
        self.world = world if world is not None else World(zero=cfg.distributed.zero)
        self.command = list(command) if command is not None else list(sys.argv)
        if run_dir is None:
            name = tc.name or (
                f"{cfg.env.id}_{cfg.algo.name}_{datetime.now().strftime('%Y%m%d-%H%M%S')}"
            )
            run_dir = Path(tc.runs_dir) / name
        self.run_dir = Path(run_dir)
        self.resuming = resume_state is not None
        manifest_path = self.run_dir / "manifest.json"
        if (
            self.world.is_writer
            and not self.resuming
            and restart is None
            and manifest_path.exists()
        ):
            raise TrainError(
                f"run directory {self.run_dir} already holds a run; continue it with "
                f"--resume {self.run_dir} or choose another --name"
            )

        # -- determinism: every RNG derives from train.seed ------------------------------------
        if tc.torch_threads:
            torch.set_num_threads(tc.torch_threads)
        random.seed(tc.seed)
        np.random.seed(tc.seed)  # noqa: NPY002 (the legacy global RNG, for third-party code)
        torch.manual_seed(tc.seed)

        # -- environment, algorithm, collector (training/setup.py: the rules every front-end
        #    shares) ---------------------------------------------------------------------------
        self.env_spec = setup.env_spec(cfg)
        self.env_id = self.env_spec.id
        # this rank's share of the instances (all of them in a single process); an env that
        # cannot key its instances by global index (no instance_offset) has its seed offset
        n_envs, self.instance_offset = self.world.local_envs(cfg.env.num_envs)
        keyed = accepts_kwarg(self.env_spec.base, "instance_offset")
        offset_kw = (
            {"instance_offset": self.instance_offset} if keyed and self.instance_offset else {}
        )
        self._seed_offset = 0 if keyed else self.instance_offset
        self.env = self.env_spec.make(n_envs, **offset_kw)
        obs_space = getattr(self.env, "single_observation_space", self.env.observation_space)
        act_space = getattr(self.env, "single_action_space", self.env.action_space)
        setup.check_resources(cfg, int(np.prod(obs_space.shape)), int(np.prod(act_space.shape)))
        self.limits = setup.cost_limits(cfg, self.env)
        self.cost_limit = self.limits.combined
        self.algo = setup.build_algorithm(cfg, self.env, self.limits)
        if not isinstance(self.algo, Algorithm):
            missing = [n for n in ALGORITHM_MEMBERS if not hasattr(self.algo, n)]
            raise TrainError(
                f"algo.name: '{cfg.algo.name}' does not implement saferl.algos.base.Algorithm "
                f"(missing: {', '.join(missing)})"
            )
        self.world.prepare_algorithm(self.algo)  # rank 0's initial state everywhere; ZeRO
        self.collector = self._make_collector()
        self.total_epochs = max(1, math.ceil(tc.total_steps / tc.steps_per_epoch))

        # -- schedules and callbacks --------------------------------------------------------------
        self.schedules = build_schedules(
            tc.schedules, algo=self.algo, env=self.env, total_epochs=self.total_epochs
        )
        cbs: list[Callback] = []
        if tc.safety_monitor.enabled:
            sm = tc.safety_monitor
            cbs.append(SafetyMonitor(sm.window, sm.alert_after, sm.halt))
        if tc.best_eval_episodes > 0:
            from saferl.algos.networks import GaussianActor

            if not isinstance(getattr(self.algo, "actor", None), GaussianActor):
                raise TrainError(
                    "train.best_eval_episodes: the algorithm has no Gaussian actor "
                    "(saferl.algos.networks.GaussianActor) to evaluate; set it to 0"
                )
            cbs.append(BestModel(self._evaluate_for_best, every=tc.checkpoint_every))
        else:
            cbs.append(BestModel())
        if tc.early_stopping.enabled:
            es = tc.early_stopping
            cbs.append(EarlyStopping(es.metric, es.mode, es.patience, es.min_delta))
        cbs.append(LRScheduleCallback(self.schedules))
        plots = PlotCallback if self.world.is_writer else NoPlots
        cbs.append(plots(self.run_dir / "plots", every=tc.plot_every))
        cbs.append(ProgressBar(tc.total_steps, enabled=tc.progress and self.world.is_writer))
        cbs.extend(extra_callbacks)
        self.callbacks = CallbackList(cbs)
        self.callbacks.init_callback(self)

        # -- counters -----------------------------------------------------------------------------
        self.epoch = 0
        self.env_steps = 0
        self.consecutive_failures = 0
        self.total_failures = 0
        self.train_time = 0.0
        self.last_metrics: dict[str, Any] = {}
        #: the newest epoch's row that finished at least one episode (for the summary)
        self.last_finished: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self._stop_signal: int | None = None
        self._signal_time = 0.0

        # -- run directory (created only once env and algorithm were built) -------------------------
        if self.world.is_writer:
            self._open_run_dir(restart)  # lock, manifest, checkpoints; leftovers of kills cleaned
        else:  # the other ranks of a distributed run write nothing
            self._lock = NoLock()
            self.manifest = NoWriteManifest(manifest_path)
            self.checkpoints = NoWriteCheckpoints(
                self.run_dir / "checkpoints", self.manifest, keep=tc.keep_checkpoints
            )
        if resume_state is not None:
            self.load_state_dict(resume_state)
        if init_from is not None:
            self._init_from(Path(init_from))
        self.tracker = self._make_trackers() if self.world.is_writer else MultiTracker({})
        if self.world.is_writer:
            dump_config(cfg, self.run_dir / "config.yaml")
        self._record_start(resume_from, init_from, restart)
        self.tracker.log_params(config_to_dict(cfg))

    # ------------------------------------------------------------------------------------------
    # construction helpers
    # ------------------------------------------------------------------------------------------
    def _make_collector(self) -> Any:
        """The algorithm's own collector if it offers one, else the standard RolloutCollector."""
        tc = self.config.train
        make = getattr(self.algo, "make_collector", None)
        if make is not None:
            return make(self.env, tc.steps_per_epoch, seed=tc.seed)
        from saferl.algos.buffer import RolloutCollector

        # steps per instance from the instances over all ranks
        steps_per_env = max(1, tc.steps_per_epoch // self.config.env.num_envs)
        return RolloutCollector(
            self.env,
            self.algo,
            steps_per_env,
            seed=tc.seed + self._seed_offset,
            instance_offset=self.instance_offset,
        )

    def _make_trackers(self) -> MultiTracker:
        """The local files plus ``tracking.backends``, each backend queued and failure-isolated
        (saferl.training.tracking.build_trackers); a missing backend package is a TrainError."""
        try:
            return build_trackers(
                self.run_dir, self.config, resume_epoch=self.epoch if self.resuming else None
            )
        except ConfigError as exc:
            raise TrainError(str(exc)) from None

    def _init_from(self, path: Path) -> None:
        """Copy policy and critic tensors (not optimiser or RNG state) from a checkpoint."""
        try:
            manifest = RunManifest(path.parent.parent / "manifest.json")
        except CheckpointError as exc:
            raise TrainError(f"--init-from: {exc}") from None
        entry = manifest.checkpoints.get(path.name) if path.parent.name == "checkpoints" else None
        try:
            state = load_checkpoint(path, expected_sha256=entry["sha256"] if entry else None)
        except CheckpointError as exc:
            raise TrainError(f"--init-from: {exc}") from None
        if "algo" not in state:
            raise TrainError(f"--init-from: {path} is not a saferl training checkpoint")
        fresh = self.algo.state_dict()
        merged = _merge_weights(fresh, state["algo"], path)
        self.algo.load_state_dict(merged)
        logger.info("initialised weights from %s", path)

    # ------------------------------------------------------------------------------------------
    # run directory
    # ------------------------------------------------------------------------------------------
    def _open_run_dir(self, restart: str | None) -> None:
        """Create and lock the run directory, read its manifest, clean what kills left behind.

        Under the lock (so no live writer is disturbed): temp files of interrupted atomic writes
        are deleted; a restart moves the old checkpoints aside. A checkpoint path that is not a
        file (a directory named ``last.pt``) is refused now rather than at the first save.

        Raises:
            TrainError: the directory cannot be created, is in use, its manifest is unreadable,
                or a checkpoint path is in the way.
        """
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrainError(
                f"train.runs_dir: cannot create the run directory {self.run_dir}: "
                f"{exc.strerror or exc}"
            ) from None
        self._lock = RunLock(self.run_dir)  # one process per run directory
        try:
            self.manifest = RunManifest(self.run_dir / "manifest.json")
        except CheckpointError as exc:
            self._lock.release()
            raise TrainError(
                f"{exc}; restore it, or remove it to restart the run from scratch"
            ) from None
        self.checkpoints = CheckpointManager(
            self.run_dir / "checkpoints", self.manifest, keep=self.config.train.keep_checkpoints
        )
        in_the_way = [p for p in (self.run_dir / "manifest.json",) if p.is_dir()]
        in_the_way += self.checkpoints.non_files()
        if in_the_way:
            self._lock.release()
            raise TrainError(
                f"{in_the_way[0]} is not a regular file; move it away so that checkpoints can be "
                "written there"
            )
        removed = []
        for d in (self.run_dir, self.run_dir / "checkpoints", self.run_dir / "plots"):
            removed += remove_stale_temp_files(d)
        if removed:
            logger.info(
                "removed %d unfinished temp file(s) of an interrupted process: %s",
                len(removed),
                ", ".join(str(p.relative_to(self.run_dir)) for p in removed[:5])
                + (", ..." if len(removed) > 5 else ""),
            )
        if restart is not None:
            moved = self.checkpoints.discard_all()
            logger.warning(
                "%s: %s; restarting the run from scratch with the same config and seed (the "
                "result is the same as an uninterrupted run)%s",
                self.run_dir,
                restart,
                f"; moved {', '.join(moved)} to checkpoints/{CheckpointManager.DISCARDED}/"
                if moved
                else "",
                extra={"data": {"event": "restart", "reason": restart}},
            )

    def _record_start(
        self, resume_from: str | Path | None, init_from: str | Path | None, restart: str | None
    ) -> None:
        """Record this start in the manifest: the creation fields for a new run, one entry in
        ``resumes`` for a resumed or restarted one."""
        cfg = self.config
        created = {
            "command": self.command,
            "seed": cfg.train.seed,
            "created": _now(),
            "git_commit": _git_commit(),
            "versions": _versions(),
            "env": self.env_id,
            "algo": cfg.algo.name,
            "init_from": str(init_from) if init_from else None,
            **self.world.manifest_fields(),
        }
        if not self.resuming and restart is None:
            self.manifest.update(**created, status="created")
            return
        if "created" not in self.manifest.data:  # killed before the manifest was first written
            self.manifest.data.update(created)
        resumes = list(self.manifest.data.get("resumes", []))
        entry = {
            "command": self.command,
            "time": _now(),
            "from": str(resume_from) if resume_from else None,
            "epoch": self.epoch,
            "env_steps": self.env_steps,
            "git_commit": _git_commit(),
            "versions": _versions(),
        }
        if restart is not None:
            entry["restarted"] = restart
        resumes.append(entry)
        self.manifest.update(resumes=resumes, status="running")

    # ------------------------------------------------------------------------------------------
    # state
    # ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (plain containers; see checkpoint.to_plain)."""
        return {
            "format": STATE_FORMAT,
            "meta": {
                "env": self.env_id,
                "algo": self.config.algo.name,
                "num_envs": self.config.env.num_envs,
                "obs_ema": self._obs_ema_spec(),
                "saved": _now(),
            },
            "counters": {
                "epoch": self.epoch,
                "env_steps": self.env_steps,
                "consecutive_failures": self.consecutive_failures,
                "total_failures": self.total_failures,
                "train_time": self.train_time,
            },
            "cost_limit": self.cost_limit,
            # Values a schedule or a rollback may have moved (not in every algorithm's state).
            "hparams": self.algo.hyperparameters(),
            "algo": self.algo.state_dict(),
            "env": self.env.state_dict(),
            "collector": self.collector.state_dict(),
            "callbacks": self.callbacks.state_dict(),
            "rng": get_rng_states(),
            "last_metrics": dict(self.last_metrics),
            "last_finished": dict(self.last_finished),
        }

    def _obs_ema_spec(self) -> dict[str, list] | None:
        """The averaged observation dims as indices (a field name and its index are the same
        dims, so a run started with either resumes with the other) and their weights."""
        spec = self.config.env.obs_ema
        if spec is None:
            return None
        resolved = getattr(self.env, "dims", None)  # the ObservationEMA wrapper's indices
        dims = [int(d) for d in resolved] if resolved is not None else list(spec.dims)
        return {"dims": dims, "weights": list(spec.weights)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        state = self.world.local_state(state)  # this rank's env, collector and RNG state
        meta = state.get("meta", {})
        if meta.get("env") != self.env_id or meta.get("algo") != self.config.algo.name:
            raise TrainError(
                f"checkpoint is for env '{meta.get('env')}' / algo '{meta.get('algo')}', the "
                f"config says '{self.env_id}' / '{self.config.algo.name}'"
            )
        if meta.get("num_envs") != self.config.env.num_envs:
            raise TrainError(
                f"env.num_envs: the checkpoint was taken with {meta.get('num_envs')} envs; a "
                f"resumed run must keep it (got {self.config.env.num_envs})"
            )
        if meta.get("obs_ema") != self._obs_ema_spec():  # absent before the option: None
            raise TrainError(
                f"env.obs_ema: a resumed run keeps the value it was trained with "
                f"({meta.get('obs_ema')}, dims as indices), got {self._obs_ema_spec()}; the "
                "policy's input depends on it: start a new run for another value"
            )
        try:
            c = state["counters"]
            self.epoch = int(c["epoch"])
            self.env_steps = int(c["env_steps"])
            self.consecutive_failures = int(c["consecutive_failures"])
            self.total_failures = int(c["total_failures"])
            self.train_time = float(c["train_time"])
            self.cost_limit = float(state["cost_limit"])
            self.algo.load_state_dict(state["algo"])
            self.env.load_state_dict(state["env"])
            self.collector.load_state_dict(state["collector"])
            self.callbacks.load_state_dict(state["callbacks"])
            settable = self.algo.hyperparameters()
            for name, value in state.get("hparams", {}).items():
                if name in settable:
                    self.algo.set_hyperparameter(name, value)
                else:  # a checkpoint from an older version of the algorithm
                    logger.warning("checkpoint hyperparameter '%s' is not settable; ignored", name)
            self.last_metrics = dict(state.get("last_metrics", {}))
            self.last_finished = dict(state.get("last_finished", {}))
            set_rng_states(state["rng"])
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
            # e.g. a network of another size: "size mismatch for mu.0.weight: ..."
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            if len(lines) > 1 and lines[0].endswith(":"):
                lines = lines[1:]  # torch: "Error(s) in loading state_dict for X:" then details
            first = lines[0] if lines else exc.__class__.__name__
            raise TrainError(
                f"the checkpoint does not fit this run's config ({short_repr(first, 160)}); a resume "
                "keeps the env, the algorithm and the network sizes it was trained with"
            ) from None

    def save_checkpoint(self) -> Path:
        """Write ``epoch_<N>.pt`` and ``last.pt`` now (every rank calls it; rank 0 writes)."""
        state = self.world.checkpoint_state(self.state_dict(), self.algo)
        path = self.checkpoints.save(state, epoch=self.epoch, env_steps=self.env_steps)
        self._last_saved_epoch = self.epoch
        return path

    def _evaluate_for_best(self) -> tuple[float, float]:
        """Mean return and cost of the current policy on ``train.best_eval_episodes`` complete
        episodes (fresh envs with the run's env options, env seeds from ``eval.seed`` +
        ``BEST_EVAL_SEED_OFFSET``, apart from the episodes ``saferl evaluate`` reports on, so that
        choosing ``best.pt`` does not flatter its evaluation; the mean action if
        ``eval.deterministic``). Uses its own envs and random numbers: training continues exactly
        as without it."""
        from saferl.training.evaluation import ActorPolicy, run_episodes

        cfg = self.config
        episodes = cfg.train.best_eval_episodes
        first = cfg.eval.seed + BEST_EVAL_SEED_OFFSET

        groups = self.limits.groups

        def evaluate() -> tuple[Any, ...]:
            table = run_episodes(
                ActorPolicy.from_algorithm(self.algo, name="best-model check"),
                self.env_spec.factory,
                range(first, first + episodes),
                num_envs=min(episodes, cfg.eval.num_envs),
                env_options=self.env_spec.options,
                deterministic=cfg.eval.deterministic,
                limit=self.cost_limit,
            )
            ret, cost = float(np.mean(table["return"])), float(np.mean(table["cost"]))
            if groups is None or not groups.grouped:
                return ret, cost
            per: dict[str, float] = {}
            for g in groups.names:
                if groups.kind == "components":
                    per[g] = float(np.mean(table[f"cost_{g}"]))
                else:
                    sel = np.asarray(table[f"{groups.key}_level"]) == g
                    costs = np.asarray(table["cost"])[sel]
                    per[g] = float(np.mean(costs)) if sel.any() else math.nan
            return ret, cost, per

        return self.world.from_writer(evaluate)  # rank 0 evaluates, every rank gets it

    def save_best(self) -> Path:
        """Write ``best.pt`` (called by the BestModel callback; rank 0 writes)."""
        path = self.checkpoints.save_best(
            self.world.checkpoint_state(self.state_dict(), self.algo),
            epoch=self.epoch,
            env_steps=self.env_steps,
        )
        return path

    @classmethod
    def resume(
        cls,
        run_dir: str | Path,
        overrides: Sequence[str] = (),
        *,
        command: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> Trainer:
        """Rebuild a run from ``run_dir/config.yaml`` (+ overrides) and its newest good checkpoint.

        With no checkpoint that loads and matches its hash (a run killed before its first
        checkpoint was complete), the run restarts from scratch with the same config and seed:
        see ``restart`` of :class:`Trainer`.

        Raises:
            TrainError: no run there, an unreadable manifest, or an override that changes what a
                resumed run must keep (env, algorithm, network sizes).
        """
        run_dir = Path(run_dir)
        config_path = run_dir / "config.yaml"
        if not config_path.is_file():
            raise TrainError(f"--resume {run_dir}: no run there (config.yaml missing)")
        saved = load_config(config_path)
        config = load_config(config_path, overrides) if overrides else saved
        _check_unchanged_on_resume(saved, config)
        # Refusals of checkpoints go to the run's log.jsonl too, not only to the console.
        try:
            log_handler: logging.Handler | None = add_jsonl_handler(
                run_dir / "log.jsonl", level=logging.INFO
            )
        except OSError:
            log_handler = None
        try:
            try:
                manifest = RunManifest(run_dir / "manifest.json")
            except CheckpointError as exc:
                raise TrainError(
                    f"--resume {run_dir}: {exc}; restore it, or remove it to restart the run from scratch"
                ) from None
            manager = CheckpointManager(run_dir / "checkpoints", manifest)
            try:
                state, path = manager.load_latest()
            except CheckpointError as exc:
                # Killed before its first checkpoint (or every checkpoint refused): the same
                # config and seed give the same run again, so start it over instead of leaving
                # a directory that neither --resume nor --name can continue.
                return cls(config, command=command, run_dir=run_dir, restart=str(exc), **kwargs)
            logger.info(
                "resuming %s from %s (epoch %d, %d env steps)",
                run_dir,
                path.name,
                state["counters"]["epoch"],
                state["counters"]["env_steps"],
            )
        finally:
            if log_handler is not None:
                remove_handler(log_handler)
        return cls(
            config,
            command=command,
            run_dir=run_dir,
            resume_state=state,
            resume_from=path,
            **kwargs,
        )

    # ------------------------------------------------------------------------------------------
    # the loop
    # ------------------------------------------------------------------------------------------
    def train(self) -> int:
        """Run until ``train.total_steps`` (or a stop); returns the exit code (0 ok, 1 failed)."""
        tc = self.config.train
        log_handler = (
            add_jsonl_handler(self.run_dir / "log.jsonl", level=logging.INFO)
            if self.world.is_writer
            else logging.NullHandler()
        )
        old_handlers = self._install_signal_handlers()
        self._last_saved_epoch = self.epoch if self.resuming else -1
        exit_code = EXIT_OK
        completed = False
        write_failed = False
        logger.info(
            "training %s with %s on %s: %d/%d env steps done, run directory %s",
            self.config.algo.name,
            self.env_id,
            tc.device,
            self.env_steps,
            tc.total_steps,
            self.run_dir,
        )
        try:
            self.manifest.update(status="running")
            self.callbacks.on_train_start()
            while self.env_steps < tc.total_steps and self.epoch < self.total_epochs:
                t_start = time.perf_counter()
                # Snapshot of the state at the start of the epoch: what an env failure saves.
                epoch_start_state = to_plain(self.state_dict())
                t_collect0 = time.perf_counter()

                # 1. collect
                try:
                    batch, error = self.collector.collect(), None
                except Exception as exc:
                    batch, error = None, exc
                # episode statistics over all ranks; a failure on any rank stops every rank
                roll, failed = self.world.rollout_stats(batch)
                if failed:
                    step = self.env_steps
                    exc = error or RuntimeError("the environment of another rank raised")
                    logger.error(
                        "environment %s raised at env step ~%d (epoch %d): %s: %s",
                        self.env_id,
                        step,
                        self.epoch + 1,
                        exc.__class__.__name__,
                        exc,
                        exc_info=error,
                        extra={"data": {"event": "env_error", "env_steps": step}},
                    )
                    self._restore_snapshot(epoch_start_state)
                    path = self.save_checkpoint()
                    self.stop_reason = (
                        f"environment {self.env_id} raised {exc.__class__.__name__} at env step "
                        f"~{step} (epoch {self.epoch + 1}): {exc}; last good checkpoint {path}"
                    )
                    exit_code = EXIT_FAILED
                    break
                t_collect = time.perf_counter()
                self.callbacks.on_rollout_end(roll)

                # 2. update (rolled back if anything comes out non-finite)
                pre_update = to_plain(self.algo.state_dict())
                diagnostics, failed, t_update = self._update(batch, pre_update)
                self.env_steps += int(roll["steps"])
                self.epoch += 1

                # 3. metrics and callbacks
                metrics = self._metrics_row(roll, diagnostics, failed)
                keep_going = self.callbacks.on_epoch_end(metrics)
                if self.consecutive_failures >= tc.max_consecutive_failures:
                    keep_going = False
                    self.stop_reason = (
                        f"{self.consecutive_failures} non-finite updates in a row "
                        f"(train.max_consecutive_failures={tc.max_consecutive_failures}); the "
                        "checkpoint holds the last good state"
                    )
                    exit_code = EXIT_FAILED
                elif not keep_going:
                    self.stop_reason = self.callbacks.stop_reason or "stopped by a callback"

                # 4. trackers, 5. checkpoint
                t_end = time.perf_counter()
                # Pure collection and update time; everything else in the epoch is the
                # trainer's overhead (snapshots, finiteness checks, callbacks, plots, best.pt;
                # the periodic checkpoint comes after this row and is not included here).
                metrics["time/collect"] = t_collect - t_collect0
                metrics["time/update"] = t_update
                metrics["time/overhead"] = (t_end - t_start) - (t_collect - t_collect0) - t_update
                metrics["fps"] = roll["steps"] / max(t_end - t_start, 1e-9)
                self.tracker.log_metrics(metrics, self.env_steps)
                self.last_metrics = metrics
                if metrics["episodes"] > 0:
                    keep = ["epoch", "ep_return", "ep_cost", "episodes"]
                    if group_status(metrics) is not None:  # and each group's cost and limit
                        keep += [k for k in metrics if k.startswith("cost_limit/")]
                        keep += [f"ep_cost/{k[len('cost_limit/') :]}" for k in keep[4:]]
                    self.last_finished = {k: metrics.get(k, math.nan) for k in keep}
                keep_going, self._stop_signal = self.world.agree_stop(keep_going, self._stop_signal)
                if not keep_going and self.stop_reason is None:
                    self.stop_reason = "stopped by another rank"
                self.world.check_in_sync(self.algo, self.epoch)
                stopping = not keep_going or self._stop_signal is not None
                if self.epoch % tc.checkpoint_every == 0 or stopping:
                    self.save_checkpoint()
                self.train_time += time.perf_counter() - t_start
                self._log_epoch(metrics)
                if self._stop_signal is not None:
                    name = signal.Signals(self._stop_signal).name
                    self.stop_reason = f"stopped by {name}"
                    break
                if not keep_going:
                    break
            if self._last_saved_epoch != self.epoch:
                self.save_checkpoint()
            completed = True
        except (OSError, CheckpointWriteError) as exc:  # a full disk: stop, keep what is good
            write_failed = completed = True
            exit_code = EXIT_FAILED
            self.stop_reason = f"{_write_failure(exc)}; the newest complete checkpoint is kept"
            logger.error(
                "%s", self.stop_reason, extra={"data": {"event": "write_error", "errno": exc.errno}}
            )
        finally:
            self._restore_signal_handlers(old_handlers)
            self.callbacks.on_train_end()  # reports a plot it cannot write in one line
            for path in sorted((self.run_dir / "plots").glob("*.png")):
                self.tracker.log_artifact(path)
            self.tracker.close()
            if not completed:
                status = "crashed"  # an unexpected exception or a second Ctrl-C
            elif exit_code:
                status = "failed"
            else:
                status = "stopped" if self.stop_reason else "finished"
            # After a failed write the status may not be written either: said once, at DEBUG.
            with self._write_guard(write_failed, "recording the run's status"):
                self.manifest.update(
                    status=status,
                    stop_reason=self.stop_reason,
                    epoch=self.epoch,
                    env_steps=self.env_steps,
                )
            remove_handler(log_handler)
            self._lock.release()
        if self.world.is_writer:
            self._print_summary(exit_code)
        return exit_code

    @contextlib.contextmanager
    def _write_guard(self, quiet: bool, what: str) -> Any:
        """Turn a failed write at the end of a run into one log line (DEBUG if a write already
        stopped the run: the disk is still full), never a traceback."""
        try:
            yield
        except (OSError, CheckpointWriteError) as exc:
            logger.log(
                logging.DEBUG if quiet else logging.WARNING, "%s failed: %s", what,
                _write_failure(exc),
            )  # fmt: skip

    def _update(
        self, batch: Any, pre_update: Mapping[str, Any]
    ) -> tuple[dict[str, Any], bool, float]:
        """``algorithm.update`` with rollback; returns (diagnostics, failed, seconds in update)."""
        reason = None
        diagnostics: dict[str, Any] = {}
        t0 = time.perf_counter()
        try:
            diagnostics = dict(self.algo.update(batch) or {})
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # e.g. a linear-algebra error on NaN input: roll back too
            logger.debug("update raised", exc_info=True)
            reason = f"update raised {exc.__class__.__name__}: {exc}"
        t_update = time.perf_counter() - t0
        if reason is None:
            bad = [
                k
                for k, v in diagnostics.items()
                if "loss" in k and isinstance(_scalar(v), float) and not math.isfinite(_scalar(v))
            ]
            bad += self._nonfinite_grads()
            bad += _nonfinite_tensors(self.algo.state_dict())
            if bad:
                reason = "non-finite " + ", ".join(bad[:5]) + ("..." if len(bad) > 5 else "")
        if self.world.agree(reason is not None) and reason is None:  # rolled back everywhere
            reason = "the update failed on another rank"
        if reason is None:
            self.consecutive_failures = 0
            return diagnostics, False, t_update
        self.algo.load_state_dict(from_plain(pre_update))
        self.consecutive_failures += 1
        self.total_failures += 1
        shrunk = self._shrink_step()
        logger.warning(
            "update %d rolled back (%s); %s; %d failure(s) in a row",
            self.epoch + 1,
            reason,
            shrunk,
            self.consecutive_failures,
            extra={"data": {"event": "update_rollback", "epoch": self.epoch + 1}},
        )
        nan = {k: math.nan for k, v in diagnostics.items() if isinstance(_scalar(v), float)}
        return nan, True, t_update

    def _nonfinite_grads(self) -> list[str]:
        bad = []
        for name, opt in self.algo.optimizers().items():
            for group in opt.param_groups:
                if any(
                    p.grad is not None and not bool(torch.isfinite(p.grad).all())
                    for p in group["params"]
                ):
                    bad.append(f"{name} optimiser gradient")
                    break
        return bad

    def _shrink_step(self) -> str:
        """The algorithm's own rule for a more cautious next update (``shrink_step``)."""
        done = self.algo.shrink_step(SHRINK)
        return "shrunk " + ", ".join(done) if done else "nothing to shrink"

    def _restore_snapshot(self, snapshot: Mapping[str, Any]) -> None:
        state = from_plain(snapshot)
        self.algo.load_state_dict(state["algo"])
        self.env.load_state_dict(state["env"])
        self.collector.load_state_dict(state["collector"])
        self.callbacks.load_state_dict(state["callbacks"])
        set_rng_states(state["rng"])

    def _metrics_row(
        self, roll: Mapping[str, Any], diagnostics: Mapping[str, Any], failed: bool
    ) -> dict[str, Any]:
        row: dict[str, Any] = {
            "epoch": self.epoch,
            "env_steps": self.env_steps,
            "ep_return": float(roll.get("ep_return", math.nan)),
            "ep_cost": float(roll.get("ep_cost", math.nan)),
            "ep_len": float(roll.get("ep_len", math.nan)),
            "episodes": int(roll.get("episodes", 0)),
            "cost_limit": self._current_cost_limit(),
            "update_failed": int(failed),
        }
        # several constraints: each group's limit (its cost is the rollout's ep_cost/<group>)
        for k, v in self.algo.hyperparameters().items():
            if k.startswith("cost_limit/"):
                row[k] = float(v)
        for k, v in roll.items():
            if k not in row and k != "steps":
                s = _scalar(v)
                if s is not None:
                    row[k] = s  # e.g. per-constraint episode costs "ep_cost/<name>"
        for k, v in diagnostics.items():
            s = _scalar(v)
            if s is not None and k not in row:
                row[k] = s
        return row

    def _current_cost_limit(self) -> float:
        """The limit the algorithm currently optimises against (a curriculum may move it); NaN
        with several constraints, where each group's is ``cost_limit/<group>`` (the combined
        cost is then not constrained)."""
        groups = getattr(self.algo, "constraint_groups", None)
        if groups is not None and groups.grouped:
            return math.nan
        return float(self.algo.cost_limit)

    def _log_epoch(self, m: Mapping[str, Any]) -> None:
        logger.info(
            "epoch %d  steps %d  return %.4g  %s  %s%.0f steps/s",
            m["epoch"],
            m["env_steps"],
            m["ep_return"],
            cost_status(m),
            "UPDATE ROLLED BACK  " if m["update_failed"] else "",
            m["fps"],
            extra={"data": {"event": "epoch", **{k: v for k, v in m.items() if k != "epoch"}}},
        )

    # ------------------------------------------------------------------------------------------
    # signals
    # ------------------------------------------------------------------------------------------
    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        old = {}

        def handler(signum: int, frame: Any) -> None:
            if self._stop_signal is not None:  # a second signal: stop now
                if self.world.grouped and time.monotonic() - self._signal_time < 5.0:
                    return  # torchrun passing on the terminal's Ctrl-C: the same request
                raise KeyboardInterrupt
            self._stop_signal = signum
            self._signal_time = time.monotonic()
            logger.warning(
                "%s received: finishing the current update, then checkpointing and stopping "
                "(send it again to abort at once)",
                signal.Signals(signum).name,
            )

        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, handler)
        return old

    @staticmethod
    def _restore_signal_handlers(old: Mapping[int, Any]) -> None:
        for sig, h in old.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, h)

    # ------------------------------------------------------------------------------------------
    # summary
    # ------------------------------------------------------------------------------------------
    def _print_summary(self, exit_code: int) -> None:
        m = self.last_metrics
        rd = self.run_dir
        if exit_code:
            head = "FAILED"
        elif self.stop_reason:
            head = "stopped"
        else:
            head = "finished"
        lines = [
            f"saferl train {head}: {self.config.algo.name} on {self.env_id}, epoch {self.epoch}, "
            f"{self.env_steps:,} env steps, {_fmt_duration(self.train_time)}",
        ]
        if self.stop_reason:
            lines.append(f"  reason        {self.stop_reason}")
        if m:
            limit = m.get("cost_limit")
            f = self.last_finished
            groups = group_status(m)
            if f and groups is not None:
                lines += self._group_summary(f, m)
            elif f:
                ret, cost = f["ep_return"], f["ep_cost"]
                feas = "  (within the limit)" if cost <= limit else "  (ABOVE the limit)"
                when = (
                    ""
                    if f["epoch"] == m.get("epoch")
                    else f"  (epoch {f['epoch']}, the last one that finished episodes)"
                )
                lines.append(f"  final return  {ret:.4g}{when}")
                lines.append(f"  final cost    {cost:.4g} / limit {limit:.4g}{feas}")
            elif groups is not None:
                lines.append("  final return  no episode finished yet")
            else:
                lines.append(f"  final return  no episode finished yet (limit {limit:.4g})")
        best = self.callbacks.get("best_model")
        best_path = rd / "checkpoints" / "best.pt"
        if isinstance(best, BestModel) and best_path.exists():
            kind = "feasible" if best.best_key and best.best_key[0] == 1 else "infeasible"
            judged = (
                f", on {self.config.train.best_eval_episodes} evaluation episodes"
                if best.evaluate is not None
                else ""
            )
            lines.append(
                f"  best model    {best_path}  (epoch {best.best_epoch}, {kind}: return "
                f"{best.best_return:.4g}, cost {best.best_cost:.4g}{judged})"
            )
        lines.append(f"  last          {rd / 'checkpoints' / 'last.pt'}")
        lines.append(f"  plots         {rd / 'plots'}/")
        lines.append(f"  metrics       {rd / 'metrics.csv'}")
        if self.total_failures:
            lines.append(f"  rollbacks     {self.total_failures} non-finite update(s) rolled back")
        if self._stop_signal is not None or (self.stop_reason and exit_code == 0):
            lines.append(f"  resume with   saferl train --resume {rd}")
        elif exit_code == 0:
            lines.append(
                f"  continue with saferl train --resume {rd} --set train.total_steps=<more>"
            )
        else:
            lines.append(f"  after fixing, resume with  saferl train --resume {rd}")
        print("\n".join(lines), flush=True)

    @staticmethod
    def _group_summary(f: Mapping[str, Any], m: Mapping[str, Any]) -> list[str]:
        """The summary's cost lines with several constraints: the worst group against its own
        limit, the groups above theirs, every group's cost/limit (``f``: the last epoch that
        finished episodes, with its limits)."""
        st = group_status(f)
        assert st is not None
        when = (
            ""
            if f["epoch"] == m.get("epoch")
            else f"  (epoch {f['epoch']}, the last one that finished episodes)"
        )
        lines = [f"  final return  {f['ep_return']:.4g}{when}"]
        if st["worst"] is None:
            lines.append("  final cost    no group finished an episode")
            return lines
        if st["over"]:
            verdict = f"ABOVE its limit; above theirs: {', '.join(st['over'])}"
        elif st["unmeasured"]:
            verdict = "every measured group within its limit"
        else:
            verdict = "every group within its limit"
        lines.append(
            f"  final cost    worst group {st['worst']} {st['cost']:.4g} / limit "
            f"{st['limit']:.4g}  ({verdict}); all episodes {f['ep_cost']:.4g}"
        )
        per = ", ".join(
            f"{g} {c:.4g}/{st['limits'][g]:.4g}"
            if math.isfinite(c)
            else f"{g} -/{st['limits'][g]:.4g}"
            for g, c in st["costs"].items()
        )
        missing = f"  (no episode: {', '.join(st['unmeasured'])})" if st["unmeasured"] else ""
        lines.append(f"  per group     {per}{missing}")
        return lines


def _merge_weights(fresh: Any, loaded: Any, path: Path, prefix: str = "") -> Any:
    """Tensors of ``loaded`` into the structure of ``fresh``, except optimiser and RNG entries.

    Raises:
        TrainError: a tensor's shape differs or an expected entry is missing.
    """
    if isinstance(fresh, Mapping):
        out = {}
        for k, v in fresh.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            lowered = str(k).lower()
            if any(w in lowered for w in ("optim", "generator", "rng")) or lowered == "gen":
                out[k] = v  # new optimiser state and fresh random streams
                continue
            if not isinstance(loaded, Mapping) or k not in loaded:
                if isinstance(v, torch.Tensor):
                    raise TrainError(f"--init-from {path}: the checkpoint has no '{key}'")
                out[k] = v
                continue
            out[k] = _merge_weights(v, loaded[k], path, key)
        return out
    if isinstance(fresh, torch.Tensor):
        if not isinstance(loaded, torch.Tensor):
            raise TrainError(f"--init-from {path}: '{prefix}' is not a tensor in the checkpoint")
        if tuple(fresh.shape) != tuple(loaded.shape):
            raise TrainError(
                f"--init-from {path}: shape mismatch at '{prefix}': checkpoint "
                f"{tuple(loaded.shape)} vs this run {tuple(fresh.shape)} (different env "
                "observation/action sizes or algo.hidden_sizes?)"
            )
        return loaded.to(fresh.dtype)
    return fresh


def run_train(
    config_path: str | None,
    overrides: list[str],
    *,
    name: str | None = None,
    runs_dir: str | None = None,
    resume: str | None = None,
    init_from: str | None = None,
    command: list[str] | None = None,
) -> int:
    """What ``saferl train`` calls; returns the exit code.

    Started by torchrun, it first forms the process group (saferl.training.distributed); after
    an elastic restart it resumes this torchrun run's directory from its last checkpoint.

    Raises:
        ConfigError / TrainError: user errors, with a one-line message.
    """
    overrides = list(overrides or [])
    if resume is not None:
        if config_path is not None:
            raise TrainError("--resume takes the run's own config.yaml; use --set to change it")
        if init_from is not None:
            raise TrainError("--init-from cannot be combined with --resume")
        if name is not None or runs_dir is not None:
            raise TrainError("--name/--runs-dir cannot be combined with --resume (give the path)")
        target = Path(resume)
    else:
        if name is not None:
            overrides.append(f"train.name={name}")
        if runs_dir is not None:
            overrides.append(f"train.runs_dir={runs_dir}")
        config = load_config(config_path, overrides)
        _check_eval_protocols(config)
        tc = config.train
        target = Path(tc.runs_dir)
        _check_creatable(target, "train.runs_dir (--runs-dir)")
        if tc.name:
            target = target / tc.name
            _check_creatable(target, "train.name (--name)")
    world, overrides = start_world(config_path, overrides, resume)
    try:
        if resume is not None:
            trainer = Trainer.resume(resume, overrides, command=command, world=world)
        else:
            config = load_config(config_path, overrides)  # with the world's device
            run_dir = target if config.train.name else None
            if run_dir is not None and elastic_resume_dir(world, run_dir):
                trainer = Trainer.resume(run_dir, overrides, command=command, world=world)
            else:
                trainer = Trainer(config, command=command, init_from=init_from, world=world)
    except OSError as exc:
        # A write while setting up the run directory (a full disk, no permission): one line.
        if not _is_inside(exc.filename, target):
            raise
        raise TrainError(_write_failure(exc)) from None
    code = trainer.train()
    shutdown(world)
    return code


def _is_inside(filename: Any, directory: Path) -> bool:
    if filename is None:
        return False
    path = Path(os.fsdecode(filename)).resolve()
    root = directory.resolve()
    return path == root or root in path.parents


def _check_eval_protocols(config: Config) -> None:
    """``eval.protocols`` names protocols that exist (checked at train time, not only when the
    run is evaluated)."""
    from saferl.training.evaluation.protocols import resolve_protocols

    try:
        resolve_protocols(list(config.eval.protocols))
    except ValueError as exc:
        raise TrainError(f"eval.protocols: {exc}") from None


def _check_creatable(path: Path, what: str) -> None:
    """``path`` is a directory or can be created as one: no file in the way of it or of a parent.

    Raises:
        TrainError: naming the argument and the path that is not a directory.
    """
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                where = f" (the run directory would be {path})" if p != path else ""
                raise TrainError(f"{what}: {p} is a file, not a directory{where}")
            return
