"""Atomic writes leave either the old or the new file, with ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from saferl.utils import atomic_write, atomic_write_text, sha256_file


def test_atomic_write_replaces_and_uses_umask_permissions(tmp_path):
    path = tmp_path / "sub" / "f.txt"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in path.parent.iterdir()] == ["f.txt"]


def test_failed_write_keeps_previous_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "f.txt"
    atomic_write_text(path, "good")

    def explode(f):
        f.write(b"half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(path, explode)
    assert path.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_sha256_matches_hashlib(tmp_path):
    import hashlib

    path = tmp_path / "b"
    data = os.urandom(3_000_000)
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
