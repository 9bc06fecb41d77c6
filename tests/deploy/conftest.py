"""Fixtures: two tiny real training runs and their exports, made once per test session.

* ``wheelchair``: the default config (``WheelchairSC-v0`` in ``assist`` mode with ``obs_ema`` on
  the joystick's tremor evidence): a stateful export.
* ``exo``: ``configs/exo_cpo.yaml`` with privileged observations and an asymmetric critic: the
  actor reads 30 of the env's 34 dims.

Under pytest-xdist every worker asks for them; a file lock in the directory the workers share
makes the first one build them and the others reuse them.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parents[2]

_RUN_OVERRIDES = [
    "env.num_envs=8",
    "train.total_steps=1024",
    "train.steps_per_epoch=512",
    "train.best_eval_episodes=0",
    "train.progress=false",
    "train.plot_every=1000",
    "algo.hidden_sizes=[32, 32]",
    "algo.critic_epochs=1",
    "algo.critic_minibatch=512",
    "eval.episodes=3",
    "eval.num_envs=3",
    "eval.bootstrap_samples=200",
]

RUNS = {
    "wheelchair": (None, []),
    "exo": (
        REPO / "configs" / "exo_cpo.yaml",
        ["env.options.privileged_obs=true", "algo.asymmetric_critic=true"],
    ),
}


@dataclass
class Trained:
    """A tiny trained run and its exports (both formats, float64)."""

    name: str
    run_dir: Path
    onnx: Path
    torchscript: Path


def _build(root: Path, name: str) -> Trained:
    from saferl.config import default_config_path, load_config
    from saferl.deploy import export_run
    from saferl.training.trainer import Trainer

    config, extra = RUNS[name]
    cfg = load_config(
        config or default_config_path(),
        [*_RUN_OVERRIDES, *extra, f"train.runs_dir={root}", f"train.name={name}"],
    )
    trainer = Trainer(cfg, command=["pytest"])
    assert trainer.train() == 0
    run = trainer.run_dir
    onnx, _ = export_run(run, "onnx", root / f"{name}.onnx", checkpoint="last")
    ts, _ = export_run(run, "torchscript", root / f"{name}.pt", checkpoint="last")
    return Trained(name, run, onnx, ts)


def _shared(tmp_path_factory: pytest.TempPathFactory, name: str) -> Trained:
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    root = base.parent if base.name.startswith("popen-gw") else base
    root = root / "deploy-runs"
    root.mkdir(exist_ok=True)
    done = root / f"{name}.json"
    with FileLock(str(root / f"{name}.lock")):
        if done.is_file():
            d = json.loads(done.read_text())
            return Trained(name, Path(d["run_dir"]), Path(d["onnx"]), Path(d["torchscript"]))
        t = _build(root, name)
        done.write_text(
            json.dumps(
                {"run_dir": str(t.run_dir), "onnx": str(t.onnx), "torchscript": str(t.torchscript)}
            )
        )
        return t


@pytest.fixture(scope="session")
def wheelchair(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return _shared(tmp_path_factory, "wheelchair")


@pytest.fixture(scope="session")
def exo(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return _shared(tmp_path_factory, "exo")


@pytest.fixture(scope="session", params=["wheelchair", "exo"])
def trained(request: pytest.FixtureRequest) -> Trained:
    return request.getfixturevalue(request.param)
