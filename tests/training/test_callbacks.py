"""Callbacks: stopping epochs, feasibility-aware best model, safety alerts, plots, state."""

from __future__ import annotations

import io
import math

import pytest

from saferl.training.callbacks import (
    BestModel,
    CallbackList,
    EarlyStopping,
    PlotCallback,
    ProgressBar,
    SafetyMonitor,
)


def _feed(cb, rows):
    """Feed rows until on_epoch_end returns False; the epoch it stopped at (None if never)."""
    for epoch, row in enumerate(rows, start=1):
        if not cb.on_epoch_end({"epoch": epoch, **row}):
            return epoch
    return None


@pytest.mark.parametrize(
    ("mode", "values", "patience", "min_delta", "stop_epoch"),
    [
        # best at epoch 3; epochs 4, 5, 6 do not improve -> stop at 6
        ("max", [1, 2, 3, 3, 2.5, 3, 9], 3, 0.0, 6),
        # improvements smaller than min_delta do not count: best stays 1.0 (epoch 1)
        ("max", [1.0, 1.05, 1.08, 1.09, 5], 3, 0.1, 4),
        ("min", [5, 4, 4.5, 3, 3, 3, 3], 2, 0.0, 6),
        # NaN (no finished episode) is no improvement
        ("max", [1, math.nan, math.nan, 2], 2, 0.0, 3),
    ],
)
def test_early_stopping_stops_at_the_right_epoch(mode, values, patience, min_delta, stop_epoch):
    cb = EarlyStopping("ep_return", mode, patience, min_delta)
    assert _feed(cb, [{"ep_return": v} for v in values]) == stop_epoch
    assert cb.stopped_epoch == stop_epoch


def test_early_stopping_state_round_trip_keeps_the_count():
    rows = [{"ep_return": v} for v in [1, 2, 2, 2, 2]]
    a = EarlyStopping(patience=3)
    _feed(a, rows[:3])
    b = EarlyStopping(patience=3)
    b.load_state_dict(a.state_dict())
    assert b.on_epoch_end({"epoch": 4, "ep_return": 2}) is True  # wait 2 of 3
    assert b.on_epoch_end({"epoch": 5, "ep_return": 2}) is False


class _FakeTrainer:
    def __init__(self):
        self.saved = []
        self.epoch = 0

    def save_best(self):
        self.saved.append(self.epoch)


def test_best_model_prefers_feasible_then_return():
    trainer = _FakeTrainer()
    cb = BestModel()
    cb.init_callback(trainer)
    rows = [
        {"ep_return": 10.0, "ep_cost": 30.0},  # 1 infeasible: best so far (only one)
        {"ep_return": 50.0, "ep_cost": 40.0},  # 2 infeasible, higher cost: not better
        {"ep_return": 5.0, "ep_cost": 20.0},  # 3 infeasible, lower cost: better
        {"ep_return": 1.0, "ep_cost": 15.0},  # 4 feasible (cost == limit): better
        {"ep_return": 100.0, "ep_cost": 16.0},  # 5 infeasible, great return: not better
        {"ep_return": 3.0, "ep_cost": 2.0},  # 6 feasible, higher return: better
        {"ep_return": 2.0, "ep_cost": 0.0},  # 7 feasible, lower return: not better
        {"ep_return": math.nan, "ep_cost": math.nan},  # 8 no episode finished: skipped
    ]
    for epoch, row in enumerate(rows, start=1):
        trainer.epoch = epoch
        cb.on_epoch_end({"epoch": epoch, "cost_limit": 15.0, **row})
    assert trainer.saved == [1, 3, 4, 6]
    assert cb.best_epoch == 6 and cb.best_return == 3.0
    fresh = BestModel()
    fresh.load_state_dict(cb.state_dict())
    assert not fresh.is_better(2.5, 1.0, 15.0) and fresh.is_better(3.5, 1.0, 15.0)


def test_safety_monitor_alerts_after_consecutive_violations_and_can_halt(caplog):
    cb = SafetyMonitor(window=4, alert_after=3, halt=True)
    costs = [20, 5, 20, 20, math.nan, 20, 20]
    rows = []
    stops = []
    with caplog.at_level("WARNING"):
        for epoch, c in enumerate(costs, start=1):
            row = {"epoch": epoch, "ep_cost": c, "cost_limit": 15.0}
            if not cb.on_epoch_end(row):
                stops.append(epoch)
            rows.append(row)
    # Violations at 1, 3, 4, (5 skipped), 6 -> third in a row at epoch 6.
    assert [r["safety_alert"] for r in rows] == [0, 0, 0, 0, 0, 1, 0]
    assert [r["consecutive_violations"] for r in rows] == [1, 0, 1, 2, 2, 3, 4]
    # Window of the last 4 epochs with a cost (epoch 5 had none): epochs 2, 3, 4, 6 -> 0, 1, 1, 1.
    assert rows[5]["violation_rate"] == pytest.approx(3 / 4)
    assert stops == [6]  # the alert fires once per streak
    assert caplog.text.count("safety alert") == 1
    again = SafetyMonitor(window=4, alert_after=3)
    again.load_state_dict(cb.state_dict())
    assert again.state_dict() == cb.state_dict()


def test_progress_bar_is_off_without_a_terminal():
    bar = ProgressBar(total_steps=100, enabled=True, stream=io.StringIO())
    bar.on_train_start()
    assert bar.on_epoch_end({"env_steps": 10}) is True
    bar.on_train_end()
    assert not bar.enabled


def test_progress_bar_draws_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    bar = ProgressBar(total_steps=100, enabled=True, stream=stream)
    bar.on_train_start()
    bar.on_epoch_end({"env_steps": 50, "ep_return": 1.0, "ep_cost": 2.0, "cost_limit": 3.0})
    bar.on_train_end()
    out = stream.getvalue()
    assert "50/100" in out and "cost 2/3" in out
    assert not ProgressBar(100, enabled=False, stream=Tty()).enabled


def test_plot_callback_writes_pngs_every_n_epochs_and_at_the_end(tmp_path):
    cb = PlotCallback(tmp_path / "plots", every=2)
    cb.on_epoch_end({"epoch": 1, "env_steps": 10, "ep_return": 1, "ep_cost": 2, "cost_limit": 3})
    assert not (tmp_path / "plots").exists()
    cb.on_epoch_end(
        {
            "epoch": 2,
            "env_steps": 20,
            "ep_return": 2,
            "ep_cost": 1,
            "cost_limit": 3,
            "kl": 0.01,
            "case": 3,
        }
    )
    names = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert names == ["costs.png", "cpo_cases.png", "kl.png", "returns.png"]
    for p in (tmp_path / "plots").glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    restored = PlotCallback(tmp_path / "plots", every=2)
    restored.load_state_dict(cb.state_dict())
    assert restored.history["ep_return"] == [1.0, 2.0] and restored.cases == ["3"]


def test_callback_list_calls_all_and_stops_if_any_says_so():
    es = EarlyStopping(patience=1)
    sm = SafetyMonitor()
    cbs = CallbackList([sm, es])
    assert cbs.on_epoch_end({"epoch": 1, "ep_return": 1.0, "ep_cost": 0, "cost_limit": 1})
    row = {"epoch": 2, "ep_return": 0.5, "ep_cost": 0, "cost_limit": 1}
    assert cbs.on_epoch_end(row) is False
    assert "violation_rate" in row  # the monitor still ran
    with pytest.raises(ValueError, match="unique"):
        CallbackList([EarlyStopping(), EarlyStopping()])
