"""Checkpoint files: plain containers, safe load, hashes, keep-last-K, refusing bad files."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from saferl.training.checkpoint import (
    CheckpointError,
    CheckpointManager,
    CheckpointWriteError,
    RunManifest,
    from_plain,
    get_rng_states,
    load_checkpoint,
    save_checkpoint,
    set_rng_states,
    to_plain,
)


def test_numpy_arrays_and_generator_states_round_trip_through_weights_only_load(tmp_path):
    gen = np.random.default_rng(7)
    gen.random(3)
    state = {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3),
        "u64": np.array([2**63 + 5, 1], dtype=np.uint64),
        "u32": np.array([1, 2**32 - 1], dtype=np.uint32),
        "bool": np.array([True, False]),
        "scalar": np.float64(2.5),
        "zero_d": np.array(3, dtype=np.int64),
        "gen": gen.bit_generator.state,
        "tensor": torch.randn(3),
        "nested": [{"a": (1, "x", None)}],
    }
    save_checkpoint(state, tmp_path / "c.pt")
    # The file loads with torch's safe loader directly (no pickled classes).
    torch.load(tmp_path / "c.pt", weights_only=True)
    back = load_checkpoint(tmp_path / "c.pt")
    for key in ("f32", "u64", "u32", "bool", "zero_d"):
        assert back[key].dtype == state[key].dtype
        np.testing.assert_array_equal(back[key], state[key])
    assert back["scalar"] == 2.5
    assert torch.equal(back["tensor"], state["tensor"])
    assert back["nested"] == [{"a": (1, "x", None)}]
    g2 = np.random.default_rng()
    g2.bit_generator.state = back["gen"]
    np.testing.assert_array_equal(g2.random(5), gen.random(5))


def test_to_plain_refuses_objects():
    with pytest.raises(TypeError, match="object"):
        to_plain({"x": object()})


def test_rng_states_restore_python_numpy_and_torch_streams():
    gen = np.random.default_rng(3)
    states = from_plain(to_plain(get_rng_states({"g": gen})))
    expected = (random.random(), np.random.rand(), torch.rand(1).item(), gen.random())  # noqa: NPY002
    set_rng_states(states, {"g": gen})
    got = (random.random(), np.random.rand(), torch.rand(1).item(), gen.random())  # noqa: NPY002
    assert got == expected


def _manager(tmp_path, keep=2):
    manifest = RunManifest(tmp_path / "manifest.json")
    return CheckpointManager(tmp_path / "checkpoints", manifest, keep=keep)


def test_keeps_last_k_epoch_files_and_records_hashes(tmp_path):
    mgr = _manager(tmp_path, keep=2)
    for epoch in (1, 2, 3, 4):
        mgr.save({"epoch": epoch}, epoch=epoch, env_steps=10 * epoch)
    files = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert files == ["epoch_3.pt", "epoch_4.pt", "last.pt"]
    recorded = RunManifest(tmp_path / "manifest.json").checkpoints
    assert set(recorded) == {"epoch_3.pt", "epoch_4.pt", "last.pt"}
    assert recorded["last.pt"]["sha256"] == recorded["epoch_4.pt"]["sha256"]
    assert mgr.load_latest()[0] == {"epoch": 4}


def test_corrupt_last_checkpoint_is_refused_and_previous_used(tmp_path, caplog):
    mgr = _manager(tmp_path, keep=3)
    mgr.save({"epoch": 1}, epoch=1, env_steps=10)
    mgr.save({"epoch": 2}, epoch=2, env_steps=20)
    # Flip one byte of last.pt and of epoch_2.pt (same content): both must be refused.
    for name in ("last.pt", "epoch_2.pt"):
        p = tmp_path / "checkpoints" / name
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0xFF
        p.write_bytes(bytes(data))
    reloaded = CheckpointManager(
        tmp_path / "checkpoints", RunManifest(tmp_path / "manifest.json"), keep=3
    )
    with caplog.at_level("WARNING"):
        state, path = reloaded.load_latest()
    assert state == {"epoch": 1} and path.name == "epoch_1.pt"
    assert "does not match the manifest" in caplog.text


def test_truncated_file_fails_to_load_with_clear_message(tmp_path):
    p = tmp_path / "c.pt"
    save_checkpoint({"w": torch.ones(100)}, p)
    p.write_bytes(p.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="cannot be loaded"):
        load_checkpoint(p)


def test_file_without_manifest_entry_is_refused(tmp_path):
    mgr = _manager(tmp_path)
    mgr.save({"epoch": 1}, epoch=1, env_steps=10)
    # A file written but not yet recorded (a kill between write and manifest update).
    save_checkpoint({"epoch": 2}, tmp_path / "checkpoints" / "epoch_2.pt")
    state, path = mgr.load_latest()
    assert state == {"epoch": 1} and path.name == "last.pt"


def test_no_usable_checkpoint_raises(tmp_path):
    mgr = _manager(tmp_path)
    with pytest.raises(CheckpointError, match="no usable checkpoint"):
        mgr.load_latest()


def test_a_full_disk_while_last_pt_is_replaced_leaves_the_newer_epoch_file_to_resume_from(
    tmp_path, monkeypatch
):
    import errno

    import saferl.utils

    mgr = _manager(tmp_path, keep=3)
    mgr.save({"epoch": 1}, epoch=1, env_steps=10)
    original = saferl.utils.atomic_write

    def disk_full_for_last(path, write):
        if Path(path).name == "last.pt":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return original(path, write)

    monkeypatch.setattr(saferl.utils, "atomic_write", disk_full_for_last)
    with pytest.raises(CheckpointWriteError, match=r"cannot write last.pt in .*: No space left"):
        mgr.save({"epoch": 2}, epoch=2, env_steps=20)
    monkeypatch.undo()
    reloaded = CheckpointManager(tmp_path / "checkpoints", RunManifest(tmp_path / "manifest.json"))
    assert reloaded.manifest.checkpoints["last.pt"]["epoch"] == 1  # the stale one verifies
    state, path = reloaded.load_latest()
    assert state == {"epoch": 2} and path.name == "epoch_2.pt"


def test_a_checkpoint_path_that_is_not_a_file_is_refused_and_reported(tmp_path):
    mgr = _manager(tmp_path, keep=3)
    mgr.save({"epoch": 1}, epoch=1, env_steps=10)
    (tmp_path / "checkpoints" / "last.pt").unlink()
    (tmp_path / "checkpoints" / "last.pt").mkdir()
    assert mgr.non_files() == [tmp_path / "checkpoints" / "last.pt"]
    with pytest.raises(CheckpointError, match="is not a regular file"):
        mgr.load(tmp_path / "checkpoints" / "last.pt")
    assert mgr.load_latest()[1].name == "epoch_1.pt"
    with pytest.raises(CheckpointWriteError, match=r"cannot write last.pt in "):
        mgr.save({"epoch": 2}, epoch=2, env_steps=20)


def test_stale_temp_files_of_atomic_writes_are_removed(tmp_path):
    from saferl.utils import atomic_write_text, remove_stale_temp_files

    atomic_write_text(tmp_path / "a.txt", "kept")
    (tmp_path / ".a.txt.k2j3.tmp").write_text("half")
    (tmp_path / "other.tmp").write_text("not ours")
    assert remove_stale_temp_files(tmp_path) == [tmp_path / ".a.txt.k2j3.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "other.tmp"]
