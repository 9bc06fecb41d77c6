"""Property-based fuzzing of the command line: every generated invalid argument of ``train``,
``evaluate``, ``compare`` and ``envs render`` (out-of-range numbers, words for numbers, empty
protocol lists, names that leave the runs directory, paths under a regular file, YAML alias bombs
in ``--set``, hostile ``--config`` files) exits with status 2 and exactly one line on stderr that
names the argument or field, never a traceback, and writes no run directory. The CLI runs
in-process (``saferl.cli.main``), so hundreds of inputs take seconds. The counts are printed
(``pytest -s``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from saferl.cli import main
from saferl.config import ConfigError, load_config

COUNTS = {"generated": 0, "refused": 0}
PROTOCOL_NAMES = {"standard", "stochastic", "safety", "human_factors", "all"}
WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12)


def bomb(depth: int) -> str:
    """A flow-style YAML mapping whose aliases expand to 10**depth values (about 10 bytes per
    level as written)."""
    levels = ["a0: &a0 [" + ", ".join(["x"] * 10) + "]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, depth)]
    return "{" + ", ".join(levels) + "}"


def cli(argv: list[str], capsys) -> tuple[int, list[str]]:
    """Run ``saferl ARGV`` in this process; returns (exit status, stderr lines)."""
    old = sys.argv
    sys.argv = ["saferl", *argv]
    try:
        with pytest.raises(SystemExit) as info:
            main()
    finally:
        sys.argv = old
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return int(info.value.code or 0), err.strip().splitlines()


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    (root / "file").write_text("a regular file")
    (root / "runs").mkdir()
    (root / "binary.yaml").write_bytes(b"env:\n  id: \xff\xfe\x80")
    (root / "dupes.yaml").write_text("env: {id: WheelchairSC-v0}\nenv: {num_envs: 4}\n")
    (root / "bomb.yaml").write_text("hyperopt:\n  search_space: " + bomb(8) + "\n")
    return {k: root / k for k in ("file", "runs", "binary.yaml", "dupes.yaml", "bomb.yaml")}


def cases(p: dict[str, Path]) -> st.SearchStrategy[tuple[list[str], str]]:
    """(argv, what the error line must name)."""
    runs = ["--runs-dir", str(p["runs"])]
    bad_names = st.one_of(
        st.sampled_from(["", ".", "./", "..", "/abs", "~", "~user/x", "a/../../x", "./.."]),
        WORDS.map(lambda w: f"../{w}"),
        WORDS.map(lambda w: f"/tmp/{w}"),
    )
    return st.one_of(
        # train: fields and paths
        bad_names.map(lambda n: (["train", *runs, "--name", n], "train.name")),
        WORDS.map(lambda w: (["train", "--runs-dir", str(p["file"] / w)], "train.runs_dir")),
        st.just((["train", "--runs-dir", str(p["file"])], "train.runs_dir")),
        st.integers(6, 9).map(
            lambda d: (["train", *runs, "--set", f"hyperopt.search_space={bomb(d)}"], "hyperopt")
        ),
        st.integers(6, 9).map(lambda d: (["train", *runs, "--set", f"env.id={bomb(d)}"], "env.id")),
        st.sampled_from(["true", "false", "inf", "nan", "1e400", "[1]"]).map(
            lambda v: (["train", *runs, "--set", f"train.total_steps={v}"], "train.total_steps")
        ),
        WORDS.filter(lambda w: w not in PROTOCOL_NAMES).map(
            lambda w: (["train", *runs, "--set", f"eval.protocols=[{w}]"], "eval.protocols")
        ),
        st.sampled_from(["/dev/zero", "binary.yaml", "dupes.yaml", "bomb.yaml"]).map(
            lambda f: (["train", *runs, "--config", f if f[0] == "/" else str(p[f])], f)
        ),
        # evaluate / compare / envs render: arguments
        st.integers(max_value=0).map(
            lambda n: (["evaluate", "r", "--episodes", str(n)], "--episodes")
        ),
        WORDS.map(lambda w: (["evaluate", "r", "--episodes", w], "--episodes")),
        st.text(alphabet=", ", max_size=6).map(
            lambda s: (["evaluate", "r", "--protocols", s], "--protocols")
        ),
        st.text(alphabet=", ", max_size=6).map(
            lambda s: (["compare", "baselines:a", "baselines:b", "--protocols", s], "--protocols")
        ),
        st.one_of(st.integers(max_value=-1), st.integers(min_value=2**32)).map(
            lambda s: (["compare", "baselines:a", "baselines:b", "--seed", str(s)], "--seed")
        ),
        WORDS.map(
            lambda w: (
                ["compare", "baselines:a", "baselines:b", "--out", str(p["file"] / w)],
                "--out",
            )
        ),
        st.integers(max_value=0).map(
            lambda n: (["envs", "render", "WheelchairSC-v0", "--max-steps", str(n)], "--max-steps")
        ),
        WORDS.map(lambda w: (["envs", "render", "WheelchairSC-v0", "--seed", w], "--seed")),
    )


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_every_invalid_cli_input_exits_2_with_one_line_naming_it(paths, capsys, data):
    argv, names = data.draw(cases(paths))
    COUNTS["generated"] += 1
    code, lines = cli(argv, capsys)
    assert code == 2, (argv, lines)
    assert len(lines) == 1, (argv, lines)
    assert names in lines[0], (argv, lines[0])
    assert len(lines[0]) < 600
    assert not any(paths["runs"].iterdir()), list(paths["runs"].iterdir())
    COUNTS["refused"] += 1


def test_an_alias_bomb_in_a_set_value_is_refused_before_it_is_expanded():
    # 10**9 values if expanded: refused in one line naming the override, in well under a second.
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[f"hyperopt.search_space={bomb(8)}"])
    msg = str(info.value)
    assert msg.startswith("--set 'hyperopt.search_space': YAML expands to more than"), msg
    with pytest.raises(ConfigError, match=r"^--set 'env.id': YAML expands"):
        load_config(overrides=[f"env.id={bomb(9)}"])


def test_small_aliases_in_a_set_value_still_work():
    cfg = load_config(overrides=["hyperopt.search_space={a: &r {low: 1, high: 2}, b: *r}"])
    assert cfg.hyperopt.search_space == {"a": {"low": 1, "high": 2}, "b": {"low": 1, "high": 2}}


def test_zz_report_counts():
    print(f"\ncli fuzz: {COUNTS}")
    assert COUNTS["generated"] == COUNTS["refused"]
