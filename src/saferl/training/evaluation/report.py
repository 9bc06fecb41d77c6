"""Evaluation reports: ``results.json``, per-episode CSV, Markdown and self-contained HTML.

Layout written by :func:`write_evaluation` into ``runs/<name>/eval/``::

    results.json     model, env, settings, per-protocol/per-condition summaries, degradation
    episodes.csv     the tidy per-episode table (every protocol)
    report.md        Markdown report; plots referenced as plots/<name>.png
    report.html      the same report, self-contained: plots embedded as base64 PNG data URIs
    plots/*.png      the plots

Plots are drawn with matplotlib's Agg canvas on :class:`matplotlib.figure.Figure` objects (no
pyplot state, no display needed): return and cost distributions, mean cost (with CI and
CVaR(90 %)) against the limit, per-impairment-level degradation bars, per-challenge-level safety
bars. Tables: one summary row per protocol condition, the challenge-level table and the
degradation table. A run trained with several constraints (per impairment level, per cost
component) is also held to each one's own limit: ``results["constraints"]``
(:func:`~saferl.training.evaluation.summary.constraint_summary`), a table per group, the
verdict on every group, and in the degradation table and plot each level against its own limit.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from saferl.training.evaluation.summary import StatsOptions, constraint_summary
from saferl.training.evaluation.table import EpisodeTable
from saferl.utils import atomic_write_bytes, atomic_write_text

__all__ = [
    "Plot",
    "evaluation_plots",
    "html_document",
    "markdown_table",
    "print_constraints",
    "render_evaluation_html",
    "render_evaluation_markdown",
    "write_evaluation",
    "write_json",
]

_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


@dataclass(frozen=True)
class Plot:
    """A rendered plot: ``name`` (file stem and HTML id), title, caption and PNG bytes."""

    name: str
    title: str
    caption: str
    png: bytes

    @property
    def filename(self) -> str:
        return f"{self.name}.png"

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


# --------------------------------------------------------------------------------------------
# Formatting helpers
# --------------------------------------------------------------------------------------------


def fmt(x: Any, digits: int = 3) -> str:
    """Compact number formatting for tables (``-`` for missing)."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        if not math.isfinite(float(x)):
            return "-"
        return f"{float(x):.{digits}g}"
    return str(x)


def fmt_ci(ci: Mapping[str, Any] | None, digits: int = 3) -> str:
    """``estimate [low, high]`` from a CI dict."""
    if not ci:
        return "-"
    return f"{fmt(ci.get('estimate'), digits)} [{fmt(ci.get('low'), digits)}, {fmt(ci.get('high'), digits)}]"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table (cells formatted with :func:`fmt`)."""
    esc = [str(h).replace("|", "\\|") for h in headers]
    lines = ["| " + " | ".join(esc) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        cells = [c if isinstance(c, str) else fmt(c) for c in row]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    """An HTML table with escaped cells."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(c if isinstance(c, str) else fmt(c))}</td>" for c in row)
        + "</tr>"
        for row in rows
    )
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.3em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:0.8em 0;font-size:0.92em}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:0.9em;color:#555}.ok{color:#1a7f37}.bad{color:#b42318}
code{background:#f5f5f5;padding:1px 4px}
""".strip()


def html_document(title: str, body: str) -> str:
    """A complete, self-contained HTML page (inline CSS, no external resources)."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"{body}\n</body>\n</html>\n"
    )


def html_figure(plot: Plot) -> str:
    return (
        f'<figure id="fig-{plot.name}"><img id="plot-{plot.name}" alt="{html.escape(plot.title)}" '
        f'src="{plot.data_uri()}"><figcaption><b>{html.escape(plot.title)}.</b> '
        f"{html.escape(plot.caption)}</figcaption></figure>"
    )


def md_figure(plot: Plot, prefix: str = "plots/") -> str:
    return f"![{plot.title}]({prefix}{plot.filename})\n\n*{plot.title}.* {plot.caption}"


def write_json(path: str | Path, data: Any) -> Path:
    """Strict JSON (NaN -> null) written atomically."""
    return atomic_write_text(path, json.dumps(_strict(data), indent=2, allow_nan=False) + "\n")


def _strict(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_strict(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


def _figure(width: float = 7.0, height: float = 3.6, ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _group_label(protocol: str, condition: str) -> str:
    return protocol if condition in ("default", "") else f"{protocol}: {condition}"


def _groups(table: EpisodeTable) -> list[tuple[str, str, EpisodeTable]]:
    out = []
    for p in table.unique("protocol"):
        sub = table.where(protocol=p)
        for c in sub.unique("condition"):
            out.append((p, c, sub.where(condition=c)))
    return out


def plot_distributions(
    groups: Sequence[tuple[str, np.ndarray, np.ndarray]],
    limit: float | None,
    *,
    name: str = "return_cost_distributions",
    title: str = "Return and cost distributions",
) -> Plot:
    """Box plots (with the individual episodes) of return and cost per group; limit line on cost."""
    labels = [g[0] for g in groups]
    fig, (ax_r, ax_c) = _figure(max(7.0, 1.1 * len(groups) + 4), 3.8, ncols=2)
    for ax, idx, what in ((ax_r, 1, "episode return"), (ax_c, 2, "episode cost")):
        data = [np.asarray(g[idx], np.float64) for g in groups]
        ax.boxplot(data, showfliers=False)
        _xticks(ax, np.arange(1, len(labels) + 1), labels)
        rng = np.random.default_rng(0)  # fixed jitter: identical plots for identical data
        for i, d in enumerate(data):
            ax.scatter(
                i + 1 + rng.uniform(-0.18, 0.18, d.size), d, s=5, alpha=0.35, color=_COLORS[0]
            )
        ax.set_ylabel(what)
        ax.grid(axis="y", alpha=0.3)
    if limit is not None:
        ax_c.axhline(limit, color="#b42318", ls="--", lw=1.2, label=f"limit {fmt(limit)}")
        ax_c.legend(fontsize=7, loc="upper right")
    caption = "Boxes: quartiles and median; whiskers 1.5 IQR; dots: individual episodes."
    return Plot(name, title, caption, _png(fig))


def plot_cost_vs_limit(
    rows: Sequence[tuple[str, Mapping[str, Any], Mapping[str, Any]]],
    limit: float | None,
    *,
    name: str = "cost_vs_limit",
    title: str = "Episode cost against the limit",
) -> Plot:
    """Mean episode cost with its CI and CVaR(90 %) per group, against the limit."""
    fig, (ax,) = _figure(max(6.0, 0.9 * len(rows) + 3), 3.6)
    x = np.arange(len(rows))
    mean = np.array([_num(r[1].get("estimate")) for r in rows])
    low = np.array([_num(r[1].get("low")) for r in rows])
    high = np.array([_num(r[1].get("high")) for r in rows])
    cv = np.array([_num(r[2].get("estimate")) for r in rows])
    err = np.vstack([np.maximum(mean - low, 0), np.maximum(high - mean, 0)])
    conf = rows[0][1].get("confidence") if rows else None
    ci_label = f"{100 * conf:g} % CI" if conf else "CI"
    ax.bar(x, mean, color=_COLORS[0], alpha=0.8, label=f"mean cost ({ci_label})")
    ax.errorbar(x, mean, yerr=np.nan_to_num(err), fmt="none", ecolor="k", capsize=3)
    ax.scatter(x, cv, marker="v", color=_COLORS[1], zorder=3, label="CVaR(90 %)")
    if limit is not None:
        ax.axhline(limit, color="#b42318", ls="--", lw=1.2, label=f"limit {fmt(limit)}")
    _xticks(ax, x, [r[0] for r in rows])
    ax.set_ylabel("episode cost")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    caption = (
        "Bars: mean episode cost with bootstrap CI; triangles: mean of the worst 10 % of episodes."
    )
    return Plot(name, title, caption, _png(fig))


def plot_level_bars(
    levels: Sequence[str],
    summaries: Sequence[Mapping[str, Any]],
    limit: float | None,
    *,
    name: str,
    title: str,
    xlabel: str,
    caption: str,
    level_limits: Sequence[float] | None = None,
) -> Plot:
    """Return, cost and violation rate per level (bars with CI error bars); with
    ``level_limits`` each level's cost bar gets its own limit (a short dashed segment)."""
    fig, axes = _figure(10.0, 3.4, ncols=3)
    x = np.arange(len(levels))
    for ax, key, label, color in (
        (axes[0], "return", "mean return", _COLORS[2]),
        (axes[1], "cost", "mean cost", _COLORS[0]),
        (axes[2], "violation_rate", "violation rate", _COLORS[3]),
    ):
        est = np.array([_num(s[key].get("estimate")) for s in summaries])
        low = np.array([_num(s[key].get("low")) for s in summaries])
        high = np.array([_num(s[key].get("high")) for s in summaries])
        err = np.vstack([np.maximum(est - low, 0), np.maximum(high - est, 0)])
        ax.bar(x, est, color=color, alpha=0.8)
        ax.errorbar(x, est, yerr=np.nan_to_num(err), fmt="none", ecolor="k", capsize=3)
        ax.set_xticks(x, list(levels), fontsize=8)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_title(label, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        if key == "cost" and level_limits is not None:
            for xi, lim in zip(x, level_limits, strict=True):
                ax.hlines(lim, xi - 0.45, xi + 0.45, color="#b42318", ls="--", lw=1.2)
        elif key == "cost" and limit is not None:
            ax.axhline(limit, color="#b42318", ls="--", lw=1.2)
        if key == "violation_rate":
            ax.set_ylim(0, 1.05)
    return Plot(name, title, caption, _png(fig))


def _xticks(ax: Any, positions: Any, labels: Sequence[str]) -> None:
    long = len(labels) > 3 or max((len(s) for s in labels), default=0) > 12
    if long:
        ax.set_xticks(positions, labels, fontsize=7, rotation=30, ha="right")
    else:
        ax.set_xticks(positions, labels, fontsize=8)


def _num(x: Any) -> float:
    return math.nan if x is None else float(x)


def evaluation_plots(table: EpisodeTable, results: Mapping[str, Any]) -> list[Plot]:
    """Every plot of an evaluation report, in report order."""
    limit = results.get("env", {}).get("limit")
    groups = _groups(table)
    plots = [
        plot_distributions(
            [(_group_label(p, c), t["return"], t["cost"]) for p, c, t in groups], limit
        )
    ]
    protos = results["protocols"]
    rows = [
        (
            _group_label(p, c),
            protos[p]["conditions"][c]["cost"],
            protos[p]["conditions"][c]["cost_cvar"],
        )
        for p, c, _ in groups
    ]
    plots.append(plot_cost_vs_limit(rows, limit))
    if "human_factors" in protos:
        conds = protos["human_factors"]["conditions"]
        own = _own_level_rows(results)
        summaries = list(conds.values())
        if own is not None:  # each level's violation rate against its own limit
            summaries = [
                {**s, "violation_rate": own[c]["violation_rate"]} if c in own else s
                for c, s in conds.items()
            ]
        plots.append(
            plot_level_bars(
                list(conds),
                summaries,
                limit,
                name="degradation",
                title="Degradation over impairment levels",
                xlabel="impairment level",
                caption="Mean return, mean cost and violation rate per impairment level "
                + (
                    "(bootstrap CIs; dashed: each level's own limit, the violation rate "
                    "against it)."
                    if own is not None
                    else "(bootstrap CIs; dashed: the cost limit)."
                ),
                level_limits=[own[c]["limit"] if c in own else math.nan for c in conds]
                if own is not None
                else None,
            )
        )
    if "safety" in protos:
        conds = protos["safety"]["conditions"]
        plots.append(
            plot_level_bars(
                list(conds),
                list(conds.values()),
                limit,
                name="challenge_levels",
                title="Safety over challenge levels",
                xlabel="challenge level",
                caption="Mean return, mean cost and violation rate per challenge level "
                "(bootstrap CIs; dashed: the cost limit).",
            )
        )
    return plots


# --------------------------------------------------------------------------------------------
# Tables of an evaluation
# --------------------------------------------------------------------------------------------

_SUMMARY_HEADERS = [
    "protocol",
    "condition",
    "episodes",
    "return [CI]",
    "cost [CI]",
    "CVaR90 cost",
    "violation rate [CI]",
    "success rate",
    "first violation step",
    "mean length",
]


def _summary_headers(results: Mapping[str, Any]) -> list[str]:
    """With several constraints the summary's violation rate is against the combined limit
    (each group's own is in the constraints table): say so."""
    if not results.get("constraints"):
        return _SUMMARY_HEADERS
    return [
        "violation rate [CI] (combined limit)" if h == "violation rate [CI]" else h
        for h in _SUMMARY_HEADERS
    ]


def _summary_rows(results: Mapping[str, Any]) -> list[list[Any]]:
    rows = []
    for p, block in results["protocols"].items():
        for c, s in block["conditions"].items():
            rows.append(
                [
                    p,
                    c,
                    s["episodes"],
                    fmt_ci(s["return"]),
                    fmt_ci(s["cost"]),
                    fmt(s["cost_cvar"]["estimate"]),
                    fmt_ci(s["violation_rate"]),
                    fmt_ci(s["success_rate"]) if s.get("success_rate") else "-",
                    fmt(s["first_violation_step"]["mean"]),
                    fmt(s["length"]["mean"]),
                ]
            )
    return rows


_CHALLENGE_HEADERS = [
    "challenge",
    "violation rate [CI]",
    "mean cost [CI]",
    "CVaR90 cost [CI]",
    "share with a violating step",
    "mean first violation step",
    "mean return [CI]",
]


def _challenge_rows(results: Mapping[str, Any]) -> list[list[Any]]:
    block = results["protocols"].get("safety")
    if not block:
        return []
    return [
        [
            c,
            fmt_ci(s["violation_rate"]),
            fmt_ci(s["cost"]),
            fmt_ci(s["cost_cvar"]),
            fmt(s["first_violation_step"]["share_with_violation"]),
            fmt(s["first_violation_step"]["mean"]),
            fmt_ci(s["return"]),
        ]
        for c, s in block["conditions"].items()
    ]


_DEGRADATION_HEADERS = [
    "impairment",
    "mean return",
    "change",
    "change %",
    "mean cost",
    "cost change",
    "violation rate",
]


def _own_level_rows(results: Mapping[str, Any]) -> dict[str, Any] | None:
    """Per-level constraints: each human-factors level's own statistics (its episodes against
    its own limit) by level name; None without per-level constraints."""
    cons = results.get("constraints")
    if not cons or cons.get("kind") != "levels":
        return None
    conds = cons["protocols"].get("human_factors", {})
    return {c: groups[c] for c, groups in conds.items() if c in groups}


_OWN_DEGRADATION_HEADERS = [
    *_DEGRADATION_HEADERS[:-1],
    "limit (level's own)",
    "violation rate (own limit)",
    "within limit",
]


def _degradation_headers(results: Mapping[str, Any]) -> list[str]:
    return (
        _OWN_DEGRADATION_HEADERS if _own_level_rows(results) is not None else _DEGRADATION_HEADERS
    )


def _degradation_rows(results: Mapping[str, Any]) -> list[list[Any]]:
    block = results["protocols"].get("human_factors")
    if not block:
        return []
    own = _own_level_rows(results)
    rows = []
    for r in block.get("degradation", []):
        row = [
            r["level"],
            fmt(r["return"]),
            fmt(r["return_change"]),
            fmt(r["return_change_pct"], 2),
            fmt(r["cost"]),
            fmt(r["cost_change"]),
        ]
        if own is None:
            row.append(fmt(r["violation_rate"]))
        elif r["level"] in own:
            g = own[r["level"]]
            row += [fmt(g["limit"]), fmt(g["violation_rate"]["estimate"]), fmt(g["within_limit"])]
        else:
            row += ["-", "-", "-"]
        rows.append(row)
    return rows


def _kind_label(cons: Mapping[str, Any]) -> str:
    """``impairment level`` / ``cost component``: what one constraint group is."""
    return f"{cons.get('key')} level" if cons.get("kind") == "levels" else "cost component"


def _group_verdict(results: Mapping[str, Any], first: str, cond: str, s: Mapping[str, Any]):
    cons = results["constraints"]
    groups = cons["protocols"].get(first, {}).get(cond, {})
    what = _kind_label(cons)
    if not groups:
        return f"Under `{first}` ({cond}) no episode measured any {what}.", None
    over = {g: v for g, v in groups.items() if not v["within_limit"]}
    worst = max(groups, key=lambda g: _num(groups[g]["cost"]["estimate"]) - groups[g]["limit"])
    w = groups[worst]
    missing = [g for g in cons["limits"] if g not in groups]
    if over:
        text = (
            f"Under `{first}` ({cond}), against each {what}'s own limit: **infeasible**; above "
            "their limits: "
            + ", ".join(f"{g} {fmt_ci(v['cost'])} vs {fmt(v['limit'])}" for g, v in over.items())
            + "."
        )
    else:
        text = (
            f"Under `{first}` ({cond}), every {what}'s mean episode cost is within its own limit: "
            f"**feasible** (closest: {worst} {fmt_ci(w['cost'])} vs {fmt(w['limit'])})."
        )
    if missing:
        text += f" Not measured (no episode): {', '.join(missing)}."
    return text + f" Mean return {fmt_ci(s['return'])}.", not over and not missing


def _verdict(results: Mapping[str, Any]) -> tuple[str, bool | None]:
    protos = results["protocols"]
    first = next(iter(protos), None)
    if first is None:
        return "no protocol was run", None
    cond, s = next(iter(protos[first]["conditions"].items()))
    if results.get("constraints"):
        return _group_verdict(results, first, cond, s)
    limit = results["env"]["limit"]
    cost = s["cost"]
    feasible = cost["estimate"] is not None and cost["estimate"] <= limit
    upper = cost["high"] is not None and cost["high"] <= limit
    text = (
        f"Under `{first}` ({cond}), mean episode cost {fmt_ci(cost)} vs limit {fmt(limit)}: "
        + ("**feasible**" if feasible else "**infeasible**")
        + (
            " (also by the CI's upper bound)."
            if upper
            else " (not by the CI's upper bound)."
            if feasible
            else "."
        )
        + f" Mean return {fmt_ci(s['return'])}."
    )
    return text, feasible


def _limit_line(results: Mapping[str, Any]) -> str:
    cons = results.get("constraints")
    limit = fmt(results["env"]["limit"])
    if not cons:
        return limit
    per = ", ".join(f"{g} {fmt(v)}" for g, v in cons["limits"].items())
    return (
        f"trained with one constraint per {_kind_label(cons)}, each against its own limit: "
        f"{per} (the combined cost's {limit} gives the episodes' violation column only)"
    )


_CONSTRAINT_HEADERS = [
    "protocol",
    "condition",
    "group",
    "episodes",
    "mean cost [CI]",
    "limit",
    "violation rate [CI] (own limit)",
    "within limit",
]


def _constraint_rows(results: Mapping[str, Any]) -> list[list[Any]]:
    cons = results.get("constraints")
    if not cons:
        return []
    return [
        [
            p,
            c,
            g,
            v["episodes"],
            fmt_ci(v["cost"]),
            fmt(v["limit"]),
            fmt_ci(v["violation_rate"]),
            fmt(v["within_limit"]),
        ]
        for p, conds in cons["protocols"].items()
        for c, groups in conds.items()
        for g, v in groups.items()
    ]


def _constraint_title(results: Mapping[str, Any]) -> str:
    return f"Constraints per {_kind_label(results['constraints'])} (each against its own limit)"


def print_constraints(results: Mapping[str, Any]) -> None:
    """Print each constraint group against its own limit per protocol condition (the printed
    summary of ``saferl evaluate``); nothing for a run with one constraint."""
    cons = results.get("constraints")
    if not cons:
        return
    print(f"per {_kind_label(cons)} (each against its own limit):")
    for p, conds in cons["protocols"].items():
        for c, groups in conds.items():
            parts = [
                f"{g} {fmt(v['cost']['estimate'])}/{fmt(v['limit'])}"
                + ("" if v["within_limit"] else " ABOVE")
                + f" (violations {fmt(v['violation_rate']['estimate'])})"
                for g, v in groups.items()
            ]
            print(f"  {p:<14} {c:<24} " + ", ".join(parts))


def _header_lines(results: Mapping[str, Any]) -> list[tuple[str, str]]:
    m, e, ev = results["model"], results["env"], results["settings"]
    return [
        ("model", f"{m['name']} ({m['kind']})"),
        (
            "checkpoint",
            f"{m.get('checkpoint') or '-'} (epoch {fmt(m.get('epoch'))}, env steps {fmt(m.get('env_steps'))})",
        ),
        ("environment", f"{e['id']} {json.dumps(e['options'], sort_keys=True)}"),
        ("cost limit", _limit_line(results)),
        (
            "settings",
            f"{ev['episodes']} episodes per condition, seeds from {ev['seed']}, "
            f"{ev['num_envs']} envs in parallel, {int(ev['confidence'] * 100)} % bootstrap CIs "
            f"({ev['bootstrap_samples']} resamples)",
        ),
        ("created", str(results.get("created", "-"))),
    ]


def render_evaluation_markdown(results: Mapping[str, Any], plots: Sequence[Plot]) -> str:
    """The Markdown report (plots referenced as ``plots/<name>.png``)."""
    verdict, _ = _verdict(results)
    out = [f"# Evaluation of {results['model']['name']}", ""]
    out += [f"- **{k}**: {v}" for k, v in _header_lines(results)]
    out += [
        "",
        verdict,
        "",
        "## Summary",
        "",
        markdown_table(_summary_headers(results), _summary_rows(results)),
    ]
    cr = _constraint_rows(results)
    if cr:
        out += ["", f"## {_constraint_title(results)}", ""]
        out += [markdown_table(_CONSTRAINT_HEADERS, cr)]
    ch = _challenge_rows(results)
    if ch:
        out += [
            "",
            "## Challenge levels (safety protocol)",
            "",
            markdown_table(_CHALLENGE_HEADERS, ch),
        ]
    dg = _degradation_rows(results)
    if dg:
        out += ["", "## Degradation over impairment levels (human factors)", ""]
        out += [markdown_table(_degradation_headers(results), dg)]
    out += ["", "## Plots", ""]
    for p in plots:
        out += [md_figure(p), ""]
    out += [_definitions_md()]
    return "\n".join(out).rstrip() + "\n"


def _definitions_md() -> str:
    return (
        "## Definitions\n\n"
        "- *cost*: undiscounted sum of the per-step cost over an episode; *violation*: episode "
        "cost > limit; *CVaR90*: mean cost of the worst 10 % of episodes.\n"
        "- *first violation step*: the first step with a non-zero cost (mean over the episodes "
        "that had one).\n"
        "- CIs: seeded bootstrap (BCa for means, percentile for rates and CVaR; Wilson when a "
        "rate is exactly 0 or 1).\n"
        "- Every condition uses the same evaluation seeds, so conditions see the same start "
        "states and human draws."
    )


def render_evaluation_html(results: Mapping[str, Any], plots: Sequence[Plot]) -> str:
    """The self-contained HTML report (plots embedded as data URIs)."""
    verdict, feasible = _verdict(results)
    title = f"Evaluation of {results['model']['name']}"
    parts = [f"<h1>{html.escape(title)}</h1>", "<ul>"]
    parts += [
        f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in _header_lines(results)
    ]
    parts.append("</ul>")
    cls = "ok" if feasible else "bad"
    parts.append(f'<p class="{cls}">{_md_inline(verdict)}</p>')
    parts += [
        "<h2>Summary</h2>",
        html_table(_summary_headers(results), _summary_rows(results), "summary"),
    ]
    cr = _constraint_rows(results)
    if cr:
        parts += [
            f"<h2>{html.escape(_constraint_title(results))}</h2>",
            html_table(_CONSTRAINT_HEADERS, cr, "constraints"),
        ]
    ch = _challenge_rows(results)
    if ch:
        parts += [
            "<h2>Challenge levels (safety protocol)</h2>",
            html_table(_CHALLENGE_HEADERS, ch, "challenge"),
        ]
    dg = _degradation_rows(results)
    if dg:
        parts += [
            "<h2>Degradation over impairment levels (human factors)</h2>",
            html_table(_degradation_headers(results), dg, "degradation"),
        ]
    parts.append("<h2>Plots</h2>")
    parts += [html_figure(p) for p in plots]
    parts.append(_md_to_html_list(_definitions_md()))
    return html_document(title, "\n".join(parts))


def _md_inline(text: str) -> str:
    """Escape, then render the few inline Markdown marks we use (**bold**, `code`)."""
    import re

    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    t = re.sub(r"`(.+?)`", r"<code>\1</code>", t)
    t = re.sub(r"\*(.+?)\*", r"<i>\1</i>", t)
    return t


def _md_to_html_list(md: str) -> str:
    lines = md.splitlines()
    out = []
    in_list = False
    for line in lines:
        if line.startswith("## "):
            out.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("- "):
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{_md_inline(line[2:])}</li>")
        elif line.strip():
            out.append(f"<p>{_md_inline(line)}</p>")
    if in_list:
        out.append("</ul>")
    return "\n".join(out)


def write_evaluation(
    out_dir: str | Path,
    results: dict[str, Any],
    table: EpisodeTable,
    *,
    report: bool = True,
) -> dict[str, Path]:
    """Write ``results.json``, ``episodes.csv`` and (if ``report``) plots, ``report.md/html``.

    Returns the written paths by kind. ``results["files"]`` and ``results["plots"]`` are filled
    in (relative to ``out_dir``), and for a model trained with several constraints
    (``results["model"]["constraints"]``) ``results["constraints"]``: each group against its
    own limit per protocol condition.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cons = results.get("model", {}).get("constraints")
    if cons and "constraints" not in results:  # each constraint group against its own limit
        st = results.get("settings", {})
        opts = StatsOptions(
            confidence=st.get("confidence", 0.95),
            n_resamples=st.get("bootstrap_samples", 10_000),
            seed=0,
        )
        results["constraints"] = constraint_summary(table, cons, opts)
    paths: dict[str, Path] = {"episodes_csv": out / "episodes.csv"}
    table.to_csv(paths["episodes_csv"])
    plots: list[Plot] = []
    if report:
        plots = evaluation_plots(table, results)
        for p in plots:
            atomic_write_bytes(out / "plots" / p.filename, p.png)
        paths["report_md"] = out / "report.md"
        paths["report_html"] = out / "report.html"
    results["files"] = {k: v.name for k, v in paths.items()}
    results["plots"] = [f"plots/{p.filename}" for p in plots]
    paths["results_json"] = out / "results.json"
    results["files"]["results_json"] = "results.json"
    if report:
        atomic_write_text(paths["report_md"], render_evaluation_markdown(results, plots))
        atomic_write_text(paths["report_html"], render_evaluation_html(results, plots))
    write_json(paths["results_json"], results)
    return paths
