"""Training on several processes with ``torch.distributed``: the process group, the split of
env instances over ranks, what crosses ranks once per epoch, checkpoints that hold every rank's
state, and the ``torchrun`` launcher behind ``saferl train --nproc``.

One code path: a world of size 1 (a plain ``saferl train``) is the normal case, where every
method here is local and free. Under ``torchrun`` (the environment has ``WORLD_SIZE`` and
``RANK``) :func:`init_world` forms the process group and the trainer runs the same loop on
every rank:

* ``env.num_envs`` is the number of instances over all ranks: rank ``r`` of ``W`` builds
  ``num_envs / W`` of them, from global instance ``r * num_envs / W``; saferl envs key every
  random stream by ``(seed, global index)`` and the collector keys the exploration noise the same
  way, so W ranks see the episodes one process with all instances sees. ``train.steps_per_epoch``
  and ``train.total_steps`` count steps over all ranks.
* The algorithm makes every reduction over data through :mod:`saferl.algos.dist` (gradients,
  Fisher-vector products, advantage and normaliser statistics, J_c, minibatches drawn over the
  global samples), so every rank takes the same step with the same weights.
* Once per epoch: the episode statistics of the rollout (and whether a rank's env failed), the
  stop decision (callbacks, SIGINT/SIGTERM) and, every ``distributed.check_every`` epochs, a
  digest of the weights cross ranks.
* Rank 0 writes the run directory and talks to trackers; the other ranks write nothing.
  A checkpoint (written by rank 0) holds every rank's env, collector and RNG state; with
  ``distributed.zero`` the critics' optimiser state is gathered from its shards first.
* Fault tolerance is torchrun's: with ``--max-restarts K`` a failed worker makes torchrun
  restart the whole group, and the restarted workers resume the run from its last checkpoint
  (:func:`elastic_resume_dir`), which continues exactly as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch

from saferl.config import ConfigError, DistributedConfig
from saferl.training.callbacks import PlotCallback
from saferl.training.checkpoint import CheckpointManager, RunManifest

logger = logging.getLogger(__name__)

__all__ = [
    "DistributedError",
    "World",
    "elastic_resume_dir",
    "init_world",
    "launch",
    "launched_by_torchrun",
    "shutdown",
    "start_world",
    "torchrun_command",
]

#: the environment variables torchrun gives every worker (the ones read here)
_RANK_VARS = ("RANK", "WORLD_SIZE")


class DistributedError(ConfigError):
    """The process group cannot form or the ranks disagree (one-line message, CLI exit 2)."""


def launched_by_torchrun() -> bool:
    """Whether this process is a worker started by torchrun (``RANK`` and ``WORLD_SIZE`` set)."""
    return all(v in os.environ for v in _RANK_VARS)


def _dist() -> Any:
    import torch.distributed as dist

    return dist


@dataclass(frozen=True)
class World:
    """This process's place among the training processes.

    Attributes:
        rank: global rank (0 writes the run directory).
        size: number of ranks.
        local_rank: rank on this machine (picks the CUDA device).
        device: the torch device this rank trains on.
        backend: the process group's backend ("" without a process group).
        zero: shard the critics' optimiser state (``distributed.zero``) in this world.
        check_every: epochs between weight-digest checks (0: never).
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    backend: str = ""
    zero: bool = False
    check_every: int = 0

    # -- who does what -----------------------------------------------------------------------
    @property
    def is_writer(self) -> bool:
        """Whether this rank writes files and talks to trackers (rank 0)."""
        return self.rank == 0

    @property
    def grouped(self) -> bool:
        """Whether a process group exists (torchrun started this process)."""
        return bool(self.backend)

    @property
    def distributed(self) -> bool:
        """More than one rank."""
        return self.size > 1

    def manifest_fields(self) -> dict[str, Any]:
        """What the run's manifest records about the world (nothing for a plain process)."""
        if not self.grouped:
            return {}
        return {
            "distributed": {
                "world_size": self.size,
                "backend": self.backend,
                "zero": self.zero,
                "elastic_run_id": os.environ.get("TORCHELASTIC_RUN_ID"),
            }
        }

    # -- env instances -----------------------------------------------------------------------
    def local_envs(self, num_envs: int) -> tuple[int, int]:
        """``(instances on this rank, global index of its first)`` of ``num_envs`` in all.

        Raises:
            DistributedError: ``num_envs`` does not split evenly over the ranks.
        """
        if num_envs % self.size:
            raise DistributedError(
                f"env.num_envs: {num_envs} instances do not split evenly over {self.size} "
                f"ranks (use a multiple of {self.size})"
            )
        n = num_envs // self.size
        return n, self.rank * n

    # -- per-epoch agreement -----------------------------------------------------------------
    def rollout_stats(self, batch: Any | None) -> tuple[dict[str, Any], bool]:
        """The rollout's episode statistics over all ranks (``ep_return``, ``ep_cost``,
        ``ep_len``, ``episodes``, ``ep_cost/<name>``, per level ``ep_return/<level>``,
        ``ep_cost/<level>``, ``episodes/<level>``, ``steps``) and whether some rank's collection
        failed (``batch`` None there). One collective."""
        if not self.distributed:
            if batch is None:
                return {}, True
            return {**batch.episode_stats(), "steps": int(batch.num_steps)}, False
        names = tuple(batch.component_names) if batch is not None else ()
        k = len(names) if batch is not None and batch.ep_component_costs is not None else 0
        levels = tuple(batch.group_names) if batch is not None else ()
        if batch is None or batch.ep_groups is None:
            levels = ()
        m = len(levels)
        # [failed, steps, episodes, sum return, sum cost, sum length, sum cost per component,
        #  per level: episodes, sum return, sum cost]
        v = torch.zeros(6 + k + 3 * m, dtype=torch.float64)
        if batch is None:
            v[0] = 1.0
        else:
            v[1] = float(batch.num_steps)
            v[2] = float(len(batch.ep_returns))
            v[3] = float(np.sum(batch.ep_returns))
            v[4] = float(np.sum(batch.ep_costs))
            v[5] = float(np.sum(batch.ep_lengths))
            if k:
                v[6 : 6 + k] = torch.from_numpy(np.asarray(batch.ep_component_costs).sum(0))
            for i in range(m):
                sel = np.asarray(batch.ep_groups) == i
                base = 6 + k + 3 * i
                v[base] = float(sel.sum())
                v[base + 1] = float(np.sum(batch.ep_returns[sel]))
                v[base + 2] = float(np.sum(batch.ep_costs[sel]))
        # a failed rank does not know the component count: agree on the longest vector
        width = torch.tensor([float(v.numel())], dtype=torch.float64)
        _all_reduce(width, "max")
        if v.numel() < int(width):
            v = torch.cat([v, torch.zeros(int(width) - v.numel(), dtype=torch.float64)])
        _all_reduce(v, "sum")
        if v[0] > 0:
            return {}, True
        n = float(v[2])
        nan = float("nan")
        out: dict[str, Any] = {
            "ep_return": float(v[3]) / n if n else nan,
            "ep_cost": float(v[4]) / n if n else nan,
            "ep_len": float(v[5]) / n if n else nan,
            "episodes": int(n),
        }
        for i, name in enumerate(names[:k]):
            out[f"ep_cost/{name}"] = float(v[6 + i]) / n if n else nan
        for i, name in enumerate(levels):
            base = 6 + k + 3 * i
            n_i = float(v[base])
            out[f"ep_return/{name}"] = float(v[base + 1]) / n_i if n_i else nan
            out[f"ep_cost/{name}"] = float(v[base + 2]) / n_i if n_i else nan
            out[f"episodes/{name}"] = int(n_i)
        out["steps"] = int(v[1])
        return out, False

    def agree(self, flag: bool) -> bool:
        """True on every rank when it is True on any (one collective)."""
        if not self.distributed:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], dtype=torch.float64)
        _all_reduce(t, "max")
        return bool(t[0] > 0)

    def agree_stop(self, keep_going: bool, signum: int | None) -> tuple[bool, int | None]:
        """Keep going only if every rank does; a signal any rank received stops them all."""
        if not self.distributed:
            return keep_going, signum
        t = torch.tensor([0.0 if keep_going else 1.0, float(signum or 0)], dtype=torch.float64)
        _all_reduce(t, "max")
        return bool(t[0] == 0), (int(t[1]) or None)

    def from_writer(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` computed on rank 0 and sent to every rank (e.g. an evaluation)."""
        if not self.distributed:
            return fn()
        box = [fn() if self.is_writer else None]
        _dist().broadcast_object_list(box, src=0)
        return box[0]

    def check_in_sync(self, algo: Any, epoch: int) -> None:
        """Every ``check_every`` epochs: the algorithm's weights are bit-identical on every rank.

        Raises:
            DistributedError: they differ (a rank took another step: a bug, or a rank-local
                failure), naming the epoch.
        """
        if not self.distributed or not self.check_every or epoch % self.check_every:
            return
        digest = hashlib.blake2b(digest_size=7)
        state = algo.state_dict()
        for key in ("actor", "critics"):
            for name, t in sorted((state.get(key) or {}).items()):
                digest.update(name.encode())
                digest.update(t.detach().cpu().contiguous().numpy().tobytes())
        value = float(int.from_bytes(digest.digest(), "little"))  # < 2**56: exact in float64
        lo = torch.tensor([value], dtype=torch.float64)
        hi = lo.clone()
        _all_reduce(lo, "min")
        _all_reduce(hi, "max")
        if lo[0] != hi[0]:
            raise DistributedError(
                f"distributed: the ranks hold different weights after epoch {epoch}; stopping "
                "(the last checkpoint is consistent)"
            )

    # -- algorithm -----------------------------------------------------------------------------
    def prepare_algorithm(self, algo: Any) -> None:
        """Make every rank start from rank 0's algorithm state (the initial weights, normaliser
        and generator are broadcast), then shard the critics' optimiser with ``distributed.zero``.

        Raises:
            DistributedError: ``distributed.zero`` with an algorithm that cannot shard its
                critics' optimiser.
        """
        if self.zero and not callable(getattr(algo, "shard_critic_optimizer", None)):
            raise DistributedError(
                f"distributed.zero: algorithm '{type(algo).__name__}' has no critics' "
                "optimiser to shard (it needs shard_critic_optimizer); set distributed.zero: "
                "false"
            )
        if self.distributed:
            box = [algo.state_dict() if self.is_writer else None]
            _dist().broadcast_object_list(box, src=0)
            if not self.is_writer:
                algo.load_state_dict(box[0])
        if self.zero and self.grouped:
            algo.shard_critic_optimizer()
        elif self.zero:
            logger.info("distributed.zero has no effect in a single process")

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoint_state(self, state: dict[str, Any], algo: Any) -> dict[str, Any] | None:
        """The checkpoint of the whole world from this rank's trainer ``state``: rank 0's, with
        every rank's ``env``, ``collector`` and ``rng`` under ``distributed.ranks`` and, with a
        sharded optimiser, the algorithm's consolidated state. A collective: every rank calls
        it; rank 0 gets the state, the others None. ``state`` itself in a single process."""
        consolidate = getattr(algo, "consolidated_state_dict", None)
        if self.zero and self.grouped and callable(consolidate):
            full = consolidate()
            if full is not None:
                state = {**state, "algo": full}
        if not self.distributed:
            return state
        mine = {k: state[k] for k in ("env", "collector", "rng")}
        gathered: list[Any] | None = [None] * self.size if self.is_writer else None
        _dist().gather_object(mine, gathered, dst=0)
        if not self.is_writer:
            return None
        return {**state, "distributed": {"world_size": self.size, "ranks": gathered}}

    def local_state(self, state: Mapping[str, Any]) -> Mapping[str, Any]:
        """This rank's part of a checkpoint (its own env, collector and RNG state).

        Raises:
            DistributedError: the checkpoint was taken by another number of ranks.
        """
        part = state.get("distributed")
        saved = int(part["world_size"]) if part else 1
        if saved != self.size:
            raise DistributedError(
                f"the checkpoint was taken by {saved} rank(s); resume it with {saved} (got "
                f"{self.size}): each rank's env state is in it"
            )
        if not part:
            return state
        return {**state, **part["ranks"][self.rank]}


def _all_reduce(t: torch.Tensor, op: str) -> None:
    from saferl.algos.dist import all_reduce_

    all_reduce_(t, op)


# ----------------------------------------------------------------------------------------------
# Forming and ending the world
# ----------------------------------------------------------------------------------------------


def _env_int(name: str, default: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None:
        if default is None:
            raise DistributedError(f"distributed: the environment variable {name} is not set")
        return default
    try:
        return int(value)
    except ValueError:
        raise DistributedError(f"distributed: {name}={value!r} is not an integer") from None


def init_world(dcfg: DistributedConfig, device: str = "cpu") -> World:
    """Form the process group when torchrun started this process; else the world of one.

    The backend: ``distributed.backend``; ``auto`` is gloo on CPU and ``cpu:gloo,cuda:nccl`` on
    CUDA (NCCL for CUDA tensors, gloo for the CPU ones). On CUDA each rank trains on
    ``cuda:LOCAL_RANK``. ``init_process_group`` waits at most ``distributed.timeout_s`` (also the
    timeout of every collective).

    Raises:
        DistributedError: the settings cannot work here (NCCL without CUDA) or the group did
            not form in time (one line: rank, world size, address, the reason).
    """
    if not launched_by_torchrun():
        return World(device=device, zero=dcfg.zero, check_every=dcfg.check_every)
    dist = _dist()
    rank, size = _env_int("RANK"), _env_int("WORLD_SIZE")
    local_rank = _env_int("LOCAL_RANK", 0)
    cuda = torch.device(device).type == "cuda"
    if cuda:
        if not torch.cuda.is_available() or local_rank >= torch.cuda.device_count():
            raise DistributedError(
                f"train.device: {device} on local rank {local_rank}, but this machine has "
                f"{torch.cuda.device_count() if torch.cuda.is_available() else 0} CUDA "
                "device(s); start at most that many processes per machine"
            )
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    backend = dcfg.backend
    if backend == "auto":
        backend = "cpu:gloo,cuda:nccl" if cuda else "gloo"
    elif backend == "nccl" and not cuda:
        raise DistributedError(
            "distributed.backend: nccl needs train.device: cuda; use gloo (or auto) on CPU"
        )
    if dist.is_initialized():  # e.g. a caller formed it already
        return World(
            rank, size, local_rank, device, str(dist.get_backend()), dcfg.zero, dcfg.check_every
        )
    where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    timeout = timedelta(seconds=dcfg.timeout_s)
    try:
        dist.init_process_group(
            backend=backend,
            rank=rank,
            world_size=size,
            timeout=timeout,
            store=_attempt_store(size, timeout),
            **({"device_id": torch.device(device)} if cuda else {}),
        )
        # a first collective: every rank is there (the store alone does not prove it)
        _all_reduce(torch.ones(1), "sum")
    except Exception as exc:  # DistStoreError, RuntimeError, timeouts: all the same to a user
        reason = " ".join(str(exc).split())[:200]
        raise DistributedError(
            f"distributed: the process group did not form within distributed.timeout_s="
            f"{dcfg.timeout_s:g} s (rank {rank} of {size}, rendezvous {where}, backend "
            f"{backend}): {exc.__class__.__name__}: {reason}"
        ) from None
    return World(rank, size, local_rank, device, backend, dcfg.zero, dcfg.check_every)


def start_world(
    config_path: str | None, overrides: list[str], resume: str | None
) -> tuple[World | None, list[str]]:
    """What ``saferl train`` does first: under torchrun, form the world from the run's
    ``distributed`` settings (the config file or, with ``resume``, the run's ``config.yaml``,
    plus ``overrides``); outside torchrun, nothing (None: the world of one process).

    Returns the world and the overrides, with ``train.device=cuda:LOCAL_RANK`` added on CUDA.
    Ranks other than 0 log only warnings and errors to the console.

    Raises:
        DistributedError: the world cannot form, or an elastic run without a name.
    """
    if not launched_by_torchrun():
        return None, overrides
    from saferl.config import load_config
    from saferl.log import setup_logging

    path = str(Path(resume) / "config.yaml") if resume is not None else config_path
    if resume is not None and not Path(str(path)).is_file():
        return None, overrides  # Trainer.resume says that there is no run there
    cfg = load_config(path, overrides)
    if resume is None and cfg.train.name is None and _env_int("TORCHELASTIC_MAX_RESTARTS", 0):
        raise DistributedError(
            "train.name: torchrun --max-restarts restarts the workers, which resume the run "
            "directory they find by its name; give the run one (--name NAME)"
        )
    world = init_world(cfg.distributed, cfg.train.device)
    if not world.is_writer:  # one console for the run: rank 0's
        setup_logging(max(logging.getLogger("saferl").getEffectiveLevel(), logging.WARNING))
    if world.device != cfg.train.device:
        overrides = [*overrides, f"train.device={world.device}"]
    return world, overrides


def _attempt_store(world_size: int, timeout: timedelta) -> Any:
    """The key-value store the process group forms through, or None for torch's own (env://).

    When torchrun's agent hosts the store (``TORCHELASTIC_USE_AGENT_STORE``, its default with
    the c10d rendezvous) the same store serves every restart of the group, and the addresses the
    previous attempt's processes published there are still in it: a restarted rank may read a
    dead peer's address and fail to connect (seen with gloo; PyTorch issue 135712 with NCCL).
    Keys are therefore prefixed with the run id and the restart count.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    dist = _dist()
    store = dist.TCPStore(
        host_name=os.environ["MASTER_ADDR"],
        port=_env_int("MASTER_PORT"),
        world_size=world_size,
        is_master=False,
        timeout=timeout,
    )
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "")
    return dist.PrefixStore(f"saferl/{run_id}/attempt_{restart_count()}/", store)


def shutdown(world: World | None) -> None:
    """End the process group (every rank reaches this before any tears it down)."""
    if world is None or not world.grouped:
        return
    dist = _dist()
    if dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


# ----------------------------------------------------------------------------------------------
# Elastic restarts
# ----------------------------------------------------------------------------------------------


def restart_count() -> int:
    """How many times torchrun has restarted this worker group (0 outside torchrun)."""
    try:
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    except ValueError:
        return 0


def elastic_resume_dir(world: World | None, run_dir: Path) -> bool:
    """After torchrun restarted the group: whether ``run_dir`` is this torchrun run's directory,
    to be resumed (``Trainer.resume``: from its last checkpoint, or over from scratch when the
    group failed before the first checkpoint was complete).

    It is when its manifest records this ``TORCHELASTIC_RUN_ID``; anything else (no restart,
    another run's directory, no manifest yet) starts as a new run. Rank 0 decides and tells
    every rank.
    """
    if world is None or not world.grouped or restart_count() == 0:
        return False

    def decide() -> bool:
        manifest = run_dir / "manifest.json"
        if not manifest.is_file():
            return False
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        run_id = (data.get("distributed") or {}).get("elastic_run_id")
        return run_id is not None and run_id == os.environ.get("TORCHELASTIC_RUN_ID")

    return bool(world.from_writer(decide))


class NoWriteManifest(RunManifest):
    """The manifest as ranks other than 0 hold it: in memory only."""

    def write(self) -> None:
        pass


class NoWriteCheckpoints(CheckpointManager):
    """Checkpoints as ranks other than 0 see them: the paths rank 0 writes, nothing written."""

    def save(self, state: Any, *, epoch: int, env_steps: int) -> Path:
        return self.directory / f"epoch_{epoch}.pt"

    def save_best(self, state: Any, *, epoch: int, env_steps: int) -> Path:
        return self.directory / "best.pt"


class NoPlots(PlotCallback):
    """The learning-curve callback on ranks other than 0: the same state, no files."""

    def plot(self) -> list[Path]:
        return []


class NoLock:
    """The run-directory lock on ranks other than 0 (rank 0 holds the real one)."""

    def release(self) -> None:
        pass


# ----------------------------------------------------------------------------------------------
# Launching
# ----------------------------------------------------------------------------------------------


def torchrun_command(
    worker_args: Sequence[str],
    *,
    nproc_per_node: int,
    max_restarts: int = 0,
    nnodes: int = 1,
    node_rank: int | None = None,
    rdzv_endpoint: str | None = None,
    rdzv_id: str | None = None,
) -> list[str]:
    """The argv of ``python -m torch.distributed.run`` starting ``python -m saferl
    <worker_args>`` on ``nproc_per_node`` processes: ``--standalone`` on one machine, a c10d
    rendezvous at ``rdzv_endpoint`` for several."""
    cmd = [sys.executable, "-m", "torch.distributed.run"]
    if nnodes == 1 and rdzv_endpoint is None:
        cmd.append("--standalone")
    else:
        if rdzv_endpoint is None:
            raise ValueError("several machines need a rendezvous endpoint (HOST:PORT)")
        cmd += [
            f"--nnodes={nnodes}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={rdzv_endpoint}",
            f"--rdzv-id={rdzv_id or 'saferl'}",
        ]
        if node_rank is not None:
            cmd.append(f"--node-rank={node_rank}")
    cmd += [f"--nproc-per-node={nproc_per_node}", f"--max-restarts={max_restarts}"]
    return [*cmd, "-m", "saferl", *worker_args]


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def launch(worker_args: Sequence[str], *, nproc_per_node: int, **kwargs: Any) -> int:
    """Run ``saferl <worker_args>`` on ``nproc_per_node`` processes under torchrun and wait.

    The command is an argv list (no shell). torchrun runs in its own session: a Ctrl-C here is
    passed to it once, and it passes it to every worker (which checkpoints and stops), instead
    of every process getting it from the terminal at once. Returns torchrun's exit status.
    """
    import signal

    cmd = torchrun_command(worker_args, nproc_per_node=nproc_per_node, **kwargs)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")  # torchrun would set it too, with a warning banner
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)

    def forward(signum: int, frame: Any) -> None:
        proc.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return proc.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
