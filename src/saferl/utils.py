"""Small helpers shared across rooms: atomic file writes, hashing, the cache directory and
choice parsing.

A leaf module (standard library only): every room may import it, ``saferl.envs`` included.

A crash or kill never leaves a half-written file: data goes to a temporary file in the same
directory, is flushed and fsynced, then renamed over the target with :func:`os.replace`.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "accepts_kwarg",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "cache_dir",
    "names_param",
    "parse_choice",
    "remove_stale_temp_files",
    "sha256_file",
]


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(f)`` on a temp file beside ``path``, fsync it, then rename it to ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        # mkstemp creates 0600; give the file the permissions a plain open() would.
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    # Make the rename itself durable.
    try:
        dir_fd = os.open(target.parent, os.O_RDONLY)
    except OSError:
        return target
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# read once: os.umask can only be read by setting it, which is not thread-safe per write
_FILE_MODE = 0o666 & ~_umask()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode(encoding))


def cache_dir() -> Path:
    """saferl's cache directory (not created here): ``$SAFERL_CACHE_DIR`` if set and not
    empty, else ``$XDG_CACHE_HOME/saferl``, else ``~/.cache/saferl``."""
    base = os.environ.get("SAFERL_CACHE_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "saferl"


def parse_choice(value: Any, choices: Iterable[str], argname: str) -> str:
    """``value`` if it is one of the names ``choices`` (a string, compared exactly).

    Raises:
        ValueError: ``"<argname>: unknown value <value>; expected one of [...]"``.
    """
    names = list(choices)
    if not isinstance(value, str) or value not in names:
        raise ValueError(f"{argname}: unknown value {value!r}; expected one of {names}")
    return value


def remove_stale_temp_files(directory: str | Path) -> list[Path]:
    """Delete the temp files :func:`atomic_write` leaves in ``directory`` when its process is
    killed mid-write (``.<name>.<random>.tmp``); returns those removed. Only call it while no
    other process can be writing there (e.g. under the run directory's lock)."""
    d = Path(directory)
    if not d.is_dir():
        return []
    removed = []
    for p in d.glob(".*.tmp"):
        if p.is_file() and not p.is_symlink():
            try:
                p.unlink()
            except FileNotFoundError:
                continue
            removed.append(p)
    return sorted(removed)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's contents."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def accepts_kwarg(fn: Any, name: str) -> bool:
    """Whether ``fn`` can be called with keyword ``name`` (named or through ``**kwargs``).

    Callables whose signature cannot be inspected are assumed to accept it.
    """
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def names_param(fn: Any, name: str) -> bool:
    """Whether ``fn``'s signature names the parameter ``name`` (``**kwargs`` does not count)."""
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
