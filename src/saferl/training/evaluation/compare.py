"""Comparison of several trained runs and scripted baselines (``saferl compare``).

Every model is evaluated under the same protocols with the same evaluation seeds (episode ``e``
of every condition sees the same start state and human draws for every model). Per protocol
condition:

* a summary per model (mean return/cost with bootstrap CIs, CVaR(90 %), violation rate);
* for every pair of models and every metric in :data:`METRICS` (episode return, episode cost,
  violation flag): Welch's t-test and the Mann-Whitney U test, Cohen's d and Cliff's delta (of
  the first model of the pair minus the second);
* Holm-Bonferroni adjusted p-values over the family of all pairs x metrics of that condition,
  separately for each test (Benjamini-Hochberg adjusted values are reported alongside);
* the ranking: feasible models (mean cost <= limit) first, by mean return; then the infeasible
  ones, the smallest excess over the limit first (a model at 12x the limit is not "better" than
  one 10 % over it because it returns more); a second flag says whether each model is also
  feasible by the upper bound of its cost CI.

The headline ranking is that of the first protocol's first condition (``standard`` by default).
Outputs in the comparison directory: ``comparison.json``, ``comparison.md``, ``comparison.html``
(self-contained), ``episodes.csv`` (all models, with a ``model`` column) and ``plots/``.
"""

from __future__ import annotations

import html
import itertools
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from saferl.config import Config, ConfigError, load_config, short_repr
from saferl.training.evaluation import stats
from saferl.training.evaluation.api import run_protocols, settings_from
from saferl.training.evaluation.errors import EvaluationError
from saferl.training.evaluation.models import BASELINE_PREFIX, Model, load_baseline, load_model
from saferl.training.evaluation.protocols import resolve_protocols
from saferl.training.evaluation.report import (
    _CONSTRAINT_HEADERS,
    Plot,
    _constraint_rows,
    _figure,
    _kind_label,
    _num,
    _png,
    fmt,
    fmt_ci,
    html_document,
    html_figure,
    html_table,
    markdown_table,
    md_figure,
    plot_distributions,
    write_json,
)
from saferl.training.evaluation.summary import StatsOptions, constraint_summary, summarize_group
from saferl.training.evaluation.table import EpisodeTable
from saferl.utils import atomic_write_bytes, atomic_write_text

logger = logging.getLogger(__name__)

__all__ = ["METRICS", "compare_tables", "run_compare"]

#: metric name -> column of the episode table
METRICS: dict[str, str] = {"return": "return", "cost": "cost", "violation": "violation"}


def compare_tables(
    tables: Mapping[str, EpisodeTable],
    limits: Mapping[str, float],
    *,
    opts: StatsOptions = StatsOptions(),
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Statistics of several models' episode tables (same protocols and conditions).

    Args:
        tables: model name -> its :class:`EpisodeTable` (``protocol``/``condition`` columns).
        limits: model name -> cost limit.
        opts: CI settings.
        alpha: significance level for the ``significant`` flags (on Holm-adjusted p-values).

    Returns:
        ``{"groups": [{protocol, condition, summaries, tests, ranking}], "ranking": [...]}``.
    """
    names = list(tables)
    if len(names) < 2:
        raise EvaluationError("compare needs at least two models")
    first = tables[names[0]]
    groups = []
    for protocol in first.unique("protocol"):
        sub = first.where(protocol=protocol)
        for condition in sub.unique("condition"):
            per = {n: tables[n].where(protocol=protocol, condition=condition) for n in names}
            missing = [n for n, t in per.items() if len(t) == 0]
            if missing:
                raise EvaluationError(
                    f"model(s) {', '.join(missing)} have no episodes for {protocol}/{condition}"
                )
            groups.append(_compare_group(protocol, condition, per, limits, opts, alpha))
    return {"groups": groups, "ranking": groups[0]["ranking"] if groups else []}


def _compare_group(
    protocol: str,
    condition: str,
    per: Mapping[str, EpisodeTable],
    limits: Mapping[str, float],
    opts: StatsOptions,
    alpha: float,
) -> dict[str, Any]:
    summaries = {n: summarize_group(t, opts) for n, t in per.items()}
    tests = []
    for (a, ta), (b, tb) in itertools.combinations(per.items(), 2):
        for metric, col in METRICS.items():
            x = ta[col].astype(np.float64)
            y = tb[col].astype(np.float64)
            w = stats.welch_ttest(x, y)
            u = stats.mann_whitney(x, y)
            delta = stats.cliffs_delta(x, y)
            tests.append(
                {
                    "a": a,
                    "b": b,
                    "metric": metric,
                    "mean_a": float(x.mean()),
                    "mean_b": float(y.mean()),
                    "difference": float(x.mean() - y.mean()),
                    "welch_t": w.statistic,
                    "welch_df": w.df,
                    "welch_p": w.pvalue,
                    "mann_whitney_u": u.statistic,
                    "mann_whitney_p": u.pvalue,
                    "cohens_d": stats.cohens_d(x, y),
                    "cliffs_delta": delta,
                    "cliffs_magnitude": stats.cliffs_magnitude(delta),
                }
            )
    if tests:
        for key in ("welch_p", "mann_whitney_p"):
            p = np.array([t[key] for t in tests], np.float64)
            holm = stats.holm(p)
            bh = stats.benjamini_hochberg(p)
            for t, h, q in zip(tests, holm, bh, strict=True):
                t[f"{key}_holm"] = float(h)
                t[f"{key}_bh"] = float(q)
                t[f"{key.removesuffix('_p')}_significant"] = bool(np.isfinite(h) and h <= alpha)
    models = {
        n: {
            "mean_return": s["return"]["estimate"],
            "mean_cost": s["cost"]["estimate"],
            "cost_high": s["cost"]["high"],
            "limit": float(limits[n]),
        }
        for n, s in summaries.items()
    }
    ranked = stats.rank_models(models)
    conservative = {r.name: r.feasible for r in stats.rank_models(models, use_upper_bound=True)}
    ranking = [r.to_dict() | {"feasible_upper_bound": conservative[r.name]} for r in ranked]
    return {
        "protocol": protocol,
        "condition": condition,
        "summaries": summaries,
        "tests": tests,
        "ranking": ranking,
        "alpha": alpha,
    }


# --------------------------------------------------------------------------------------------
# Plots and reports
# --------------------------------------------------------------------------------------------


def _plot_return_vs_cost(group: Mapping[str, Any], limit: float | None) -> Plot:
    fig, (ax,) = _figure(6.5, 4.2)
    for i, (name, s) in enumerate(group["summaries"].items()):
        r, c = s["return"], s["cost"]
        x, y = _num(c["estimate"]), _num(r["estimate"])
        xerr = [[max(x - _num(c["low"]), 0)], [max(_num(c["high"]) - x, 0)]]
        yerr = [[max(y - _num(r["low"]), 0)], [max(_num(r["high"]) - y, 0)]]
        ax.errorbar(
            x,
            y,
            xerr=np.nan_to_num(xerr),
            yerr=np.nan_to_num(yerr),
            fmt="o",
            capsize=3,
            label=name,
            color=f"C{i % 10}",
        )
    if limit is not None:
        ax.axvline(limit, color="#b42318", ls="--", lw=1.2, label=f"limit {fmt(limit)}")
    ax.set_xlabel("mean episode cost")
    ax.set_ylabel("mean episode return")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    title = f"Return against cost ({group['protocol']}, {group['condition']})"
    caption = "Means with bootstrap CIs; feasible models lie left of the dashed limit."
    return Plot("return_vs_cost", title, caption, _png(fig))


def comparison_plots(
    tables: Mapping[str, EpisodeTable], result: Mapping[str, Any], limit: float | None
) -> list[Plot]:
    """Distributions per model (headline condition), return-vs-cost, and one per protocol."""
    plots = []
    head = result["groups"][0]
    groups = [
        (
            n,
            t.where(protocol=head["protocol"], condition=head["condition"])["return"],
            t.where(protocol=head["protocol"], condition=head["condition"])["cost"],
        )
        for n, t in tables.items()
    ]
    plots.append(
        plot_distributions(
            groups,
            limit,
            name="return_cost_distributions",
            title=f"Return and cost per model ({head['protocol']}, {head['condition']})",
        )
    )
    plots.append(_plot_return_vs_cost(head, limit))
    # per-condition cost vs limit across models, for protocols with several conditions
    by_protocol: dict[str, list[Mapping[str, Any]]] = {}
    for g in result["groups"]:
        by_protocol.setdefault(g["protocol"], []).append(g)
    for protocol, gs in by_protocol.items():
        if len(gs) < 2:
            continue
        plots.append(_plot_conditions(protocol, gs, limit))
    return plots


def _plot_conditions(protocol: str, gs: Sequence[Mapping[str, Any]], limit: float | None) -> Plot:
    conds = [g["condition"] for g in gs]
    models = list(gs[0]["summaries"])
    fig, axes = _figure(10.0, 3.6, ncols=2)
    width = 0.8 / max(len(models), 1)
    x = np.arange(len(conds))
    for ax, key, label in ((axes[0], "return", "mean return"), (axes[1], "cost", "mean cost")):
        for i, m in enumerate(models):
            est = np.array([_num(g["summaries"][m][key]["estimate"]) for g in gs])
            low = np.array([_num(g["summaries"][m][key]["low"]) for g in gs])
            high = np.array([_num(g["summaries"][m][key]["high"]) for g in gs])
            err = np.vstack([np.maximum(est - low, 0), np.maximum(high - est, 0)])
            pos = x - 0.4 + width * (i + 0.5)
            ax.bar(pos, est, width, label=m, color=f"C{i % 10}", alpha=0.85)
            ax.errorbar(pos, est, yerr=np.nan_to_num(err), fmt="none", ecolor="k", capsize=2)
        ax.set_xticks(x, conds, fontsize=8)
        ax.set_title(label, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        if key == "cost" and limit is not None:
            ax.axhline(limit, color="#b42318", ls="--", lw=1.2)
    axes[0].legend(fontsize=7)
    title = f"Models across {protocol} conditions"
    caption = "Means with bootstrap CIs per condition; dashed: the cost limit."
    return Plot(f"conditions_{protocol}", title, caption, _png(fig))


_RANK_HEADERS = [
    "rank",
    "model",
    "feasible",
    "feasible (CI upper bound)",
    "mean return",
    "mean cost",
    "limit",
]
_SUMMARY_HEADERS = ["model", "return [CI]", "cost [CI]", "CVaR90 cost", "violation rate [CI]"]
_TEST_HEADERS = [
    "a",
    "b",
    "metric",
    "mean a - b",
    "Welch p (Holm)",
    "MWU p (Holm)",
    "Cohen's d",
    "Cliff's delta",
    "significant",
]


def _rank_rows(ranking: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    return [
        [
            r["rank"],
            r["name"],
            r["feasible"],
            r["feasible_upper_bound"],
            fmt(r["mean_return"]),
            fmt(r["mean_cost"]),
            fmt(r["limit"]),
        ]
        for r in ranking
    ]


def _summary_rows(group: Mapping[str, Any]) -> list[list[Any]]:
    return [
        [
            n,
            fmt_ci(s["return"]),
            fmt_ci(s["cost"]),
            fmt(s["cost_cvar"]["estimate"]),
            fmt_ci(s["violation_rate"]),
        ]
        for n, s in group["summaries"].items()
    ]


def _test_rows(group: Mapping[str, Any]) -> list[list[Any]]:
    rows = []
    for t in group["tests"]:
        sig = []
        if t.get("welch_significant"):
            sig.append("Welch")
        if t.get("mann_whitney_significant"):
            sig.append("MWU")
        rows.append(
            [
                t["a"],
                t["b"],
                t["metric"],
                fmt(t["difference"]),
                f"{fmt(t['welch_p'])} ({fmt(t.get('welch_p_holm'))})",
                f"{fmt(t['mann_whitney_p'])} ({fmt(t.get('mann_whitney_p_holm'))})",
                fmt(t["cohens_d"]),
                f"{fmt(t['cliffs_delta'])} ({t['cliffs_magnitude']})",
                ", ".join(sig) or "no",
            ]
        )
    return rows


def _intro(result: Mapping[str, Any]) -> list[str]:
    s = result["settings"]
    return [
        f"Models: {', '.join(m['name'] for m in result['models'])}.",
        f"Environment {result['env']['id']}, cost limit {fmt(result['env']['limit'])}; "
        f"{s['episodes']} episodes per model and condition, seeds from {s['seed']} (the same "
        f"for every model); {int(s['confidence'] * 100)} % bootstrap CIs.",
        f"Tests: Welch's t and Mann-Whitney U (two-sided) per pair and metric; p-values "
        f"Holm-adjusted over all pairs x metrics of a condition; significant at alpha = "
        f"{result['alpha']}. Effect sizes: Cohen's d and Cliff's delta of a minus b.",
        "Ranking: feasible models (mean cost <= limit) first, by mean return; then the "
        "infeasible ones by their excess over the limit (smallest first), then by mean return.",
    ]


def _constraints_section(result: Mapping[str, Any]) -> tuple[str, list[list[Any]]] | None:
    """Models trained with several constraints (and baselines compared with them): each group
    against its own limit, one row per model, condition and group."""
    per_model = result.get("constraints")
    if not per_model:
        return None
    rows = [
        [name, *row]
        for name, cons in per_model.items()
        for row in _constraint_rows({"constraints": cons})
    ]
    kinds = {_kind_label(c) for c in per_model.values()}
    what = kinds.pop() if len(kinds) == 1 else "constraint group"
    return f"Constraints per {what} (each against its own limit)", rows


def render_comparison_markdown(result: Mapping[str, Any], plots: Sequence[Plot]) -> str:
    out = ["# Model comparison", ""]
    out += [f"- {line}" for line in _intro(result)]
    head = result["groups"][0]
    out += ["", f"## Ranking ({head['protocol']}, {head['condition']})", ""]
    out.append(markdown_table(_RANK_HEADERS, _rank_rows(result["ranking"])))
    section = _constraints_section(result)
    if section:
        out += [
            "",
            f"## {section[0]}",
            "",
            markdown_table(["model", *_CONSTRAINT_HEADERS], section[1]),
        ]
    for g in result["groups"]:
        out += ["", f"## {g['protocol']} / {g['condition']}", ""]
        out.append(markdown_table(_SUMMARY_HEADERS, _summary_rows(g)))
        out += ["", markdown_table(_TEST_HEADERS, _test_rows(g))]
        if g is not head:
            out += ["", "Ranking: " + ", ".join(f"{r['rank']}. {r['name']}" for r in g["ranking"])]
    out += ["", "## Plots", ""]
    for p in plots:
        out += [md_figure(p), ""]
    return "\n".join(out).rstrip() + "\n"


def render_comparison_html(result: Mapping[str, Any], plots: Sequence[Plot]) -> str:
    parts = ["<h1>Model comparison</h1>", "<ul>"]
    parts += [f"<li>{html.escape(line)}</li>" for line in _intro(result)]
    parts.append("</ul>")
    head = result["groups"][0]
    parts.append(
        f"<h2>Ranking ({html.escape(head['protocol'])}, {html.escape(head['condition'])})</h2>"
    )
    parts.append(html_table(_RANK_HEADERS, _rank_rows(result["ranking"]), "ranking"))
    section = _constraints_section(result)
    if section:
        parts.append(f"<h2>{html.escape(section[0])}</h2>")
        parts.append(html_table(["model", *_CONSTRAINT_HEADERS], section[1], "constraints"))
    for g in result["groups"]:
        parts.append(f"<h2>{html.escape(g['protocol'])} / {html.escape(g['condition'])}</h2>")
        parts.append(html_table(_SUMMARY_HEADERS, _summary_rows(g), "summary"))
        parts.append(html_table(_TEST_HEADERS, _test_rows(g), "tests"))
    parts.append("<h2>Plots</h2>")
    parts += [html_figure(p) for p in plots]
    return html_document("Model comparison", "\n".join(parts))


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def _baseline_config(env_id: str | None, overrides: Sequence[str]) -> Config:
    """The config baselines-only comparisons run in: the packaged default's env, or with
    ``env_id`` that env with its own defaults; ``overrides`` (``--set env.*``) on top."""
    bad = [o for o in overrides if not o.strip().startswith(("env.", "eval."))]
    if bad:
        raise EvaluationError(
            f"--set {bad[0]}: a baselines-only comparison takes env.* and eval.* fields only"
        )
    try:
        if env_id is None:
            return load_config(None, list(overrides))
        return load_config(base=Config(), overrides=[f"env.id={env_id}", *overrides])
    except ConfigError as exc:
        raise EvaluationError(str(exc)) from None


def _load_models(
    specs: Sequence[str], env_id: str | None = None, overrides: Sequence[str] = ()
) -> list[Model]:
    runs = [s for s in specs if not s.startswith(BASELINE_PREFIX)]
    if runs and (env_id is not None or overrides):
        raise EvaluationError(
            "--env/--set apply to baselines-only comparisons; with a run directory the "
            "baselines run in that run's env"
        )
    loaded: dict[str, Model] = {}
    reference: Model | None = None
    for spec in runs:
        loaded[spec] = load_model(spec)
        reference = reference or loaded[spec]
    config = None if runs else _baseline_config(env_id, overrides)
    for spec in specs:
        if spec.startswith(BASELINE_PREFIX):
            if reference is None:
                loaded[spec] = load_baseline(spec, config=config)
            else:
                loaded[spec] = load_model(spec, reference=reference)
    models = [loaded[s] for s in specs]
    env_ids = {m.env_id for m in models}
    if len(env_ids) > 1:
        raise EvaluationError(
            f"cannot compare models of different environments: {', '.join(sorted(env_ids))}"
        )
    trained = [m for m in models if m.run_dir is not None]
    if any(m.env_options != trained[0].env_options for m in trained[1:]):
        logger.warning(
            "the runs use different env options (%s); each model is evaluated under its own",
            "; ".join(f"{m.name}: {m.env_options}" for m in trained),
        )
    seen: dict[str, int] = {}
    for m in models:  # unique display names (two runs called the same in different folders)
        k = seen.get(m.name, 0)
        seen[m.name] = k + 1
        if k:
            m.name = f"{m.name}#{k + 1}"
    return models


#: env seeds are 32-bit (``eval.seed`` has the same bound)
SEED_BOUND = 2**32


def _check_out_dir(path: Path) -> None:
    """``--out`` is a directory or can be created as one (no file at it or above it).

    Raises:
        EvaluationError: naming ``--out`` and the file in the way.
    """
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                where = "" if p == path else f" (--out is {path})"
                raise EvaluationError(f"--out: {p} is a file, not a directory{where}")
            return


def run_compare(
    models: list[str],
    *,
    out: str | None = None,
    protocols: list[str] | None = None,
    episodes: int | None = None,
    seed: int | None = None,
    env_id: str | None = None,
    overrides: Sequence[str] = (),
) -> int:
    """What ``saferl compare MODEL MODEL...`` calls; returns the exit code (0).

    Args:
        models: run directories and/or ``baselines:<name>`` specs (at least two, distinct).
            Baselines run in the env, options and cost limit of the first run (or of the default
            config when only baselines are given).
        out: output directory (default: ``<first run's parent>/compare-<UTC timestamp>``, or
            ``runs/compare-<UTC timestamp>``).
        protocols: protocol names (``all`` / comma lists accepted); default the first run's
            ``eval.protocols``.
        episodes: episodes per model and condition; default the first run's ``eval.episodes``.
        seed: env seed of the first episode (episode k uses ``seed + k``, the same for every
            model, so the comparison is paired); default the first run's ``eval.seed``. Another
            seed checks a result on episodes that took no part in choosing it.
        env_id: baselines-only comparisons: the env (with its own defaults) instead of the
            packaged default config's.
        overrides: baselines-only comparisons: ``env.*``/``eval.*`` fields (``--set``).

    Raises:
        EvaluationError: (a ``ValueError``) fewer than two models, a duplicate, an unknown
            baseline or protocol, a run directory without checkpoints: one-line message.
    """
    specs = [str(m) for m in models]
    if len(specs) < 2:
        raise EvaluationError(
            "compare needs at least two models (run directories or baselines:NAME)"
        )
    dupes = sorted({s for s in specs if specs.count(s) > 1})
    if dupes:
        raise EvaluationError(f"model given twice: {', '.join(dupes)}")
    # Arguments first: a bad --seed or --out is refused before any episode runs.
    if seed is not None and (isinstance(seed, bool) or not 0 <= int(seed) < SEED_BOUND):
        raise EvaluationError(f"--seed must be >= 0 and < 2**32, got {short_repr(seed)}")
    if out is not None:
        _check_out_dir(Path(out))
    names = resolve_protocols(protocols) if protocols else None
    loaded = _load_models(specs, env_id, overrides)
    ref = loaded[0]
    ecfg = ref.config.eval
    proto_names = resolve_protocols(names if names else list(ecfg.protocols))
    settings = settings_from(ecfg, episodes)
    if seed is not None:
        settings["seed"] = int(seed)
    tables: dict[str, EpisodeTable] = {}
    for m in loaded:
        table, _ = run_protocols(m, proto_names, settings)
        tables[m.name] = table
    opts = StatsOptions(
        confidence=settings["confidence"], n_resamples=settings["bootstrap_samples"]
    )
    result = compare_tables(tables, {m.name: m.limit for m in loaded}, opts=opts)
    # several constraints: each model's groups against their own limits
    per_group = {
        m.name: constraint_summary(tables[m.name], m.constraints, opts)
        for m in loaded
        if m.constraints
    }
    limits = {m.limit for m in loaded}
    limit = ref.limit if len(limits) == 1 else None
    from saferl import __version__

    result = {
        "saferl_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "models": [m.describe() for m in loaded],
        "env": {"id": ref.env_id, "options": dict(ref.env_options), "limit": limit},
        "settings": {**settings, "protocols": proto_names},
        "alpha": 0.05,
        **result,
        **({"constraints": per_group} if per_group else {}),
    }
    if out is None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        parent = ref.run_dir.parent if ref.run_dir is not None else Path("runs")
        out_dir = parent / f"compare-{stamp}"
    else:
        out_dir = Path(out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EvaluationError(f"--out: cannot create {out_dir}: {exc.strerror or exc}") from None
    all_rows = EpisodeTable.concat(
        EpisodeTable({"model": np.full(len(t), n), **t.columns}) for n, t in tables.items()
    )
    all_rows.to_csv(out_dir / "episodes.csv")
    plots = comparison_plots(tables, result, limit)
    for p in plots:
        atomic_write_bytes(out_dir / "plots" / p.filename, p.png)
    result["plots"] = [f"plots/{p.filename}" for p in plots]
    result["files"] = {
        "comparison_json": "comparison.json",
        "comparison_md": "comparison.md",
        "comparison_html": "comparison.html",
        "episodes_csv": "episodes.csv",
    }
    atomic_write_text(out_dir / "comparison.md", render_comparison_markdown(result, plots))
    atomic_write_text(out_dir / "comparison.html", render_comparison_html(result, plots))
    write_json(out_dir / "comparison.json", result)
    print("ranking (" + f"{result['groups'][0]['protocol']}, {result['groups'][0]['condition']}):")
    for r in result["ranking"]:
        print(
            f"  {r['rank']}. {r['name']:<30} {'feasible' if r['feasible'] else 'INFEASIBLE':<10}"
            f" return {fmt(r['mean_return'])}  cost {fmt(r['mean_cost'])} (limit {fmt(r['limit'])})"
        )
    head = result["groups"][0]
    for name, cons in per_group.items():
        print(f"  {name}: per {_kind_label(cons)}, {group_verdict(cons, head['protocol'])}")
    print(f"wrote {out_dir / 'comparison.html'}")
    return 0


def group_verdict(cons: dict[str, Any], protocol: str) -> str:
    """One model's groups over every condition of ``protocol`` (a per-level protocol runs each
    level as its own condition): the groups above their own limits, named with the condition
    when the protocol has several, or that every group is within its limit."""
    conditions = cons["protocols"].get(protocol, {})
    over = []
    for condition, groups in conditions.items():
        for g, v in groups.items():
            if not v["within_limit"]:
                where = g if len(conditions) == 1 or g == condition else f"{g} ({condition})"
                over.append(f"{where} {fmt(v['cost']['estimate'])}/{fmt(v['limit'])}")
    if over:
        return "ABOVE: " + ", ".join(over)
    scope = f" in every {protocol} condition" if len(conditions) > 1 else ""
    return "every group within its own limit" + scope
