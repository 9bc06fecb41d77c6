"""Reports end to end: results.json, CSV, Markdown and self-contained HTML that references every
plot; comparison of a trained policy with scripted baselines."""

from __future__ import annotations

import base64
import csv
import json
from html.parser import HTMLParser

import numpy as np
import pytest
from _evalhelpers import write_fake_run

from saferl.training.evaluation import run_compare, run_evaluate
from saferl.training.evaluation.table import EpisodeTable


class _Collector(HTMLParser):
    """Collects <img> tags and checks that every opened tag is closed (void tags aside)."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self):
        super().__init__()
        self.images = []
        self.stack = []
        self.errors = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        elif tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()


def _parse_html(path):
    parser = _Collector()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    assert not parser.errors, parser.errors[:3]
    assert parser.stack == [], parser.stack
    return parser


def _check_plots_embedded(html_path, out_dir, plot_files):
    parser = _parse_html(html_path)
    by_id = {img.get("id"): img for img in parser.images}
    assert plot_files, "no plots listed"
    for rel in plot_files:
        name = rel.removeprefix("plots/").removesuffix(".png")
        img = by_id.get(f"plot-{name}")
        assert img is not None, f"plot {name} not referenced in {html_path.name}"
        prefix = "data:image/png;base64,"
        assert img["src"].startswith(prefix), "plots must be embedded (self-contained HTML)"
        png = base64.b64decode(img["src"][len(prefix) :])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert png == (out_dir / rel).read_bytes()
    # nothing external: every image is a data URI
    assert all(img["src"].startswith("data:") for img in parser.images)


def test_evaluate_report_end_to_end(tmp_path, capsys):
    run = write_fake_run(tmp_path / "toy_run")
    code = run_evaluate(
        str(run),
        checkpoint="best",
        protocols=["all"],
        episodes=12,
        report=True,
        overrides=["eval.num_envs=5"],
    )
    assert code == 0
    out = run / "eval"
    results = json.loads((out / "results.json").read_text())  # strict JSON (no NaN)
    assert list(results["protocols"]) == ["standard", "stochastic", "safety", "human_factors"]
    assert results["settings"]["episodes"] == 12 and results["settings"]["num_envs"] == 5
    assert results["model"]["kind"] == "trained" and results["model"]["epoch"] == 3
    assert results["env"]["limit"] == 3.0
    std = results["protocols"]["standard"]["conditions"]["default"]
    assert std["episodes"] == 12
    assert std["return"]["low"] <= std["return"]["estimate"] <= std["return"]["high"]
    assert list(results["protocols"]["safety"]["conditions"]) == ["easy", "standard", "hard"]
    deg = results["protocols"]["human_factors"]["degradation"]
    assert [r["level"] for r in deg] == ["none", "mild", "moderate", "severe"]
    assert deg[0]["return_change"] == 0.0

    # CSV: one row per episode of every condition (1 + 1 + 3 + 4 conditions)
    with open(out / "episodes.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 * 9
    assert {"return", "cost", "cost_hazard", "cost_fast", "violation", "seed"} <= set(rows[0])
    # the CSV numbers are the JSON summary's numbers
    std_returns = [float(r["return"]) for r in rows if r["protocol"] == "standard"]
    assert np.mean(std_returns) == pytest.approx(std["return"]["estimate"])

    names = {p.removeprefix("plots/") for p in results["plots"]}
    assert names == {
        "return_cost_distributions.png",
        "cost_vs_limit.png",
        "degradation.png",
        "challenge_levels.png",
    }
    _check_plots_embedded(out / "report.html", out, results["plots"])
    md = (out / "report.md").read_text()
    for rel in results["plots"]:
        assert f"]({rel})" in md
    assert "## Challenge levels" in md and "## Degradation" in md
    assert "wrote" in capsys.readouterr().out


def test_evaluate_without_report_writes_results_and_csv_only(tmp_path):
    run = write_fake_run(tmp_path / "r")
    assert run_evaluate(str(run), protocols=["standard"], episodes=4, report=False) == 0
    files = sorted(p.name for p in (run / "eval").iterdir())
    assert files == ["episodes.csv", "results.json"]
    results = json.loads((run / "eval" / "results.json").read_text())
    assert results["plots"] == []


def test_evaluate_is_reproducible(tmp_path):
    run = write_fake_run(tmp_path / "r")
    run_evaluate(str(run), protocols=["standard", "stochastic"], episodes=6, report=False)
    first = (run / "eval" / "episodes.csv").read_text()
    run_evaluate(str(run), protocols=["standard", "stochastic"], episodes=6, report=False)
    assert (run / "eval" / "episodes.csv").read_text() == first


def test_compare_trained_run_with_baselines(tmp_path):
    run = write_fake_run(tmp_path / "runs" / "toy_run")
    out = tmp_path / "cmp"
    code = run_compare(
        [str(run), "baselines:go_to_goal", "baselines:reckless"],
        out=str(out),
        protocols=["standard", "safety"],
        episodes=15,
    )
    assert code == 0
    result = json.loads((out / "comparison.json").read_text())
    assert [m["name"] for m in result["models"]] == [
        "toy_run",
        "baselines:go_to_goal",
        "baselines:reckless",
    ]
    # standard + 3 challenge levels; 3 pairs x 3 metrics per group
    assert len(result["groups"]) == 4
    assert all(len(g["tests"]) == 9 for g in result["groups"])
    ranking = result["ranking"]
    by_name = {r["name"]: r for r in ranking}
    assert not by_name["baselines:reckless"]["feasible"]
    feasible = [r["rank"] for r in ranking if r["feasible"]]
    infeasible = [r["rank"] for r in ranking if not r["feasible"]]
    assert max(feasible) < min(infeasible)
    # Holm-adjusted p-values are >= the raw ones and monotone in them
    for g in result["groups"]:
        for t in g["tests"]:
            if t["welch_p"] is not None:
                assert t["welch_p_holm"] >= t["welch_p"]
    _check_plots_embedded(out / "comparison.html", out, result["plots"])
    assert "conditions_safety.png" in {p.removeprefix("plots/") for p in result["plots"]}
    table = list(csv.DictReader(open(out / "episodes.csv", newline="")))
    assert len(table) == 3 * 15 * 4 and {r["model"] for r in table} == set(by_name)


def test_compare_only_baselines_uses_default_out_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    specs = ["baselines:go_to_goal", "baselines:reckless"]
    assert run_compare(specs, episodes=5, env_id="EvalToy-v0") == 0
    (out,) = (tmp_path / "runs").glob("compare-*")
    assert (out / "comparison.html").is_file()


def test_episode_table_round_trips_and_concat():
    t = EpisodeTable(
        {"a": np.array([1, 2]), "b": np.array([0.5, np.nan]), "c": np.array(["x", "y"])}
    )
    assert EpisodeTable.from_dict(json.loads(json.dumps(t.to_dict()))) == t
    u = EpisodeTable.concat([t, EpisodeTable({"a": np.array([3]), "d": np.array([1.0])})])
    assert len(u) == 3 and np.isnan(u["d"][:2]).all() and u["c"][2] == ""
    assert t.to_csv().splitlines() == ["a,b,c", "1,0.5,x", "2,,y"]
    with pytest.raises(ValueError, match="equal length"):
        EpisodeTable({"a": [1, 2], "b": [1]})
