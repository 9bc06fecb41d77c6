"""``saferl export``: files written whole, user errors as one line with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from saferl.cli import app
from saferl.deploy import load_policy, sidecar_path

runner = CliRunner()


def _one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def test_export_writes_the_artefact_and_its_sidecar_and_nothing_else(exo, tmp_path):
    out = tmp_path / "deploy" / "exo.pt"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "saferl",
            "export",
            str(exo.run_dir),
            "--format",
            "torchscript",
            "--checkpoint",
            "last",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert res.returncode == 0, res.stderr
    assert f"wrote {out}" in res.stdout
    assert sorted(p.name for p in out.parent.iterdir()) == ["exo.pt", "exo.pt.json"]
    side = json.loads(sidecar_path(out).read_text())
    assert side["artefact"]["format"] == "torchscript"
    obs_dim, act_dim = side["observation"]["dim"], side["action"]["dim"]
    assert act_dim == 8  # configs/exo_cpo.yaml: assist action mode, 4 levels + 4 corrections
    actions = load_policy(out).run(__import__("numpy").zeros((2, obs_dim), "float32"))[0]
    assert actions.shape == (2, act_dim)


def test_export_default_path_is_inside_the_run(exo):
    res = runner.invoke(
        app, ["export", str(exo.run_dir), "--format", "torchscript", "--checkpoint", "last"]
    )
    assert res.exit_code == 0, res.stderr
    assert (exo.run_dir / "export" / "policy.pt").is_file()
    assert (exo.run_dir / "export" / "policy.pt.json").is_file()


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--format", "tflite"], ["--format: expected one of onnx, torchscript", "tflite"]),
        (["--precision", "float16"], ["--precision: expected one of float64, float32"]),
        (["--checkpoint", "nope.pt"], ["checkpoint nope.pt does not exist"]),
    ],
)
def test_export_bad_arguments_are_one_line(exo, tmp_path, args, needles):
    out = tmp_path / "x.pt"
    res = runner.invoke(
        app, ["export", str(exo.run_dir), "--format", "torchscript", "--out", str(out), *args]
    )
    _one_line_error(res, *needles)
    assert list(tmp_path.iterdir()) == []


def test_export_of_a_missing_run_or_into_a_directory_is_one_line(exo, tmp_path):
    res = runner.invoke(app, ["export", str(tmp_path / "nope"), "--format", "torchscript"])
    _one_line_error(res, "does not exist")
    res = runner.invoke(
        app,
        [
            "export",
            str(exo.run_dir),
            "-f",
            "torchscript",
            "--checkpoint",
            "last",
            "-o",
            str(tmp_path),
        ],
    )
    _one_line_error(res, "--out:", "is a directory")


def test_missing_optional_packages_name_the_extra(exo, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    res = runner.invoke(
        app, ["export", str(exo.run_dir), "--checkpoint", "last", "--out", str(tmp_path / "x")]
    )
    _one_line_error(res, "onnxscript is not installed", "pip install 'saferl[deploy]'")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    res = runner.invoke(app, ["serve", str(exo.onnx), "--port", "0"])
    _one_line_error(res, "onnxruntime is not installed", "saferl[deploy]")
    assert list(tmp_path.iterdir()) == []
