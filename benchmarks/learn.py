"""Learning curves and end-to-end throughput of CPO / PPO-Lagrangian.

    python benchmarks/learn.py --config configs/wheelchair_cpo.yaml --steps 2e6 --seeds 0 1 2
    python benchmarks/learn.py --config configs/wheelchair_cpo.yaml --algo ppo_lagrangian \
        --set target_kl=0.01 --steps 2e6 --seeds 0 1 2 --eval-seed 20000
    python benchmarks/learn.py --env WheelchairSC-v0 --algo cpo --steps 2e6 --seeds 0 1 2
    python benchmarks/learn.py --env WheelchairSC-v0 --throughput --num-envs 1024 --epochs 6
    python benchmarks/learn.py --env WheelchairSC-v0 --baselines-only

Writes under ``--out`` (default ``benchmarks/out/<env>_<algo>/``, git-ignored):

* ``curves.csv`` — one row per (seed, epoch): env_steps, ep_return, ep_cost, cost_limit and every
  scalar diagnostic of the update (CPO: case, lambda, nu, q, r, s, c, backtrack_k, kl, ...);
* ``curves.png`` — mean (and per-seed) return and cost against env steps, with the limit and the
  best scripted baseline that satisfies the limit;
* ``cases.png`` (CPO) — histogram of the optimisation cases overall and per 10 % of training;
* ``seed<S>_final.pt`` — the final algorithm state; ``seed<S>_final_eval.json`` — the final
  policy on ``--final-episodes`` evaluation episodes (mean action and sampled);
* ``summary.json`` — per seed and pooled: last-10-epoch mean cost and return, whether the cost is
  within +-20 % / <= +10 % of the limit, case counts (all epochs and once the cost first came
  within 20 % of the limit), steps/s, the final evaluation; the scripted baselines; and
  ``targets``: the learning targets' checks on the final evaluation (sampled actions), with each seed's
  return paired against the best baseline within the limit on the same episodes (mean and
  95 % interval of the per-episode difference).

``--config PATH`` starts from a saferl config (``saferl train``'s): its env (id, options,
challenge, impairment, ``obs_ema``, ``num_envs``, cost limit), its algorithm and its
``train.steps_per_epoch``; the flags given here override it (``--algo ppo_lagrangian`` keeps
the config's networks, noise and batches; fields an algorithm does not use are ignored, and
``target_kl`` is CPO's trust region but PPO-Lagrangian's KL early stop; ``--no-obs-ema`` drops
the config's averages). Its env is the config's: use another config for another env.
Without ``--config``: the default ``AlgoConfig``, 64 instances, 20k steps per epoch.

Baselines and final policies are evaluated alike: one complete episode per env seed
(``--eval-seed``, default 10000, then 10001, ...) with ``saferl``'s ``run_episodes``; 1024
episodes give a standard error of about 0.7 in the mean episode cost on the wheelchair (512
gave differences of 2 between seed sets, and the wheelchair's seeds 10000-12047 happen to be
easier than 20000-22047: docs/experiments/2026-11-wheelchair-cpo-tuning.md, Step 7). The training curves' episode
statistics come from
the episodes that finished in each batch; in the first epochs of a run those are only the short
ones (all instances start together), so early points of the curves read low.
``--evaluate-only`` re-evaluates the ``seed<S>_final.pt`` of an existing ``--out`` (pass the
run's ``--set``) and rewrites the summary.

Throughput (``--throughput``): env steps/s of collect + update at the default algorithm
settings (``--set`` to change), after one warm-up epoch; pin the cores with ``taskset -c 0,1``
to measure "2 cores". Timings on a shared machine are noisy: report the machine and its load.

Environments: a registered saferl env name (``saferl.registry.ENVS``: factory(num_envs, **opts)).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any


def _overrides(items: list[str]) -> dict[str, Any]:
    """``--set``/``--env-option`` items -> {key: value}, parsed as ``saferl train --set`` does."""
    from saferl.config import parse_override

    return {".".join(k).removeprefix("algo."): v for k, v in map(parse_override, items)}


def env_factory(name: str, obs_ema: Any = None) -> Any:
    """The registered factory, wrapped in ``ObservationEMA(dims, weights)`` when ``obs_ema``
    is given (``--obs-ema``): the trained policy, its evaluation and the baselines' episodes
    are the same env, the policy just sees the averages too."""
    from saferl.registry import ENVS

    factory = ENVS.get(name)
    if not obs_ema:
        return factory
    from saferl.envs.wrappers import ObservationEMA

    return ObservationEMA.wrap_factory(factory, *obs_ema)


def _obs_ema(args: argparse.Namespace) -> Any:
    if not args.obs_ema or args.no_obs_ema:
        return None
    return list(args.obs_ema), list(args.obs_ema_weights or [0.05])


def make_env(name: str, num_envs: int, options: dict[str, Any], obs_ema: Any = None) -> Any:
    return env_factory(name, obs_ema)(num_envs, **options)


def make_algo(algo: str, env: Any, overrides: dict[str, Any], seed: int, cost_limit: float | None):
    from saferl.config import AlgoConfig
    from saferl.registry import ALGORITHMS

    algo_cls = ALGORITHMS.get(algo)
    cfg = AlgoConfig(**overrides)
    return algo_cls.from_env(env, cfg, seed=seed, cost_limit=cost_limit)


def _scalar_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if isinstance(v, (int, float, str, bool)) or v is None}


#: what learn.py uses for the flags that neither the command line nor ``--config`` set
DEFAULTS = {"env": "WheelchairSC-v0", "algo": "cpo", "num_envs": 64, "steps_per_epoch": 20_000}


def from_config(args: argparse.Namespace) -> None:
    """Fill the settings ``--config`` provides into ``args`` where no flag set them (None)."""
    from saferl.config import ConfigError, load_config
    from saferl.registry import ENVS
    from saferl.training.evaluation.models import env_options_from_config, limit_for

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        raise SystemExit(f"learn.py: --config {args.config}: {exc}") from None
    if args.env is None:
        args.env = cfg.env.id
    elif args.env != cfg.env.id:
        raise SystemExit(
            f"learn.py: --env {args.env} differs from --config {args.config}'s env.id "
            f"{cfg.env.id}; its env options and averages are that env's (use another config)"
        )
    if args.algo is None:
        args.algo = cfg.algo.name
    if args.num_envs is None:
        args.num_envs = cfg.env.num_envs
    if args.steps_per_epoch is None:
        args.steps_per_epoch = cfg.train.steps_per_epoch
    if cfg.env.obs_ema is not None:
        if args.obs_ema is None:
            args.obs_ema = list(cfg.env.obs_ema.dims)
        if args.obs_ema_weights is None:
            args.obs_ema_weights = list(cfg.env.obs_ema.weights)
    factory = ENVS.get(args.env)
    args.config_env_options = env_options_from_config(cfg, factory)
    if args.cost_limit is None:  # the trainer's rule: env.cost_limit, else the env's (strict)
        args.cost_limit = limit_for(cfg, factory, args.config_env_options)
    args.config_algo = cfg.algo.model_dump(exclude={"name"}, exclude_unset=True)


def run_seed(args: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """Train one seed; returns its rows (also appended to a per-seed JSONL as it goes)."""
    import torch

    if args["threads"]:
        torch.set_num_threads(args["threads"])
    from saferl.algos.learn import learn

    env = make_env(args["env"], args["num_envs"], args["env_options"], args["obs_ema"])
    algo = make_algo(args["algo"], env, args["overrides"], seed, args["cost_limit"])
    out = Path(args["out"])
    (out / f"seed{seed}_final_eval.json").unlink(missing_ok=True)  # an earlier run's
    log = (out / f"seed{seed}.jsonl").open("w")
    t0 = time.perf_counter()

    def callback(row: dict[str, Any]) -> bool:
        row = _scalar_row({"seed": seed, **row})
        log.write(json.dumps(row) + "\n")
        log.flush()
        if args["verbose"]:
            print(
                f"seed {seed} epoch {row['epoch']:4d} steps {row['env_steps']:9d} "
                f"ret {row.get('ep_return', math.nan):8.2f} cost {row.get('ep_cost', math.nan):7.2f}"
                f" (d={row['cost_limit']:.1f}) {row.get('case', '')} k={row.get('backtrack_k', '')}"
                f" kl={row.get('kl', math.nan):.4f} {row['steps_per_s']:.0f} steps/s "
                f"[{time.perf_counter() - t0:.0f}s]",
                flush=True,
            )
        return True

    rows = learn(env, algo, args["steps"], args["steps_per_epoch"], callback=callback, seed=seed)
    log.close()
    torch.save(algo.state_dict(), out / f"seed{seed}_final.pt")
    if args["final_episodes"]:
        write_final_eval(args, algo, seed)
    return [_scalar_row({"seed": seed, **r}) for r in rows]


def write_final_eval(args: dict[str, Any], algo: Any, seed: int) -> None:
    """``seed{seed}_final_eval.json``: the policy on the evaluation episodes."""
    final = evaluate_final_policy(
        args["env"],
        args["env_options"],
        algo,
        args["final_episodes"],
        args["obs_ema"],
        args["eval_seed"],
    )
    (Path(args["out"]) / f"seed{seed}_final_eval.json").write_text(json.dumps(final, indent=1))


def evaluate_saved(args: dict[str, Any], seed: int) -> None:
    """Evaluate ``seed{seed}_final.pt`` of an earlier run (``--evaluate-only``)."""
    import torch

    if args["threads"]:
        torch.set_num_threads(args["threads"])
    out = Path(args["out"])
    env = make_env(args["env"], 1, args["env_options"], args["obs_ema"])
    algo = make_algo(args["algo"], env, args["overrides"], seed, args["cost_limit"])
    algo.load_state_dict(torch.load(out / f"seed{seed}_final.pt", weights_only=True))
    write_final_eval(args, algo, seed)


EVAL_SEED = 10_000  # default env seeds of the evaluation episodes: EVAL_SEED, EVAL_SEED + 1, ...


def _evaluate(
    policy: Any,
    env_name: str,
    options: dict[str, Any],
    episodes: int,
    deterministic: bool = True,
    obs_ema: Any = None,
    seed0: int = EVAL_SEED,
) -> dict[str, Any]:
    """Mean return, cost and length of ``policy`` on one complete episode per env seed
    (``seed0``, ``seed0 + 1``, ...) with ``saferl``'s ``run_episodes``, and the per-episode
    returns (``returns``, in seed order) for paired comparisons."""
    import numpy as np

    from saferl.training.evaluation import run_episodes

    table = run_episodes(
        policy,
        env_factory(env_name, obs_ema),
        range(seed0, seed0 + episodes),
        num_envs=min(episodes, 256),
        env_options=options,
        deterministic=deterministic,
    )
    return {
        "episodes": len(table),
        "ep_return": float(np.mean(table["return"])),
        "ep_cost": float(np.mean(table["cost"])),
        "ep_length": float(np.mean(table["length"])),
        "first_seed": seed0,
        "returns": [float(x) for x in table["return"]],
    }


def evaluate_baselines(
    env_name: str, options: dict[str, Any], episodes: int, seed0: int = EVAL_SEED
) -> dict[str, Any]:
    """Mean episode return and cost of the env's scripted baselines (``SCRIPTED_POLICIES``).

    Counting the first ``episodes`` episodes to *finish* in a batch of instances started
    together would keep the short ones (quick successes) and drop the long ones."""
    from saferl.registry import ENVS
    from saferl.training.evaluation import ScriptedAdapter
    from saferl.training.evaluation.models import scripted_policies

    found = scripted_policies(ENVS.get(env_name), options)
    return {
        name: _evaluate(ScriptedAdapter(make, name), env_name, options, episodes, seed0=seed0)
        for name, make in found.items()
    }


def evaluate_final_policy(
    env_name: str,
    options: dict[str, Any],
    algo: Any,
    episodes: int,
    obs_ema: Any = None,
    seed0: int = EVAL_SEED,
) -> dict[str, Any]:
    """The trained policy on the baselines' evaluation episodes: mean action and sampled."""
    from saferl.training.evaluation import ActorPolicy

    policy = ActorPolicy.from_algorithm(algo)
    return {
        mode: _evaluate(
            policy, env_name, options, episodes, mode == "deterministic", obs_ema, seed0
        )
        for mode in ("deterministic", "sampled")
    }


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    keys: list[str] = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def summarise(
    rows: list[dict[str, Any]], limit: float, final_evals: dict[str, Any] | None = None
) -> dict[str, Any]:
    import numpy as np

    seeds = sorted({r["seed"] for r in rows})
    per_seed = {}
    for s in seeds:
        rs = [r for r in rows if r["seed"] == s]
        last = rs[-10:]
        cost = float(np.nanmean([r["ep_cost"] for r in last]))
        ret = float(np.nanmean([r["ep_return"] for r in last]))
        info = {
            "epochs": len(rs),
            "env_steps": rs[-1]["env_steps"],
            "last10_ep_cost": cost,
            "last10_ep_return": ret,
            "cost_over_limit": cost / limit if limit > 0 else math.nan,
            "within_20pct_of_limit": abs(cost - limit) <= 0.2 * limit,
            "at_most_10pct_over_limit": cost <= 1.1 * limit,
            "median_steps_per_s": float(np.median([r["steps_per_s"] for r in rs[1:] or rs])),
        }
        if "case" in rs[0]:
            info["cases_all"] = dict(Counter(r["case"] for r in rs))
            near = next(
                (i for i, r in enumerate(rs) if abs(r["ep_cost"] - limit) <= 0.2 * limit), None
            )
            if near is not None:
                info["cases_after_first_near_limit"] = dict(Counter(r["case"] for r in rs[near:]))
                info["first_near_limit_epoch"] = near + 1
            info["line_search_failures"] = sum(1 for r in rs if not r.get("accepted", True))
        per_seed[str(s)] = info
    pooled = {
        "last10_ep_cost_mean": float(np.mean([v["last10_ep_cost"] for v in per_seed.values()])),
        "last10_ep_return_mean": float(np.mean([v["last10_ep_return"] for v in per_seed.values()])),
    }
    evals = {s: final_evals[s] for s in per_seed if s in (final_evals or {})}
    for s, ev in evals.items():
        per_seed[s]["final_eval"] = {mode: _means(r) for mode, r in ev.items()}
    if evals and len(evals) == len(per_seed):
        for mode in ("deterministic", "sampled"):
            for key in ("ep_cost", "ep_return"):
                values = [ev[mode][key] for ev in evals.values()]
                pooled[f"final_{mode}_{key}_mean"] = float(np.mean(values))
    return {"cost_limit": limit, "per_seed": per_seed, "pooled": pooled}


def _means(result: dict[str, Any]) -> dict[str, Any]:
    """An evaluation result without its per-episode lists (for the summary)."""
    return {k: v for k, v in result.items() if k != "returns"}


def paired_difference(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float] | None:
    """Mean and 95 % interval of the per-episode return difference a - b, when both were
    evaluated on the same episodes (same first seed and count); else None."""
    import numpy as np

    ra, rb = a.get("returns"), b.get("returns")
    if not ra or not rb or len(ra) != len(rb) or a.get("first_seed") != b.get("first_seed"):
        return None
    d = np.asarray(ra) - np.asarray(rb)
    half = 1.96 * float(d.std(ddof=1)) / math.sqrt(len(d)) if len(d) > 1 else math.nan
    mean = float(d.mean())
    return {"mean": mean, "ci95_low": mean - half, "ci95_high": mean + half}


def targets(
    summary: dict[str, Any],
    baselines: dict[str, Any],
    limit: float,
    final_evals: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The issue's learning targets, on the final policies' evaluation episodes (sampled
    actions, as in training) when they exist, else on the last 10 training epochs; with the
    per-episode returns, each seed's return paired against the best feasible baseline."""
    pooled = summary["pooled"]
    if "final_sampled_ep_cost_mean" in pooled:
        source = "final evaluation, sampled actions"
        cost, ret = pooled["final_sampled_ep_cost_mean"], pooled["final_sampled_ep_return_mean"]
    else:
        source = "last 10 training epochs"
        cost, ret = pooled["last10_ep_cost_mean"], pooled["last10_ep_return_mean"]
    feasible = {k: v for k, v in baselines.items() if v["ep_cost"] <= limit}
    best = max(feasible, key=lambda k: feasible[k]["ep_return"]) if feasible else None
    res: dict[str, Any] = {
        "measured_on": source,
        "ep_cost": cost,
        "ep_return": ret,
        "cost_at_most_10pct_over_limit": cost <= 1.1 * limit,
        "best_feasible_baseline": best,
    }
    if best is not None:
        res["best_feasible_baseline_return"] = feasible[best]["ep_return"]
        res["return_above_best_feasible_baseline"] = ret > feasible[best]["ep_return"]
        evals = {k: v for k, v in (final_evals or {}).items() if k in summary["per_seed"]}
        paired = {
            seed: diff
            for seed, ev in sorted(evals.items())
            if "sampled" in ev and (diff := paired_difference(ev["sampled"], feasible[best]))
        }
        if paired:
            res["sampled_return_minus_best_baseline_per_seed"] = paired
            res["every_seed_significantly_above_best_baseline"] = all(
                d["ci95_low"] > 0 for d in paired.values()
            )
    return res


def plot(
    rows: list[dict[str, Any]], limit: float, baselines: dict[str, Any], out: Path, title: str
):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    seeds = sorted({r["seed"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for key, ax in zip(("ep_return", "ep_cost"), axes, strict=True):
        curves = []
        for s in seeds:
            rs = [r for r in rows if r["seed"] == s]
            x = np.array([r["env_steps"] for r in rs])
            y = np.array([r[key] for r in rs], float)
            ax.plot(x, y, lw=0.8, alpha=0.4)
            curves.append((x, y))
        n = min(len(c[0]) for c in curves)
        mean = np.nanmean(np.stack([c[1][:n] for c in curves]), axis=0)
        ax.plot(curves[0][0][:n], mean, color="k", lw=2, label=f"mean of {len(seeds)} seeds")
        if key == "ep_cost":
            ax.axhline(limit, color="r", ls="--", label=f"limit d={limit:g}")
            ax.axhspan(0.8 * limit, 1.2 * limit, color="r", alpha=0.08, label="±20 %")
            if any(r.get("cost_target", limit) != limit for r in rows):  # cost_target_gain
                t = np.array(
                    [[r["cost_target"] for r in rows if r["seed"] == s][:n] for s in seeds]
                )
                ax.plot(curves[0][0][:n], t.mean(0), "r:", lw=1.2, label="CPO's target d - I")
        feasible = {k: v for k, v in baselines.items() if v["ep_cost"] <= limit}
        if feasible:
            name, best = max(feasible.items(), key=lambda kv: kv[1]["ep_return"])
            ax.axhline(best[key], color="g", ls=":", label=f"best feasible baseline ({name})")
        ax.set_xlabel("env steps")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)
    plt.close(fig)

    if "case" in rows[0]:
        from saferl.algos.math import CASES

        names = list(CASES)
        fig, axes = plt.subplots(1, 2, figsize=(12, 4))
        counts = Counter(r["case"] for r in rows)
        axes[0].bar(names, [counts.get(n, 0) for n in names])
        axes[0].set_title("CPO optimisation cases (all seeds, all epochs)")
        n_epochs = max(r["epoch"] for r in rows)
        bins = np.linspace(0, n_epochs, 11)
        bottom = np.zeros(10)
        for name in names:
            h, _ = np.histogram([r["epoch"] for r in rows if r["case"] == name], bins=bins)
            axes[1].bar(np.arange(10), h, bottom=bottom, label=name)
            bottom += h
        axes[1].set_xlabel("tenth of training")
        axes[1].set_title("cases over training")
        axes[1].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "cases.png", dpi=120)
        plt.close(fig)


def throughput(args: argparse.Namespace, overrides: dict[str, Any], env_options) -> dict:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from saferl.algos.buffer import RolloutCollector

    env = make_env(args.env, args.num_envs, env_options, _obs_ema(args))
    algo = make_algo(args.algo, env, overrides, 0, args.cost_limit)
    col = RolloutCollector(env, algo, max(1, args.steps_per_epoch // env.num_envs), seed=0)
    times = []
    for epoch in range(args.epochs + 1):
        t0 = time.perf_counter()
        batch = col.collect()
        t1 = time.perf_counter()
        d = algo.update(batch)
        t2 = time.perf_counter()
        if epoch > 0:  # the first epoch warms up (map library, allocator, threads)
            times.append(
                (batch.num_steps, t1 - t0, t2 - t1, d.get("time_actor"), d.get("time_critic"))
            )
        print(
            f"epoch {epoch}: {batch.num_steps} steps collect {t1 - t0:.3f}s update {t2 - t1:.3f}s "
            f"(actor {d.get('time_actor', 0):.3f} critic {d.get('time_critic', 0):.3f}) "
            f"-> {batch.num_steps / (t2 - t0):.0f} steps/s",
            flush=True,
        )
    steps = sum(t[0] for t in times)
    wall = sum(t[1] + t[2] for t in times)
    res = {
        "env": args.env,
        "algo": args.algo,
        "num_envs": args.num_envs,
        "steps_per_epoch": args.steps_per_epoch,
        "torch_threads": torch.get_num_threads(),
        "overrides": overrides,
        "steps_per_s": steps / wall,
        "collect_s_per_epoch": sum(t[1] for t in times) / len(times),
        "update_s_per_epoch": sum(t[2] for t in times) / len(times),
        "actor_s_per_epoch": sum(t[3] or 0 for t in times) / len(times),
        "critic_s_per_epoch": sum(t[4] or 0 for t in times) / len(times),
        "cpu_affinity": sorted(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "loadavg": os.getloadavg(),
    }
    print(json.dumps(res, indent=1))
    return res


def main(argv: list[str] | None = None) -> None:
    from saferl.registry import ALGORITHMS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--config",
        default=None,
        help="start from this saferl config's env, algo and steps per epoch (flags override)",
    )
    p.add_argument("--env", default=None, help="default: the config's, else WheelchairSC-v0")
    p.add_argument("--algo", choices=ALGORITHMS.names(), default=None, help="default: cpo")
    p.add_argument("--steps", type=float, default=2e6, help="env steps per seed")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument(
        "--eval-seed",
        type=int,
        default=EVAL_SEED,
        help="env seed of the first evaluation episode (baselines and final policies)",
    )
    p.add_argument("--num-envs", type=int, default=None, help="default: the config's, else 64")
    p.add_argument(
        "--steps-per-epoch", type=int, default=None, help="default: the config's, else 20000"
    )
    p.add_argument("--cost-limit", type=float, default=None, help="default: the env's limit")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="AlgoConfig field=value (repeatable), e.g. --set critic_epochs=5",
    )
    p.add_argument("--env-option", action="append", default=[], help="env option key=value")
    p.add_argument(
        "--obs-ema",
        type=int,
        nargs="+",
        default=None,
        metavar="DIM",
        help="append moving averages of these observation dims (env.obs_ema)",
    )
    p.add_argument(
        "--obs-ema-weights",
        type=float,
        nargs="+",
        default=None,
        metavar="W",
        help="per-step weights of the averages (default: the config's, else 0.05: 20 steps)",
    )
    p.add_argument(
        "--no-obs-ema", action="store_true", help="no averages, even if the config has them"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--jobs", type=int, default=1, help="seeds trained in parallel processes")
    p.add_argument("--out", default=None)
    p.add_argument(
        "--baseline-episodes", type=int, default=1024, help="evaluation episodes per baseline"
    )
    p.add_argument(
        "--final-episodes",
        type=int,
        default=1024,
        help="evaluation episodes of each seed's final policy (0: none)",
    )
    p.add_argument(
        "--evaluate-only",
        action="store_true",
        help="evaluate the seed*_final.pt already in --out (with this --set) and summarise",
    )
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--baselines-only", action="store_true")
    p.add_argument("--throughput", action="store_true")
    p.add_argument("--epochs", type=int, default=5, help="timed epochs for --throughput")
    p.add_argument("--quiet", action="store_true")
    p.add_argument(
        "--summarize-only",
        action="store_true",
        help="rebuild curves.csv/png and summary.json from the seed*.jsonl already in --out",
    )
    args = p.parse_args(argv)
    if args.eval_seed < 0:
        p.error("--eval-seed must be >= 0")
    args.config_env_options, args.config_algo = {}, {}
    if args.config:
        from_config(args)
    for name, default in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)

    overrides = {**args.config_algo, **_overrides(args.overrides)}
    env_options = {**args.config_env_options, **_overrides(args.env_option)}
    if args.throughput:
        res = throughput(args, overrides, env_options)
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            (Path(args.out) / "throughput.json").write_text(json.dumps(res, indent=1))
        return

    out = Path(args.out or f"benchmarks/out/{args.env}_{args.algo}")
    out.mkdir(parents=True, exist_ok=True)
    env = make_env(args.env, 1, env_options)
    limit = args.cost_limit if args.cost_limit is not None else env.constraints.get_limit()
    baselines = {}
    if not args.no_baselines:
        baselines = evaluate_baselines(
            args.env, env_options, args.baseline_episodes, args.eval_seed
        )
        (out / "baselines.json").write_text(json.dumps(baselines, indent=1))
        print("scripted baselines:", json.dumps({k: _means(v) for k, v in baselines.items()}))
    if args.baselines_only:
        return
    run_args = {
        "env": args.env,
        "algo": args.algo,
        "num_envs": args.num_envs,
        "steps": int(args.steps),
        "steps_per_epoch": args.steps_per_epoch,
        "cost_limit": args.cost_limit,
        "overrides": overrides,
        "env_options": env_options,
        "threads": args.threads,
        "out": str(out),
        "verbose": not args.quiet,
        "final_episodes": args.final_episodes,
        "obs_ema": _obs_ema(args),
        "eval_seed": args.eval_seed,
    }
    rows: list[dict[str, Any]] = []
    if args.evaluate_only:
        for s in args.seeds:
            evaluate_saved(run_args, s)
    if args.summarize_only or args.evaluate_only:
        for path in sorted(out.glob("seed*.jsonl")):
            rows.extend(json.loads(line) for line in path.read_text().splitlines() if line)
        if (out / "baselines.json").exists() and not baselines:
            baselines = json.loads((out / "baselines.json").read_text())
    elif args.jobs > 1:
        import multiprocessing as mp

        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as ex:
            for r in ex.map(run_seed, [run_args] * len(args.seeds), args.seeds):
                rows.extend(r)
    else:
        for s in args.seeds:
            rows.extend(run_seed(run_args, s))
    write_csv(rows, out / "curves.csv")
    final_evals = {
        path.name.removeprefix("seed").removesuffix("_final_eval.json"): json.loads(
            path.read_text()
        )
        for path in out.glob("seed*_final_eval.json")
    }
    summary = summarise(rows, limit, final_evals)
    summary["targets"] = targets(summary, baselines, limit, final_evals)
    summary.update(
        {
            "command": " ".join([sys.executable, *sys.argv]),
            "env": args.env,
            "algo": args.algo,
            "env_options": env_options,
            "obs_ema": _obs_ema(args),
            "overrides": overrides,
            "num_envs": args.num_envs,
            "steps_per_epoch": args.steps_per_epoch,
            "eval_seed": args.eval_seed,
            "baselines": {k: _means(v) for k, v in baselines.items()},
        }
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    plot(rows, limit, baselines, out, f"{args.algo} on {args.env} ({len(args.seeds)} seeds)")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
