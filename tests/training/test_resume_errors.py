"""What a resume or a new run refuses, in one line and before it writes anything: overrides that
change what the checkpoint depends on, a broken manifest, a file where a directory or a checkpoint
must be, unknown evaluation protocols. And what it still recovers from: a malformed manifest
entry, refused checkpoints logged to the run's log.jsonl."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest
from _standins import HERE
from test_trainer import run_toy

from saferl import cli
from saferl.config import ConfigError
from saferl.training.checkpoint import RunManifest
from saferl.training.trainer import Trainer, TrainError, run_train

SMALL = {"train.total_steps": 192, "train.checkpoint_every": 2}
#: run_train's config file for the stand-ins (the packaged default is the wheelchair's)
TOY_DEFAULT = str(HERE / "toy_default.yaml")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 3-epoch run with a CPO network (hidden sizes [8]); copied per test."""
    import _standins

    _standins.register()
    root = tmp_path_factory.mktemp("finished")
    code, run = run_toy(root, "r", **SMALL, **{"algo.name": "cpo", "algo.hidden_sizes": "[8]"})
    assert code == 0
    return run


@pytest.fixture
def run(finished, tmp_path):
    dst = tmp_path / "r"
    shutil.copytree(finished, dst)
    return dst


def _one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert "\n" not in msg and len(msg) < 400, msg
    return msg


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("env.id=WheelchairSC-v0", "env.id"),
        ("algo.hidden_sizes=[32]", "algo.hidden_sizes"),
        ("env.options={extra_obs: 2}", "env.options"),
        ("algo.activation=relu", "algo.activation"),
    ],
)
def test_resume_refuses_overrides_the_checkpoint_depends_on_in_one_line(run, override, field):
    before = (run / "manifest.json").read_bytes()
    with pytest.raises(TrainError) as info:
        run_train(None, [override], resume=str(run), command=["x"])
    msg = _one_line(info.value)
    assert msg.startswith(f"{field}: a resumed run keeps the value it was trained with"), msg
    assert (run / "manifest.json").read_bytes() == before  # nothing recorded


def test_resume_to_another_algorithm_is_refused_in_one_line(run):
    # Refused by the config already (the run's CPO fields do not belong to 'toy').
    with pytest.raises(ConfigError) as info:
        run_train(None, ["algo.name=toy"], resume=str(run), command=["x"])
    assert _one_line(info.value).startswith("algo.")


def test_resume_still_accepts_what_it_may_change(run):
    trainer = Trainer.resume(run, ["train.total_steps=256", "train.checkpoint_every=1"])
    assert trainer.epoch == 3 and trainer.train() == 0


def test_a_checkpoint_that_does_not_fit_is_one_line(run):
    # Through the Python API (no override check): the state-dict error becomes a TrainError.
    from saferl.config import load_config
    from saferl.training.checkpoint import load_checkpoint

    config = load_config(run / "config.yaml", ["algo.hidden_sizes=[4]"])
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    shutil.rmtree(run / "checkpoints")
    (run / "manifest.json").unlink()
    with pytest.raises(TrainError) as info:
        Trainer(config, run_dir=run, resume_state=state)
    msg = _one_line(info.value)
    assert "does not fit this run's config" in msg and "size mismatch" in msg, msg


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (os.urandom(64) + b"\xff", "is not UTF-8 text"),
        (b"[1, 2, 3]", "must hold a JSON object, got a JSON list"),
        (b'{"checkpoints": [1]', "is not valid JSON"),
        (b'{"checkpoints": [1]}', "'checkpoints' must map file names"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
    ids=["random-bytes", "list", "truncated", "checkpoints-list", "deep"],
)
def test_resume_refuses_a_broken_manifest_in_one_line(run, content, expected, capsys, monkeypatch):
    (run / "manifest.json").write_bytes(content)
    with pytest.raises(TrainError) as info:
        Trainer.resume(run)
    msg = _one_line(info.value)
    assert expected in msg and "manifest.json" in msg, msg
    # the CLI: exit 2, one line
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["saferl", "train", "--resume", str(run)])
    with pytest.raises(SystemExit) as code:
        cli.main()
    assert code.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err


def test_a_malformed_manifest_entry_is_dropped_and_resume_falls_back(run, caplog):
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["checkpoints"]["last.pt"] = 5
    manifest["checkpoints"]["epoch_3.pt"]["sha256"] = "not-a-hash"
    manifest["resumes"] = "oops"
    (run / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level("WARNING"):
        trainer = Trainer.resume(run, ["train.total_steps=256"])
    assert trainer.epoch == 2  # epoch_3.pt and last.pt cannot be verified: epoch_2.pt
    assert "entry 'last.pt' dropped (expected an object, got int)" in caplog.text
    assert "entry 'epoch_3.pt' dropped (no valid sha256" in caplog.text
    assert trainer.train() == 0
    data = RunManifest(run / "manifest.json").data
    assert len(data["resumes"]) == 1 and data["status"] == "finished"


def test_refused_checkpoints_are_written_to_the_runs_log(run):
    p = run / "checkpoints" / "last.pt"
    p.write_bytes(p.read_bytes()[:-50])
    trainer = Trainer.resume(run)
    assert trainer.epoch == 3  # epoch_3.pt: same bytes as last.pt was
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    refused = [r for r in log if r.get("event") == "checkpoint_refused"]
    assert refused and refused[0]["file"] == "last.pt" and "does not match" in refused[0]["message"]


def test_a_directory_in_place_of_last_pt_is_refused_at_the_start_in_one_line(run):
    (run / "checkpoints" / "last.pt").unlink()
    (run / "checkpoints" / "last.pt").mkdir()
    with pytest.raises(TrainError) as info:
        Trainer.resume(run, ["train.total_steps=256"])
    msg = _one_line(info.value)
    assert f"{run / 'checkpoints' / 'last.pt'} is not a regular file" in msg, msg


def test_runs_dir_under_a_regular_file_is_refused_before_anything_is_built(tmp_path):
    (tmp_path / "file").write_text("x")
    cases = [
        (tmp_path / "file" / "sub", "n", "train.runs_dir (--runs-dir): "),
        (tmp_path / "file", "n", "train.runs_dir (--runs-dir): "),
        (tmp_path, "file", "train.name (--name): "),
    ]
    for runs_dir, name, field in cases:
        with pytest.raises(TrainError) as info:
            run_train(TOY_DEFAULT, _toy_sets(), name=name, runs_dir=str(runs_dir), command=["x"])
        msg = _one_line(info.value)
        assert msg.startswith(field) and f"{tmp_path / 'file'} is a file" in msg, msg
    assert (tmp_path / "file").read_text() == "x"


def _toy_sets() -> list[str]:
    from _standins import toy_overrides

    return toy_overrides(**SMALL)


def test_unknown_eval_protocols_are_refused_at_train_time(tmp_path):
    with pytest.raises(TrainError) as info:
        run_train(
            TOY_DEFAULT,
            [*_toy_sets(), "eval.protocols=[standard, bogus]"],
            name="p",
            runs_dir=str(tmp_path),
            command=["x"],
        )
    msg = _one_line(info.value)
    assert msg.startswith("eval.protocols: unknown protocol 'bogus'; available:"), msg
    assert not (tmp_path / "p").exists()


def test_a_write_error_while_setting_up_the_run_is_one_line(tmp_path, monkeypatch):
    import errno

    import saferl.utils

    def full(path, write):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(saferl.utils, "atomic_write", full)
    with pytest.raises(TrainError) as info:
        run_train(TOY_DEFAULT, _toy_sets(), name="full", runs_dir=str(tmp_path), command=["x"])
    msg = _one_line(info.value)
    assert msg.endswith(f"in {tmp_path / 'full'}: No space left on device"), msg
