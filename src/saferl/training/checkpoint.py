"""Checkpoints: atomic save, safe load, keep-last-K, hashes in the run manifest, RNG states.

A checkpoint is a ``torch.save`` of plain containers (dicts, lists, tuples, str, int, float,
bool, None) and tensors, so it loads with ``torch.load(weights_only=True)``: no pickled classes,
no code execution on load. numpy arrays are stored as ``{"__ndarray__": tensor, ...}`` and turned
back into arrays by :func:`from_plain`; numpy ``Generator`` states are their ``bit_generator.state``
dicts (plain ints).

Layout in ``runs/<name>/checkpoints/``::

    epoch_<N>.pt   every ``checkpoint_every`` epochs, the last ``keep`` kept
    last.pt        the newest checkpoint (same bytes as the newest epoch_<N>.pt)
    best.pt        written by the BestModel callback

Every file is written to a temp file beside it, flushed, fsynced and renamed
(:func:`saferl.utils.atomic_write`); its SHA-256 is then recorded under ``checkpoints`` in
``manifest.json``. :meth:`CheckpointManager.load_latest` takes the newest checkpoint (by the epoch
the manifest records) that loads and matches its hash, refusing the others with a clear log
message: a write that a kill or a full disk interrupted leaves either the previous file or a file
without a recorded hash, never a half-written one that is used.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from saferl.utils import atomic_write_bytes, atomic_write_text, sha256_file

logger = logging.getLogger(__name__)

__all__ = [
    "CheckpointError",
    "CheckpointManager",
    "CheckpointWriteError",
    "ManifestError",
    "RunManifest",
    "from_plain",
    "get_rng_states",
    "load_checkpoint",
    "save_checkpoint",
    "set_rng_states",
    "to_plain",
]

CHECKPOINT_FORMAT = 1
_EPOCH_RE = re.compile(r"^epoch_(\d+)\.pt$")
# numpy dtypes that torch.from_numpy maps one to one; anything else is stored as raw bytes.
_DIRECT_DTYPES = {
    np.dtype(t) for t in (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64)
} | {np.dtype(np.uint8), np.dtype(np.bool_)}


_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_MAX_MANIFEST_BYTES = 16 << 20  # a manifest is a few kB; anything this large is not one


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used (missing, unreadable, corrupt or hash mismatch)."""


class ManifestError(CheckpointError):
    """A ``manifest.json`` that cannot be read as a run manifest (one-line message)."""


class CheckpointWriteError(CheckpointError):
    """A checkpoint or the manifest could not be written (disk full, permissions, a directory
    in the way). The message names the file and its directory; ``errno`` is the OS error's."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


def _write_error(path: Path, exc: OSError) -> CheckpointWriteError:
    reason = exc.strerror or exc.__class__.__name__
    return CheckpointWriteError(
        f"cannot write {path.name} in {path.parent}: {reason}", errno=exc.errno
    )


# --------------------------------------------------------------------------------------------
# Plain containers
# --------------------------------------------------------------------------------------------


def to_plain(obj: Any) -> Any:
    """Convert ``obj`` into containers that ``torch.load(weights_only=True)`` accepts.

    numpy arrays become ``{"__ndarray__": tensor, "dtype": str, "shape": list}``, numpy scalars
    Python numbers, tensors are detached and moved to CPU. Raises ``TypeError`` on anything else
    (custom classes must provide their own ``state_dict``).
    """
    if isinstance(obj, np.generic):  # before float: np.float64 subclasses float
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        if arr.dtype in _DIRECT_DTYPES:
            tensor = torch.from_numpy(arr.copy())
        elif arr.dtype.kind in "biufc":
            tensor = torch.from_numpy(arr.reshape(-1).view(np.uint8).copy())
        else:
            raise TypeError(f"cannot checkpoint a numpy array of dtype {arr.dtype}")
        return {"__ndarray__": tensor, "dtype": arr.dtype.str, "shape": list(arr.shape)}
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"checkpoint dict keys must be str or int, got {type(k).__name__}")
            out[k] = to_plain(v)
        return out
    if isinstance(obj, tuple):
        return tuple(to_plain(v) for v in obj)
    if isinstance(obj, list):
        return [to_plain(v) for v in obj]
    raise TypeError(f"cannot checkpoint an object of type {type(obj).__name__}")


def from_plain(obj: Any) -> Any:
    """Inverse of :func:`to_plain`: ``{"__ndarray__": ...}`` entries become numpy arrays again."""
    if isinstance(obj, dict):
        if "__ndarray__" in obj and "dtype" in obj and "shape" in obj:
            tensor = obj["__ndarray__"]
            dtype = np.dtype(obj["dtype"])
            raw = tensor.numpy()
            if raw.dtype != dtype:
                raw = raw.view(dtype)
            return raw.reshape(obj["shape"]).copy()
        return {k: from_plain(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(from_plain(v) for v in obj)
    if isinstance(obj, list):
        return [from_plain(v) for v in obj]
    return obj


# --------------------------------------------------------------------------------------------
# RNG states
# --------------------------------------------------------------------------------------------


def get_rng_states(generators: Mapping[str, np.random.Generator] | None = None) -> dict[str, Any]:
    """Python ``random``, numpy's legacy global state, torch CPU (and CUDA) and named Generators.

    The legacy numpy state is stored as a dict of plain values (its tuple form does not load with
    ``weights_only=True``).
    """
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # noqa: NPY002 (third-party code may use it)
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy_legacy": {
            "name": name,
            "keys": np.asarray(keys),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["torch_cuda"] = list(torch.cuda.get_rng_state_all())
    states["generators"] = {k: g.bit_generator.state for k, g in (generators or {}).items()}
    return states


def set_rng_states(
    states: Mapping[str, Any], generators: Mapping[str, np.random.Generator] | None = None
) -> None:
    """Restore what :func:`get_rng_states` returned (after :func:`from_plain`)."""
    py = states["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    legacy = states["numpy_legacy"]
    np.random.set_state(  # noqa: NPY002
        (
            legacy["name"],
            np.asarray(legacy["keys"], dtype=np.uint32),
            int(legacy["pos"]),
            int(legacy["has_gauss"]),
            float(legacy["cached_gaussian"]),
        )
    )
    torch.set_rng_state(states["torch"])
    if "torch_cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["torch_cuda"])
    for k, g in (generators or {}).items():
        if k in states.get("generators", {}):
            g.bit_generator.state = states["generators"][k]


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _serialize(state: Mapping[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "state": to_plain(state)}, buf)
    return buf.getvalue()


def save_checkpoint(state: Mapping[str, Any], path: str | Path) -> str:
    """Write ``state`` atomically to ``path``; returns the file's SHA-256 (hex)."""
    data = _serialize(state)
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def load_checkpoint(path: str | Path, *, expected_sha256: str | None = None) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``), optionally checking its SHA-256.

    Raises:
        CheckpointError: missing file, hash mismatch, or a file torch cannot load.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist")
    if expected_sha256 is not None:
        actual = sha256_file(p)
        if actual != expected_sha256:
            raise CheckpointError(
                f"checkpoint {p} is corrupt: SHA-256 {actual[:12]}... does not match the "
                f"manifest's {expected_sha256[:12]}..."
            )
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"checkpoint {p} cannot be loaded ({exc.__class__.__name__}: {str(exc)[:200]})"
        ) from exc
    if not isinstance(blob, dict) or "state" not in blob:
        raise CheckpointError(f"checkpoint {p} is not a saferl checkpoint")
    return from_plain(blob["state"])


def _valid_entry(entry: Any) -> str | None:
    """Why a ``checkpoints`` entry of the manifest is unusable, or None if it is fine."""
    if not isinstance(entry, dict):
        return f"expected an object, got {type(entry).__name__}"
    sha = entry.get("sha256")
    if not isinstance(sha, str) or not _SHA256_RE.match(sha):
        return "no valid sha256 (64 hex digits)"
    for key in ("epoch", "env_steps"):
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{key} must be an integer >= 0"
    return None


class RunManifest:
    """``manifest.json`` of a run directory: written atomically, read back on resume.

    Keys used by the trainer: ``command``, ``seed``, ``git_commit``, ``versions``, ``created``,
    ``resumes`` (list), ``checkpoints`` (file name -> {sha256, epoch, env_steps}), ``status``.

    Reading is strict about what matters: a file that is not a JSON object (random bytes, a list,
    more than 16 MiB) raises :class:`ManifestError`, because without it no checkpoint can be
    verified. A malformed ``checkpoints`` entry is dropped with a warning (that file is then
    refused as unrecorded) and a malformed ``resumes`` list is started afresh.

    Raises:
        ManifestError: the file exists but is not a readable manifest (one-line message).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.data: dict[str, Any] = {}
        #: one line per entry dropped while reading (also logged as warnings)
        self.problems: list[str] = []
        if self.path.exists() or self.path.is_symlink():
            self.data = self._read()
        self.data.setdefault("checkpoints", {})

    def _read(self) -> dict[str, Any]:
        p = self.path
        if not p.is_file():
            raise ManifestError(f"{p} is not a file")
        try:
            with p.open("rb") as fh:
                raw = fh.read(_MAX_MANIFEST_BYTES + 1)
        except OSError as exc:
            raise ManifestError(f"{p} cannot be read ({exc.strerror or exc})") from None
        if len(raw) > _MAX_MANIFEST_BYTES:
            raise ManifestError(f"{p} is larger than {_MAX_MANIFEST_BYTES >> 20} MiB")
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ManifestError(
                f"{p} is not UTF-8 text (invalid byte at offset {exc.start})"
            ) from None
        except json.JSONDecodeError as exc:
            raise ManifestError(
                f"{p} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
            ) from None
        except RecursionError:
            raise ManifestError(f"{p} is nested too deeply to be a manifest") from None
        if not isinstance(data, dict):
            raise ManifestError(f"{p} must hold a JSON object, got a JSON {type(data).__name__}")
        checkpoints = data.get("checkpoints", {})
        if not isinstance(checkpoints, dict):
            raise ManifestError(
                f"{p}: 'checkpoints' must map file names to {{sha256, epoch, env_steps}}, got a "
                f"JSON {type(checkpoints).__name__}"
            )
        for name in list(checkpoints):
            why = _valid_entry(checkpoints[name])
            if why is not None:
                del checkpoints[name]
                self._problem(f"{p}: checkpoint entry {name!r:.60} dropped ({why})")
        if "resumes" in data and not isinstance(data["resumes"], list):
            del data["resumes"]
            self._problem(f"{p}: 'resumes' is not a list; starting it afresh")
        data["checkpoints"] = checkpoints
        return data

    def _problem(self, message: str) -> None:
        self.problems.append(message)
        logger.warning("%s", message)

    @property
    def checkpoints(self) -> dict[str, dict[str, Any]]:
        return self.data["checkpoints"]

    def update(self, **fields: Any) -> None:
        self.data.update(fields)
        self.write()

    def write(self) -> None:
        """Write atomically.

        Raises:
            CheckpointWriteError: the file could not be written (e.g. the disk is full).
        """
        try:
            atomic_write_text(self.path, json.dumps(self.data, indent=2, sort_keys=False) + "\n")
        except OSError as exc:
            raise _write_error(self.path, exc) from None


class CheckpointManager:
    """Keeps ``epoch_N.pt`` (last ``keep``), ``last.pt`` and ``best.pt`` in ``directory``.

    Args:
        directory: the run's ``checkpoints/`` folder.
        manifest: the run's manifest, where each file's SHA-256 is recorded.
        keep: number of ``epoch_N.pt`` files kept.
    """

    #: files of a restarted run are moved here (never deleted)
    DISCARDED = "discarded"

    def __init__(self, directory: str | Path, manifest: RunManifest, keep: int = 3) -> None:
        self.directory = Path(directory)
        self.manifest = manifest
        self.keep = int(keep)

    def _record(self, name: str, sha: str, epoch: int, env_steps: int) -> None:
        self.manifest.checkpoints[name] = {"sha256": sha, "epoch": epoch, "env_steps": env_steps}

    def _write(self, path: Path, data: bytes) -> None:
        try:
            atomic_write_bytes(path, data)
        except OSError as exc:
            raise _write_error(path, exc) from None

    def save(self, state: Mapping[str, Any], *, epoch: int, env_steps: int) -> Path:
        """Write ``epoch_<epoch>.pt`` and ``last.pt``, record hashes, prune old epoch files.

        The epoch file and its hash are on disk before ``last.pt`` is replaced, so an
        interruption at any point leaves the newest complete checkpoint verifiable.

        Raises:
            CheckpointWriteError: a file could not be written (disk full, permissions, ...).
        """
        data = _serialize(state)
        sha = hashlib.sha256(data).hexdigest()
        epoch_path = self.directory / f"epoch_{epoch}.pt"
        self._write(epoch_path, data)
        self._record(epoch_path.name, sha, epoch, env_steps)
        self.manifest.write()
        self._write(self.directory / "last.pt", data)
        self._record("last.pt", sha, epoch, env_steps)
        self._prune()
        self.manifest.write()
        return epoch_path

    def save_best(self, state: Mapping[str, Any], *, epoch: int, env_steps: int) -> Path:
        """Write ``best.pt`` and record its hash.

        Raises:
            CheckpointWriteError: the file could not be written.
        """
        path = self.directory / "best.pt"
        data = _serialize(state)
        self._write(path, data)
        self._record(path.name, hashlib.sha256(data).hexdigest(), epoch, env_steps)
        self.manifest.write()
        return path

    def epoch_files(self) -> list[tuple[int, Path]]:
        """``(epoch, path)`` of the epoch files on disk, newest first."""
        found = []
        for p in self.directory.glob("epoch_*.pt"):
            m = _EPOCH_RE.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
        return sorted(found, reverse=True)

    def _prune(self) -> None:
        for _, p in self.epoch_files()[self.keep :]:
            p.unlink(missing_ok=True)
            self.manifest.checkpoints.pop(p.name, None)

    def candidates(self) -> list[Path]:
        """Resume candidates, newest first: ``last.pt`` and the epoch files ordered by the epoch
        the manifest records for them (``last.pt`` first among equals: it has the same bytes).

        ``last.pt`` is not always the newest: a full disk or a kill while it was being replaced
        leaves the previous one beside a newer, complete ``epoch_N.pt``. Files the manifest does
        not record come last (they are refused by :meth:`load` with the reason).
        """
        found: list[tuple[int, int, int, Path]] = []
        last = self.directory / "last.pt"
        if last.exists() or last.is_symlink():
            found.append((self._recorded_epoch(last.name), 1, -1, last))
        for epoch, p in self.epoch_files():
            found.append((self._recorded_epoch(p.name), 0, epoch, p))
        return [t[3] for t in sorted(found, key=lambda t: t[:3], reverse=True)]

    def _recorded_epoch(self, name: str) -> int:
        entry = self.manifest.checkpoints.get(name)
        return int(entry["epoch"]) if entry is not None else -1

    def load(self, path: str | Path) -> dict[str, Any]:
        """Load one file, checking its hash against the manifest (a file without one is refused).

        Raises:
            CheckpointError: not a regular file, no recorded hash, a hash mismatch or a file
                that does not load.
        """
        p = Path(path)
        if (p.exists() or p.is_symlink()) and not p.is_file():
            raise CheckpointError(f"checkpoint {p} is not a regular file")
        entry = self.manifest.checkpoints.get(p.name)
        if entry is None:
            raise CheckpointError(
                f"checkpoint {p} has no SHA-256 in {self.manifest.path.name} (interrupted write?)"
            )
        return load_checkpoint(p, expected_sha256=entry["sha256"])

    def load_latest(self) -> tuple[dict[str, Any], Path]:
        """The newest checkpoint that loads and matches its hash; refused ones are logged.

        Raises:
            CheckpointError: no usable checkpoint in the directory.
        """
        refused = []
        for p in self.candidates():
            try:
                state = self.load(p)
            except CheckpointError as exc:
                logger.warning(
                    "refusing %s; trying the previous checkpoint",
                    exc,
                    extra={"data": {"event": "checkpoint_refused", "file": p.name}},
                )
                refused.append(p.name)
                continue
            if refused:
                logger.warning("resuming from %s (refused: %s)", p.name, ", ".join(refused))
            return state, p
        where = f" (refused: {', '.join(refused)})" if refused else ""
        raise CheckpointError(f"no usable checkpoint in {self.directory}{where}")

    def non_files(self) -> list[Path]:
        """Checkpoint paths the manager writes that exist but are not regular files (a directory
        named ``last.pt``): a save would fail on them."""
        names = ["last.pt", "best.pt"] + [p.name for _, p in self.epoch_files()]
        paths = [self.directory / n for n in names]
        return [p for p in paths if (p.exists() or p.is_symlink()) and not p.is_file()]

    def discard_all(self) -> list[str]:
        """Move every ``*.pt`` file into ``checkpoints/discarded/`` (replacing older ones there)
        and forget their hashes: a run that restarts from scratch starts with no checkpoints,
        yet nothing it had is deleted. Returns the names moved."""
        moved = []
        if not self.directory.is_dir():
            return moved
        target = self.directory / self.DISCARDED
        for p in sorted(self.directory.glob("*.pt")):
            if not p.is_file():
                continue
            target.mkdir(exist_ok=True)
            os.replace(p, target / p.name)
            moved.append(p.name)
        self.manifest.checkpoints.clear()
        return moved
