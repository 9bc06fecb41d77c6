"""Structured logging: JSON-lines records with structured fields."""

from __future__ import annotations

import json
import logging

import pytest

from saferl.log import add_jsonl_handler, console_level, remove_handler, setup_logging


def test_jsonl_handler_writes_one_parseable_record_per_line(tmp_path):
    path = tmp_path / "run" / "log.jsonl"
    handler = add_jsonl_handler(path)
    log = logging.getLogger("saferl.training.trainer")
    try:
        log.info("epoch %d done", 3, extra={"data": {"epoch": 3, "ep_cost": 1.5}})
        log.warning("non-finite loss; update rolled back")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("env failed")
    finally:
        remove_handler(handler)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["level"] for r in records] == ["INFO", "WARNING", "ERROR"]
    assert records[0]["message"] == "epoch 3 done"
    assert records[0]["epoch"] == 3 and records[0]["ep_cost"] == 1.5
    assert records[0]["logger"] == "saferl.training.trainer"
    assert "RuntimeError: boom" in records[2]["exception"]
    assert records[0]["time"].endswith("Z")


def test_setup_logging_sets_level_and_rejects_unknown(capsys):
    setup_logging("warning")
    log = logging.getLogger("saferl.some.module")
    log.info("hidden")
    log.warning("shown")
    err = capsys.readouterr().err
    assert "shown" in err and "hidden" not in err
    with pytest.raises(ValueError, match="--log-level"):
        setup_logging("chatty")
    setup_logging("INFO")


def test_run_log_file_does_not_raise_the_console_level(tmp_path, capsys):
    # --log-level WARNING: a run's log file records INFO, the console still shows only warnings.
    setup_logging("WARNING")
    handler = add_jsonl_handler(tmp_path / "log.jsonl")
    log = logging.getLogger("saferl.training.trainer")
    try:
        log.info("epoch 1 done")
        log.warning("rolled back")
        assert console_level() == "WARNING"
    finally:
        remove_handler(handler)
        setup_logging("INFO")
    err = capsys.readouterr().err
    assert "rolled back" in err and "epoch 1 done" not in err
    levels = [json.loads(x)["level"] for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert levels == ["INFO", "WARNING"]
