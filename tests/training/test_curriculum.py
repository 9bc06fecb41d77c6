"""An impairment curriculum end to end: a real CPO run on WheelchairSC-v0 whose
``env.impairment`` schedule reaches the environment through ``set_options``, and resumes
exactly from a checkpoint taken mid-curriculum."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from saferl.config import Config, load_config
from saferl.training.checkpoint import load_checkpoint
from saferl.training.tracking import read_metrics
from saferl.training.trainer import Trainer

# 2 envs x 700 steps per epoch: every instance ends (at least) one 600-step episode per epoch,
# so each epoch's episodes start under the level the schedule set after the previous epoch.
CURRICULUM = [
    "env.id=WheelchairSC-v0",
    "algo.name=cpo",
    "env.num_envs=2",
    "train.steps_per_epoch=1400",
    "train.total_steps=5600",  # 4 epochs
    "train.checkpoint_every=1",
    "train.plot_every=1000",
    "train.progress=false",
    "algo.critic_epochs=1",
    "algo.critic_minibatch=700",
    "algo.cg_iters=5",
    "train.schedules=[{target: env.impairment, kind: linear, start: 0, end: 3.99}]",
]
LEVELS = ["none", "mild", "moderate", "severe"]


def deterministic(rows):
    return [{k: v for k, v in r.items() if not (k == "fps" or k.startswith("time"))} for r in rows]


def same_tree(a, b, path="state"):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            same_tree(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same_tree(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=path)
        assert a.dtype == b.dtype, path
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), path
    else:
        assert a == b, path


def test_impairment_schedule_drives_the_env_and_resumes_exactly(tmp_path):
    cfg = load_config(
        base=Config(), overrides=[*CURRICULUM, f"train.runs_dir={tmp_path}", "train.name=cur"]
    )
    trainer = Trainer(cfg, command=["test"])
    env = trainer.env
    assert env.get_options()["impairment"] == "none"  # the schedule's start, before epoch 1
    assert trainer.train() == 0
    run = trainer.run_dir
    rows = read_metrics(run / "metrics.jsonl")
    sched = [r["sched/env.impairment"] for r in rows]
    assert sched == pytest.approx([3.99 * k / 4 for k in (1, 2, 3, 4)])
    # the level each epoch's checkpoint says new episodes use (set after that epoch)
    assert env.get_options()["impairment"] == "severe"
    for epoch in (2, 3, 4):
        state = load_checkpoint(run / "checkpoints" / f"epoch_{epoch}.pt")
        assert state["env"]["options"]["impairment"] == LEVELS[math.floor(3.99 * epoch / 4)]
    # every episode under way began in epoch 4, under "moderate" (set after epoch 3)
    np.testing.assert_array_equal(env.human.level, [2, 2])
    last = load_checkpoint(run / "checkpoints" / "last.pt")

    # Resume from epoch 3 (last.pt and epoch_4.pt corrupted): epoch 4 again, identically.
    for name in ("last.pt", "epoch_4.pt"):
        p = run / "checkpoints" / name
        data = bytearray(p.read_bytes())
        data[-100] ^= 0xFF
        p.write_bytes(bytes(data))
    resumed = Trainer.resume(run, command=["resume"])
    assert resumed.epoch == 3
    assert resumed.env.get_options()["impairment"] == "moderate"
    assert resumed.train() == 0
    assert deterministic(read_metrics(run / "metrics.jsonl")) == deterministic(rows)
    again = load_checkpoint(run / "checkpoints" / "last.pt")
    for key in ("algo", "env", "collector", "rng"):
        same_tree(again[key], last[key], key)
    np.testing.assert_array_equal(resumed.env.human.level, [2, 2])


def test_schedule_on_an_option_the_env_cannot_change_is_a_config_error(tmp_path):
    from saferl.config import ConfigError

    cfg = load_config(
        base=Config(),
        overrides=[
            "env.num_envs=2", "train.total_steps=64", "train.steps_per_epoch=64",
            f"train.runs_dir={tmp_path}", "train.name=bad", "train.progress=false",
            "train.schedules=[{target: env.friction, kind: linear, start: 0.5, end: 0.9}]",
        ],
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"env.friction.*can change only env.impairment"):
        Trainer(cfg, command=["test"])
