import numpy as np
import pytest

from saferl.safety import Constraint, ConstraintSet


def _set(mode="max"):
    return ConstraintSet(
        [Constraint("a", "first"), Constraint("b", "second", limit=3.0)],
        limit=10.0,
        strict_limit=4.0,
        combine_mode=mode,
        episode_length=400,
    )


def test_union_is_elementwise_max_of_indicators():
    cs = _set()
    comps = {"a": np.array([0, 1, 0, 1], np.float32), "b": np.array([0, 0, 1, 1], np.float32)}
    out = cs.combine(comps)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [0, 1, 1, 1])


def test_sum_mode_adds_components():
    cs = _set("sum")
    comps = {"a": np.array([0, 1, 0, 1], np.float32), "b": np.array([0, 0, 1, 1], np.float32)}
    np.testing.assert_array_equal(cs.combine(comps), [0, 1, 1, 2])


def test_combine_rejects_missing_or_extra_components():
    cs = _set()
    with pytest.raises(ValueError, match="missing \\['b'\\]"):
        cs.combine({"a": np.zeros(2)})
    with pytest.raises(ValueError, match="unexpected \\['c'\\]"):
        cs.combine({"a": np.zeros(2), "b": np.zeros(2), "c": np.zeros(2)})


def test_limits_and_rates():
    cs = _set()
    assert cs.get_limit() == 10.0 and cs.get_limit(strict=True) == 4.0
    assert cs.limit_rate() == pytest.approx(0.025)
    assert cs.names == ("a", "b") and "b" in cs and cs["b"].limit == 3.0


def test_invalid_definitions_raise():
    with pytest.raises(ValueError, match="duplicate"):
        ConstraintSet([Constraint("a", "x"), Constraint("a", "y")], limit=1.0)
    with pytest.raises(ValueError, match="combine_mode"):
        ConstraintSet([Constraint("a", "x")], limit=1.0, combine_mode="mean")
    with pytest.raises(ValueError, match="strict_limit"):
        ConstraintSet([Constraint("a", "x")], limit=1.0, strict_limit=2.0)
    with pytest.raises(ValueError, match="identifier"):
        Constraint("not a name", "x")


def test_describe_lists_every_component_and_the_combined_limit():
    rows = _set().describe()
    assert [r["name"] for r in rows[:2]] == ["a", "b"]
    assert rows[-1]["limit"] == "10" and rows[-1]["strict_limit"] == "4"
    text = _set().describe_text()
    assert "first" in text and "second" in text
