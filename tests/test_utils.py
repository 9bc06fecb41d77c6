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


def test_cache_dir_prefers_saferl_then_xdg_then_home(monkeypatch, tmp_path):
    from saferl.utils import cache_dir

    monkeypatch.setenv("SAFERL_CACHE_DIR", str(tmp_path / "s"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "s"
    monkeypatch.setenv("SAFERL_CACHE_DIR", "")  # empty counts as unset
    assert cache_dir() == tmp_path / "x" / "saferl"
    monkeypatch.delenv("SAFERL_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert cache_dir() == tmp_path / "h" / ".cache" / "saferl"


def test_parse_choice_returns_a_known_name_and_refuses_anything_else_in_one_line():
    import pytest

    from saferl.utils import parse_choice

    assert parse_choice("hard", {"easy": 1, "hard": 2}, "challenge") == "hard"
    for bad in ("Hard", 1, None, ["hard"]):
        with pytest.raises(
            ValueError, match=r"^challenge: unknown value .*; expected one of \['easy', 'hard'\]$"
        ):
            parse_choice(bad, ("easy", "hard"), "challenge")
