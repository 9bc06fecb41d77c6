"""The joystick-operator model (docs/envs/wheelchair.md, "Human")."""

from dataclasses import replace

import numpy as np
import pytest
from scipy import signal

from saferl.envs.levels import IMPAIRMENT_LEVELS, parse_levels
from saferl.envs.vector import InstanceRNG
from saferl.envs.wheelchair.user import JOYSTICK_IMPAIRMENTS, JoystickOperator

QUIET = replace(
    JOYSTICK_IMPAIRMENTS["none"],
    reaction_delay=(0.3, 0.3),
    direction_noise_deg=(0.0, 0.0),
    hand_lag=(0.02, 0.02),
    magnitude_noise=0.0,
)


def _operator(n, level, seed=0, **overrides):
    levels = dict(JOYSTICK_IMPAIRMENTS)
    levels[level] = replace(levels[level], **overrides)
    rng = InstanceRNG(n)
    rng.seed(seed)
    op = JoystickOperator(n, rng, levels=levels)
    op.reset(np.arange(n), np.full(n, IMPAIRMENT_LEVELS.index(level)))
    return op


def _run(op, intention_fn, steps):
    out = []
    for t in range(steps):
        out.append(op.step(intention_fn(t)))
    return np.concatenate(out, axis=1)  # (N, steps * 5, 2)


@pytest.mark.parametrize("freq,amp", [(4.5, 0.2), (7.0, 0.1)])
def test_tremor_psd_peaks_at_the_configured_frequency_with_amplitude(freq, amp):
    n = 32
    op = _operator(
        n,
        "moderate",
        tremor_frequency=(freq, freq),
        tremor_amplitude=(amp, amp),
        direction_noise_deg=(0.0, 0.0),
        lapse_prob=(0.0, 0.0),
        spasm_rate=(0.0, 0.0),
    )
    still = np.zeros((n, 2), np.float32)
    joy = _run(op, lambda t: still, 400)[:, 100:, 0]  # 38 s at 50 Hz, x channel
    f, pxx = signal.welch(joy, fs=50.0, nperseg=512, axis=-1)
    pxx = pxx.mean(axis=0)
    assert abs(f[np.argmax(pxx)] - freq) <= 0.5
    band = (f > freq - 1.0) & (f < freq + 1.0)
    power = pxx[band].sum() * (f[1] - f[0])
    # a sine of amplitude A carries A^2 / 2; the band-limited noise adds a few percent
    assert power == pytest.approx(amp**2 / 2, rel=0.2)


def test_no_tremor_for_unimpaired_users():
    n = 16
    op = _operator(n, "none")
    still = np.zeros((n, 2), np.float32)
    joy = _run(op, lambda t: still, 200)[:, 50:, 0]
    f, pxx = signal.welch(joy, fs=50.0, nperseg=256, axis=-1)
    band = (f > 3) & (f < 12)
    assert pxx.mean(axis=0)[band].sum() * (f[1] - f[0]) < 1e-4


def _lag_of_peak(x, y, fs):
    x = x - x.mean()
    y = y - y.mean()
    cc = signal.correlate(y, x, mode="full")
    lags = signal.correlation_lags(len(y), len(x), mode="full")
    keep = lags >= 0
    return lags[keep][np.argmax(cc[keep])] / fs


@pytest.mark.parametrize("delay", [0.3, 0.7])
def test_reaction_delay_is_visible_in_the_cross_correlation(delay):
    n = 8
    rng = np.random.default_rng(1)
    # smooth random intention, piecewise constant per 0.1 s
    steps = 600
    raw = rng.normal(size=(steps // 5 + 2, n))
    slow = np.repeat(raw, 5, axis=0)[:steps]
    hand_lag = 0.02
    op = _operator(
        n,
        "none",
        reaction_delay=(delay, delay),
        hand_lag=(hand_lag, hand_lag),
        direction_noise_deg=(0, 0),
    )
    op.magnitude_noise = np.float32(0.0)
    intent = np.zeros((steps, n, 2), np.float32)
    intent[:, :, 0] = 0.5 * np.tanh(slow)
    joy = _run(op, lambda t: intent[t], steps)[:, :, 0]  # (n, steps * 5)
    j_int = np.repeat(intent[:, :, 0].T, 5, axis=1)
    lags = [_lag_of_peak(j_int[i], joy[i], 50.0) for i in range(n)]
    # the peak sits at the reaction delay (plus the short hand lag), within one 50 Hz sample
    # and the 10 Hz decision clock
    assert np.median(lags) == pytest.approx(delay + hand_lag, abs=0.06)


def test_lapses_hold_the_previous_decision_at_the_configured_rate():
    n = 200
    op = _operator(n, "severe", lapse_prob=(0.5, 0.5), direction_noise_deg=(0.0, 0.0))
    held = []
    rng = np.random.default_rng(0)
    for _ in range(60):
        before = op.target.copy()
        op.step(rng.uniform(-0.5, 0.5, (n, 2)).astype(np.float32))
        held.append(np.all(op.target == before, axis=1))
    rate = np.mean(held[10:])  # after the delay buffer has filled
    assert rate == pytest.approx(0.5, abs=0.04)


def test_reach_limit_caps_the_voluntary_deflection():
    n = 50
    op = _operator(
        n, "severe", tremor_amplitude=(0.0, 0.0), spasm_rate=(0.0, 0.0), reach=(0.55, 0.55)
    )
    full = np.tile(np.array([[0.0, 1.0]], np.float32), (n, 1))
    joy = _run(op, lambda t: full, 60)
    mags = np.linalg.norm(joy, axis=-1)
    assert mags.max() <= 0.55 + 1e-6
    assert np.linalg.norm(op.target, axis=1).max() <= 0.55 + 1e-6
    assert np.median(mags[:, -50:]) > 0.45  # and the user does push as far as they can


def test_spasm_bursts_follow_the_poisson_rate():
    n = 400
    rate = 0.5
    op = _operator(n, "severe", spasm_rate=(rate, rate))
    still = np.zeros((n, 2), np.float32)
    onsets = 0
    prev = op.spasm_timer.copy()
    steps = 200  # 20 s
    for _ in range(steps):
        op.step(still)
        onsets += int(np.sum(op.spasm_timer > prev + 1e-6))
        prev = op.spasm_timer.copy()
    # bursts last 0.3 s (no new onset during a burst): expected rate / (1 + rate * 0.3)
    expected = n * 20.0 * rate / (1 + rate * 0.3)
    assert onsets == pytest.approx(expected, rel=0.12)


def test_levels_sampled_per_episode_cover_all_levels_and_parse_errors_name_the_argument():
    codes = parse_levels("random", 4000)
    assert (codes == -1).all()
    rng = InstanceRNG(4000)
    rng.seed(3)
    op = JoystickOperator(4000, rng)
    op.reset(np.arange(4000), codes)
    counts = np.bincount(op.level, minlength=4)
    assert (np.abs(counts / 4000 - 0.25) < 0.03).all()
    with pytest.raises(ValueError, match="impairment: unknown level 'extreme'"):
        parse_levels("extreme", 3)
    with pytest.raises(ValueError, match="impairment: a list must give one level per instance"):
        parse_levels(["none", "mild"], 3)
    np.testing.assert_array_equal(parse_levels(["none", "severe"], 2), [0, 3])


def test_parameters_are_drawn_within_the_level_ranges():
    n = 500
    rng = InstanceRNG(n)
    rng.seed(0)
    op = JoystickOperator(n, rng)
    op.reset(np.arange(n), np.full(n, 3))
    for name, (lo, hi) in JOYSTICK_IMPAIRMENTS["severe"].ranges().items():
        vals = op.params[name]
        assert vals.min() >= lo - 1e-6 and vals.max() <= hi + 1e-6, name
        if hi > lo:
            assert vals.std() > 0.2 * (hi - lo) / np.sqrt(12), name


def test_state_dict_round_trip_continues_identically():
    n = 6
    a = _operator(n, "severe", seed=5)
    rng = np.random.default_rng(0)
    inputs = rng.uniform(-1, 1, (40, n, 2)).astype(np.float32)
    for t in range(15):
        a.step(inputs[t])
    state = a.state_dict()
    rng_state = a.rng.state_dict()
    ref = [a.step(inputs[t]) for t in range(15, 40)]
    b = _operator(n, "severe", seed=99)
    b.rng.load_state_dict(rng_state)
    b.load_state_dict(state)
    for t, r in zip(range(15, 40), ref, strict=True):
        np.testing.assert_array_equal(b.step(inputs[t]), r)
