"""From a short real training run (CPO through the Trainer) to the evaluation report and a
comparison against scripted baselines."""

from __future__ import annotations

import json

from _evalhelpers import TOY_ID
from test_report import _check_plots_embedded

from saferl.config import Config, load_config
from saferl.training.evaluation import run_compare, run_evaluate
from saferl.training.trainer import Trainer


def _train(tmp_path):
    cfg = load_config(
        base=Config(),
        overrides=[
            f"env.id={TOY_ID}",
            "env.num_envs=8",
            "algo.name=cpo",
            "algo.hidden_sizes=[16, 16]",
            "algo.critic_epochs=2",
            "algo.critic_minibatch=64",
            "train.total_steps=960",
            "train.steps_per_epoch=240",
            "train.checkpoint_every=2",
            "train.plot_every=1000",
            "train.progress=false",
            f"train.runs_dir={tmp_path}",
            "train.name=cpo_toy",
            "eval.episodes=10",
            "eval.num_envs=10",
            "eval.bootstrap_samples=500",
        ],
    )
    trainer = Trainer(cfg, command=["test"])
    assert trainer.train() == 0
    return trainer.run_dir


def test_report_from_a_real_training_run(tmp_path):
    run = _train(tmp_path)
    assert (run / "checkpoints" / "last.pt").is_file()
    assert run_evaluate(str(run), protocols=["all"], episodes=None, report=True) == 0
    results = json.loads((run / "eval" / "results.json").read_text())
    assert results["model"]["algo"] == "cpo" and results["model"]["epoch"] >= 1
    assert results["settings"]["episodes"] == 10
    _check_plots_embedded(run / "eval" / "report.html", run / "eval", results["plots"])
    assert len(results["plots"]) == 4

    out = tmp_path / "cmp"
    assert (
        run_compare(
            [str(run), "baselines:go_to_goal", "baselines:reckless"],
            out=str(out),
            protocols=["standard"],
            episodes=None,
        )
        == 0
    )
    comparison = json.loads((out / "comparison.json").read_text())
    assert [m["name"] for m in comparison["models"]] == [
        "cpo_toy",
        "baselines:go_to_goal",
        "baselines:reckless",
    ]
    _check_plots_embedded(out / "comparison.html", out, comparison["plots"])
