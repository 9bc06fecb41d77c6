"""Property-based fuzzing of config input: every invalid value for a field, every hostile YAML file
and a few real CLI invocations are refused in exactly one short line that names the field (or the
file), and valid values are accepted. The counts are printed (``pytest -s``) for the record."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from saferl.config import Config, ConfigError, config_to_dict, load_config


def _numeric_leaves(model: type[BaseModel], prefix: str = "") -> list[tuple[str, type]]:
    out: list[tuple[str, type]] = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.extend(_numeric_leaves(ann, f"{prefix}{name}."))
        elif ann in (int, float):
            out.append((f"{prefix}{name}", ann))
    return out


NUMERIC = _numeric_leaves(Config)
COUNTS = {"generated": 0, "refused": 0, "accepted": 0}

# Values no numeric field takes: booleans, non-finite numbers, words, a huge string.
BAD_NUMBER = st.one_of(
    st.sampled_from(["true", "false", "inf", "-inf", "nan", ".inf", "[1, 2]", "{a: 1}"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=30).filter(
        lambda s: s not in ("null", "true", "false", "yes", "no", "on", "off", "y", "n", "inf")
    ),
    st.integers(min_value=5_000, max_value=20_000).map(lambda n: "x" * n),
)


def _assert_one_line_naming(msg: str, name: str) -> None:
    assert "\n" not in msg, msg
    assert len(msg) < 600, len(msg)
    assert msg.startswith(name), msg
    assert "Traceback" not in msg


def test_the_fuzzed_fields_cover_every_section():
    sections = {name.split(".")[0] for name, _ in NUMERIC}
    assert {"env", "algo", "train"} <= sections, sections
    assert len(NUMERIC) >= 20


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(NUMERIC), value=BAD_NUMBER)
def test_invalid_numbers_are_refused_in_one_line_naming_the_field(field, value):
    name, _ = field
    COUNTS["generated"] += 1
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[f"{name}={value}"])
    _assert_one_line_naming(str(info.value), name)
    COUNTS["refused"] += 1


@settings(max_examples=100, deadline=None)
@given(field=st.sampled_from(NUMERIC))
def test_the_default_value_of_every_numeric_field_is_accepted(field):
    name, _ = field
    section, *rest = name.split(".")
    value: object = config_to_dict(Config())[section]
    for part in rest:
        value = value[part]  # type: ignore[index]
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return
    COUNTS["generated"] += 1
    load_config(overrides=[f"{name}={value!r}"])
    COUNTS["accepted"] += 1


def _bomb(depth: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, depth + 1):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "hyperopt:\n  search_space:\n" + "\n".join("    " + s for s in lines) + "\n"


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(["bomb", "huge", "binary", "duplicate"]),
    n=st.integers(min_value=0, max_value=5),
)
def test_hostile_files_are_refused_in_one_line_naming_the_file(tmp_path_factory, kind, n):
    path = Path(tmp_path_factory.mktemp("cfg")) / "c.yaml"
    if kind == "bomb":
        path.write_text(_bomb(6 + n))
    elif kind == "huge":
        path.write_text("env:\n  id: " + "w" * (1_100_000 + n * 1000) + "\n")
    elif kind == "binary":
        path.write_bytes(b"env:\n  id: \xff\xfe" + bytes([0x80 + n]) * 8)
    else:
        section = ["env", "algo", "train", "eval", "tracking", "hyperopt"][n]
        path.write_text(f"{section}: {{}}\n{section}: {{}}\n")
    COUNTS["generated"] += 1
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 600, msg[:200]
    assert str(path) in msg, msg
    COUNTS["refused"] += 1


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--set", "train.total_steps=true"], "train.total_steps"),
        (["--set", "env.cost_limit=inf"], "env.cost_limit"),
        (["--set", "env.num_envs=0"], "env.num_envs"),
        (["--name", "../escaped"], "train.name"),
        (["--set", "algo.nope=1"], "algo.nope"),
    ],
)
def test_cli_refuses_in_one_line_exit_2_and_writes_no_run(tmp_path, args, field):
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "saferl", "train", "--runs-dir", str(runs), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    COUNTS["generated"] += 1
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert field in lines[0] and "Traceback" not in proc.stderr
    assert not runs.exists() or not any(runs.iterdir())
    COUNTS["refused"] += 1


def test_zz_report_counts():
    print(f"\nconfig fuzz: {COUNTS}")
    assert COUNTS["generated"] == 0 or COUNTS["refused"] + COUNTS["accepted"] == COUNTS["generated"]
