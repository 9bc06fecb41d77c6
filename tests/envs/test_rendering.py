"""record_episode writes a GIF or PNG frames of a scripted or callable policy."""

import numpy as np
import pytest
from PIL import Image

from saferl.envs.rendering import record_episode


def test_gif_of_a_scripted_policy(tmp_path):
    out = record_episode(
        "WheelchairSC-v0",
        tmp_path / "ep.gif",
        policy="autopilot",
        seed=1,
        max_steps=6,
        impairment="severe",
    )
    with Image.open(out) as im:
        assert im.n_frames == 7  # the reset frame plus one per step
        first = np.asarray(im.convert("RGB"))
        im.seek(6)
        last = np.asarray(im.convert("RGB"))
    assert first.shape[2] == 3 and not np.array_equal(first, last)  # the chair moved


def test_png_frames_of_a_callable_policy(tmp_path):
    calls = []

    def policy(obs):
        calls.append(obs.shape)
        return np.zeros((1, 3), np.float32)

    out = record_episode("saferl/WheelchairSC-v0", tmp_path / "frames", policy=policy, max_steps=3)
    assert len(list(out.glob("frame_*.png"))) == 4 and calls == [(1, 44)] * 3


def test_unknown_names_raise_value_errors(tmp_path):
    with pytest.raises(ValueError, match="policy: unknown scripted policy 'pilot'"):
        record_episode("WheelchairSC-v0", tmp_path / "x.gif", policy="pilot", max_steps=1)
    with pytest.raises(ValueError, match="env_id: unknown environment"):
        record_episode("NoSuchEnv-v0", tmp_path / "x.gif", max_steps=1)
