"""The ``saferl`` command line.

User errors (an invalid config, an unknown name, an unreadable path) print one line on stderr and
exit with status 2; no traceback. Subcommands whose feature is not finished say so and exit 2.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from saferl import __version__
from saferl.config import ConfigError, default_config_path, load_config
from saferl.log import LEVELS, console_level, setup_logging
from saferl.registry import ENVS, RegistryError

logger = logging.getLogger(__name__)

app = typer.Typer(
    name="saferl",
    help=(
        "Safe reinforcement learning for human-robot shared control: constrained policy "
        "optimisation (CPO, PPO-Lagrangian) on assistive-robot environments."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
envs_app = typer.Typer(
    help="List registered environments with their constraints, or render an episode.",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(envs_app, name="envs")


class UserError(Exception):
    """An error caused by the user's input: printed as one line, exit status 2."""


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _not_available(what: str) -> NoReturn:
    typer.echo(f"saferl {what}: not available yet", err=True)
    raise typer.Exit(2)


def _optional_attr(module: str, attr: str):
    """The attribute if its module is part of this install, else None (feature not built)."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module or module.startswith(exc.name + ".")):
            return None
        raise
    return getattr(mod, attr, None)


@app.callback()
def _main(
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level",
            help=f"Console log level: {', '.join(LEVELS)}.",
            case_sensitive=False,
        ),
    ] = "INFO",
) -> None:
    try:
        setup_logging(log_level)
    except ValueError as exc:
        _fail(str(exc))


@app.command()
def train(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="YAML config file (default: the embedded default, CPO on WheelchairSC-v0; "
            "see src/saferl/configs/default.yaml).",
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-s",
            help="Override a field, e.g. --set algo.target_kl=0.02 (repeatable).",
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Run name: the run directory is RUNS_DIR/NAME.")
    ] = None,
    runs_dir: Annotated[
        Path | None, typer.Option("--runs-dir", help="Parent directory of runs (default: runs).")
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(help="Continue the run in this directory exactly where it stopped."),
    ] = None,
    init_from: Annotated[
        Path | None,
        typer.Option("--init-from", help="Start from the weights of this checkpoint file."),
    ] = None,
    use_mlflow: Annotated[
        bool,
        typer.Option("--use-mlflow", help="Also track in MLflow (pip install 'saferl[mlflow]')."),
    ] = False,
    use_wandb: Annotated[
        bool,
        typer.Option(
            "--use-wandb",
            help="Also track in Weights & Biases, offline without an API key "
            "(pip install 'saferl[wandb]').",
        ),
    ] = False,
    use_tensorboard: Annotated[
        bool,
        typer.Option(
            "--use-tensorboard",
            help="Also write TensorBoard event files (pip install 'saferl[tensorboard]').",
        ),
    ] = False,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri",
            help="MLflow tracking URI (default: sqlite:///RUNS_DIR/mlflow.db); needs MLflow.",
        ),
    ] = None,
    nproc: Annotated[
        int | None,
        typer.Option(
            "--nproc",
            min=1,
            help="Train on N processes on this machine (torchrun --standalone, one rank each; "
            "env.num_envs is split over them). See docs/distributed.md.",
        ),
    ] = None,
    max_restarts: Annotated[
        int,
        typer.Option(
            "--max-restarts",
            min=0,
            help="With --nproc: after a process fails, restart them all up to K times; they "
            "resume from the last checkpoint.",
        ),
    ] = 0,
) -> None:
    """Train a policy (default: CPO on WheelchairSC-v0, files under runs/)."""
    overrides = list(set_ or [])
    if resume is None and config is None:
        config = default_config_path()
    added = [
        b
        for b, on in (
            ("mlflow", use_mlflow),
            ("wandb", use_wandb),
            ("tensorboard", use_tensorboard),
        )
        if on
    ]
    if added or tracking_uri is not None:
        overrides = _tracking_overrides(
            resume / "config.yaml" if resume is not None else config, overrides, added, tracking_uri
        )
    if resume is None:
        # Validate before anything else so a bad value fails fast with one line.
        try:
            checked = list(overrides)
            if name is not None:
                checked.append(f"train.name={name}")
            if runs_dir is not None:
                checked.append(f"train.runs_dir={runs_dir}")
            checked_config = load_config(config, checked)
            from saferl.training.tracking.base import check_backends

            check_backends(checked_config.tracking.backends)
        except ConfigError as exc:
            _fail(str(exc))
    if nproc is not None or max_restarts:
        _launch_distributed(
            config, overrides, name, runs_dir, resume, init_from, nproc, max_restarts
        )
    run_train = _optional_attr("saferl.training.trainer", "run_train")
    if run_train is None:
        _not_available("train")
    try:
        code = run_train(
            str(config) if config is not None else None,
            overrides,
            name=name,
            runs_dir=str(runs_dir) if runs_dir is not None else None,
            resume=str(resume) if resume is not None else None,
            init_from=str(init_from) if init_from is not None else None,
            command=["saferl", *sys.argv[1:]],
        )
    except (ConfigError, RegistryError, UserError, FileNotFoundError) as exc:
        _fail(str(exc))
    raise typer.Exit(int(code or 0))


def _launch_distributed(
    config: Path | None,
    overrides: list[str],
    name: str | None,
    runs_dir: Path | None,
    resume: Path | None,
    init_from: Path | None,
    nproc: int | None,
    max_restarts: int,
) -> NoReturn:
    """``saferl train --nproc N``: the same command on N processes under torchrun, then exit
    with its status. A new run gets its name here, so restarted workers find its directory."""
    from datetime import datetime

    from saferl.training import distributed

    if nproc is None:
        _fail("--max-restarts needs --nproc N (or give --max-restarts to torchrun itself)")
    if distributed.launched_by_torchrun():
        _fail("--nproc starts torchrun; under torchrun leave it out")
    try:
        cfg = load_config(resume / "config.yaml" if resume is not None else config, overrides)
    except ConfigError as exc:
        _fail(str(exc))
    if cfg.train.device.startswith("cuda"):
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if nproc > gpus:
            _fail(f"--nproc {nproc}: train.device is {cfg.train.device} but {gpus} GPU(s) here")
    elif nproc > distributed.usable_cores():
        typer.echo(
            f"warning: --nproc {nproc} is more than the {distributed.usable_cores()} CPU "
            "core(s) here; the processes will share them (same results, slower)",
            err=True,
        )
    try:
        distributed.World(size=nproc).local_envs(cfg.env.num_envs)  # splits evenly
    except ConfigError as exc:
        _fail(str(exc))
    if resume is not None:
        from saferl.training.checkpoint import RunManifest

        saved = RunManifest(resume / "manifest.json").data.get("distributed") or {}
        if int(saved.get("world_size", 1)) != nproc:
            _fail(
                f"--nproc {nproc}: {resume} was trained on {saved.get('world_size', 1)} "
                "process(es); resume it with as many (each one's env state is in its checkpoint)"
            )
    args = ["--log-level", console_level(), "train"]
    if resume is not None:
        args += ["--resume", str(resume)]
    else:
        if name is None and cfg.train.name is None:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            name = f"{cfg.env.id}_{cfg.algo.name}_{stamp}"
        args += ["--config", str(config)]
        if name is not None:
            args += ["--name", name]
        if runs_dir is not None:
            args += ["--runs-dir", str(runs_dir)]
        if init_from is not None:
            args += ["--init-from", str(init_from)]
    for item in overrides:
        args += ["--set", item]
    code = distributed.launch(args, nproc_per_node=nproc, max_restarts=max_restarts)
    raise typer.Exit(code)


def _tracking_overrides(
    config: Path | None, overrides: list[str], added: list[str], tracking_uri: str | None
) -> list[str]:
    """``--use-*`` and ``--tracking-uri`` as ``--set`` overrides: the backends are appended to the
    config's own ``tracking.backends`` (the run's, when resuming)."""
    try:
        current = load_config(config, overrides).tracking.backends
    except ConfigError as exc:
        _fail(str(exc))
    out = list(overrides)
    backends = [*current, *(b for b in added if b not in current)]
    if backends != current:
        out.append(f"tracking.backends=[{', '.join(backends)}]")
    if tracking_uri is not None:
        if "mlflow" not in backends:
            _fail("--tracking-uri is the MLflow tracking URI; add --use-mlflow")
        out.append(f"tracking.mlflow_uri={tracking_uri}")
    return out


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="Run directory to evaluate (runs/NAME).")],
    checkpoint: Annotated[
        str,
        typer.Option(help="best (falls back to last), last, or a checkpoint file path."),
    ] = "best",
    protocols: Annotated[
        str | None,
        typer.Option(
            help="Comma list of standard, stochastic, safety, human_factors, or all "
            "(default: eval.protocols of the run's config)."
        ),
    ] = None,
    episodes: Annotated[
        int | None,
        typer.Option(min=1, help="Episodes per protocol condition (default: eval.episodes)."),
    ] = None,
    report: Annotated[
        bool, typer.Option("--report/--no-report", help="Write Markdown and HTML reports.")
    ] = True,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Override eval.* or env.* fields (repeatable)."),
    ] = None,
    track: Annotated[
        bool,
        typer.Option(
            "--track/--no-track",
            help="Also send the evaluation to the run's MLflow run (when it was tracked there).",
        ),
    ] = True,
) -> None:
    """Evaluate a trained policy: results.json, per-episode CSV and reports in RUN_DIR/eval/."""
    from saferl.training.evaluation import EvaluationError, run_evaluate

    try:
        code = run_evaluate(
            str(run_dir),
            checkpoint=checkpoint,
            protocols=_split(protocols),
            episodes=episodes,
            report=report,
            overrides=list(set_ or []),
            track=track,
        )
    except (EvaluationError, ConfigError, RegistryError) as exc:
        _fail(str(exc))
    raise typer.Exit(int(code or 0))


@app.command()
def compare(
    models: Annotated[
        list[str],
        typer.Argument(help="Run directories and/or scripted baselines as baselines:NAME."),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output directory (default: compare-<time> beside the first run, "
            "or runs/compare-<time> for baselines only)."
        ),
    ] = None,
    protocols: Annotated[str | None, typer.Option(help="Comma list of protocols, or all.")] = None,
    episodes: Annotated[
        int | None, typer.Option(min=1, help="Episodes per model and condition.")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=2**32 - 1,
            help="Env seed of the first episode, the same for every model (default: the first "
            "run's eval.seed).",
        ),
    ] = None,
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            help="Baselines only: the environment (with its own defaults) instead of the "
            "default config's.",
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            "-s",
            help="Baselines only: an env.* or eval.* field, e.g. env.impairment=severe.",
        ),
    ] = None,
) -> None:
    """Compare trained policies and baselines: tests, effect sizes and a feasibility-first ranking."""
    from saferl.training.evaluation import EvaluationError, run_compare

    try:
        code = run_compare(
            list(models),
            out=str(out) if out is not None else None,
            protocols=_split(protocols),
            episodes=episodes,
            seed=seed,
            env_id=env,
            overrides=list(set_ or []),
        )
    except (EvaluationError, ConfigError, RegistryError) as exc:
        _fail(str(exc))
    raise typer.Exit(int(code or 0))


@app.command()
def runs(
    directory: Annotated[
        Path, typer.Argument(help="A run directory or a folder of them (default: runs).")
    ] = Path("runs"),
    mlflow: Annotated[
        str | None,
        typer.Option("--mlflow", help="List the saferl runs of this MLflow tracking URI instead."),
    ] = None,
    experiment: Annotated[
        str | None, typer.Option(help="With --mlflow: only this experiment.")
    ] = None,
    filter_: Annotated[
        list[str] | None,
        typer.Option("--filter", help="COLUMN=VALUE or COLUMN!=VALUE, e.g. env=WheelchairSC-v0."),
    ] = None,
    sort: Annotated[
        str | None, typer.Option(help="Column to sort by, high to low (e.g. best_return).")
    ] = None,
    ascending: Annotated[bool, typer.Option("--ascending", help="Sort low to high.")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Show at most N runs.")] = None,
    format_: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
) -> None:
    """List runs: env, algorithm, seed, steps, final and best return and cost, status."""
    from saferl.training.tracking.runs import (
        filter_runs,
        format_runs,
        runs_from_dirs,
        runs_from_mlflow,
        sort_runs,
    )

    try:
        if experiment is not None and mlflow is None:
            raise UserError("--experiment needs --mlflow")
        if mlflow is not None:
            rows = runs_from_mlflow(mlflow, experiment)
        else:
            rows = runs_from_dirs(directory)
        rows = sort_runs(filter_runs(rows, filter_ or []), sort, ascending=ascending)
        typer.echo(format_runs(rows[:limit] if limit else rows, format_))
    except (ConfigError, UserError) as exc:
        _fail(str(exc))


@app.command("export")
def export_(
    run_dir: Annotated[Path, typer.Argument(help="Run directory to export (runs/NAME).")],
    format_: Annotated[
        str, typer.Option("--format", "-f", help="onnx (needs the deploy extra) or torchscript.")
    ] = "onnx",
    checkpoint: Annotated[
        str, typer.Option(help="best (falls back to last), last, or a checkpoint file path.")
    ] = "best",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Output file (default RUN_DIR/export/policy.onnx or policy.pt)."
        ),
    ] = None,
    precision: Annotated[
        str,
        typer.Option(
            help="float64 (actions equal saferl evaluate's) or float32 (runtimes without doubles)."
        ),
    ] = "float64",
) -> None:
    """Export the deterministic policy (normaliser, clipping, obs_ema state) and a JSON sidecar."""
    from saferl.deploy import DeployError, export_run

    try:
        path, side = export_run(
            str(run_dir), format_, out, checkpoint=checkpoint, precision=precision
        )
    except DeployError as exc:
        _fail(str(exc))
    typer.echo(f"wrote {path} and {side}")


@app.command()
def serve(
    model: Annotated[
        Path, typer.Argument(help="Run directory (runs/NAME) or exported file (.onnx, .pt).")
    ],
    host: Annotated[
        str, typer.Option(help="Address to bind (no authentication: keep it on loopback).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port; 0 picks a free one (printed).")] = 8000,
    checkpoint: Annotated[
        str, typer.Option(help="For a run directory: best, last or a checkpoint file.")
    ] = "best",
    max_batch: Annotated[
        int, typer.Option("--max-batch", help="Most observations per request.")
    ] = 1024,
    max_sessions: Annotated[
        int, typer.Option("--max-sessions", help="Per-user sessions kept (obs_ema state).")
    ] = 10_000,
    threads: Annotated[int, typer.Option(help="Intra-op threads of the policy runtime.")] = 1,
) -> None:
    """Serve a policy over HTTP JSON: POST /act, GET /health, /metadata, /metrics."""
    from saferl.deploy import DeployError, load_policy, policy_from_run
    from saferl.deploy import serve as run_server

    for name, value, low in (
        ("--max-batch", max_batch, 1),
        ("--max-sessions", max_sessions, 1),
        ("--threads", threads, 1),
    ):
        if value < low:
            _fail(f"{name}: must be >= {low}, got {value}")
    if not 0 <= port <= 65535:
        _fail(f"--port: expected 0..65535, got {port}")
    try:
        if model.is_dir():
            runtime = policy_from_run(model, checkpoint=checkpoint, threads=threads)
        else:
            runtime = load_policy(model, threads=threads)
        run_server(runtime, host=host, port=port, max_batch=max_batch, max_sessions=max_sessions)
    except DeployError as exc:
        _fail(str(exc))


def _split(text: str | None, option: str = "--protocols") -> list[str] | None:
    """A comma list (None when the option was not given); an empty list is a user error."""
    if text is None:
        return None
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        _fail(
            f"{option}: no name given ({text!r:.40}); give a comma list of standard, "
            "stochastic, safety, human_factors, or all"
        )
    return names


# saferl tune: flag -> hyperopt field (a flag's value goes through the config's validation, and
# an error names the flag).
_TUNE_FLAGS = {
    "--study": "study_name",
    "--storage": "storage",
    "--n-trials": "n_trials",
    "--timeout": "timeout_s",
    "--n-workers": "n_workers",
    "--objective": "objective",
    "--compute": "compute",
    "--sampler": "sampler",
    "--pruner": "pruner",
    "--seed": "seed",
    "--trial-steps": "trial_steps",
}
_TUNE_TEXT_FIELDS = ("study_name", "storage")  # taken as written, never parsed as YAML
_TUNE_RUN_ONLY = (
    "--n-trials",
    "--timeout",
    "--n-workers",
    "--objective",
    "--compute",
    "--sampler",
    "--pruner",
    "--seed",
    "--trial-steps",
)


def _tune_overrides(flags: dict[str, str | None]) -> list[str]:
    from saferl.training.hyperopt.space import format_value

    out = []
    for flag, value in flags.items():
        if value is None:
            continue
        field = _TUNE_FLAGS[flag]
        text = format_value(value) if field in _TUNE_TEXT_FIELDS else value
        out.append(f"hyperopt.{field}={text}")
    return out


def _flag_message(message: str) -> str:
    """A config error about a hyperopt field set by a flag, worded with the flag's name."""
    for flag, field in _TUNE_FLAGS.items():
        prefix = f"hyperopt.{field}:"
        if message.startswith(prefix):
            return flag + message[len(prefix) - 1 :]
    return message


@app.command()
def tune(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Base config YAML of every trial (default: the "
            "embedded default, CPO on WheelchairSC-v0).",
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Override a base-config field (repeatable)."),
    ] = None,
    space: Annotated[
        Path | None,
        typer.Option(
            "--space",
            help="Search-space YAML (default: hyperopt.search_space, else "
            "the algorithm's default space; docs/tuning.md).",
        ),
    ] = None,
    n_trials: Annotated[
        str | None,
        typer.Option(
            "--n-trials",
            help="Finished trials the study should hold (a restarted study runs the missing ones).",
        ),
    ] = None,
    timeout: Annotated[
        str | None, typer.Option("--timeout", help="Seconds after which no new trial starts.")
    ] = None,
    study: Annotated[
        str | None, typer.Option("--study", help="Study name (continued if it exists).")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            help="Journal file path (default RUNS_DIR/studies/NAME/"
            "journal.log), sqlite:///FILE or postgresql://USER@HOST:PORT/DB.",
        ),
    ] = None,
    objective: Annotated[
        str | None,
        typer.Option(
            "--objective",
            help="composite (return with the cost limit as a "
            "constraint) or multi (return, cost, compute).",
        ),
    ] = None,
    compute: Annotated[
        str | None,
        typer.Option("--compute", help="multi's compute objective: wall_time or env_steps."),
    ] = None,
    n_workers: Annotated[
        str | None, typer.Option("--n-workers", help="Local worker processes on the study.")
    ] = None,
    pruner: Annotated[
        str | None,
        typer.Option(
            "--pruner",
            help="auto, median, hyperband, successive_halving, rule (saferl's rule) or none.",
        ),
    ] = None,
    sampler: Annotated[
        str | None,
        typer.Option("--sampler", help="tpe, random, cmaes, nsga2, gp or qmc."),
    ] = None,
    seed: Annotated[
        str | None, typer.Option("--seed", help="Sampler seed (default: train.seed).")
    ] = None,
    trial_steps: Annotated[
        str | None, typer.Option("--trial-steps", help="Env steps per trial.")
    ] = None,
    warm_start: Annotated[
        str | None,
        typer.Option(
            "--warm-start", help="Enqueue the best trials of this other study (once per study)."
        ),
    ] = None,
    warm_start_storage: Annotated[
        str | None,
        typer.Option(
            "--warm-start-storage",
            help="Storage of the --warm-start study (default: this study's).",
        ),
    ] = None,
    runs_dir: Annotated[
        Path | None,
        typer.Option("--runs-dir", help="Parent of studies/ (default: train.runs_dir)."),
    ] = None,
    report: Annotated[
        bool,
        typer.Option("--report", help="Only rebuild the study's files from the storage."),
    ] = False,
    plots: Annotated[
        bool, typer.Option("--plots/--no-plots", help="Write the HTML/PNG plots.")
    ] = True,
) -> None:
    """Hyperparameter search with Optuna: constraint-aware, multi-objective, pruned, resumable."""
    flags = {
        "--study": study,
        "--storage": storage,
        "--n-trials": n_trials,
        "--timeout": timeout,
        "--n-workers": n_workers,
        "--objective": objective,
        "--compute": compute,
        "--sampler": sampler,
        "--pruner": pruner,
        "--seed": seed,
        "--trial-steps": trial_steps,
    }
    if report:
        given = [f for f in _TUNE_RUN_ONLY if flags[f] is not None]
        given += [
            f
            for f, v in (
                ("--space", space),
                ("--warm-start", warm_start),
                ("--warm-start-storage", warm_start_storage),
            )
            if v is not None
        ]
        if given:
            _fail(
                f"{given[0]}: does nothing with --report (it rebuilds the files of a study "
                "from its storage; give --study, --storage, --runs-dir or --config)"
            )
    elif warm_start_storage is not None and warm_start is None:
        _fail("--warm-start-storage: does nothing without --warm-start")
    overrides = [*(set_ or []), *_tune_overrides(flags)]
    if runs_dir is not None:
        overrides.append(f"train.runs_dir={runs_dir}")
    if config is None:
        config = default_config_path()
    try:
        from saferl.training.hyperopt import run_report, run_tune, storage_url
        from saferl.training.hyperopt.study import study_dir

        if report:
            cfg = load_config(config, overrides)
            url = storage_url(cfg.hyperopt, cfg.train.runs_dir)
            code = run_report(
                cfg.hyperopt.study_name,
                url,
                study_dir(cfg.train.runs_dir, cfg.hyperopt.study_name),
                plots=plots,
            )
        else:
            code = run_tune(
                str(config),
                overrides,
                space_path=str(space) if space is not None else None,
                warm_start_study=warm_start,
                warm_start_storage=warm_start_storage,
                plots=plots,
                log_level=console_level(),
            )
    except (ConfigError, RegistryError, UserError) as exc:
        _fail(_flag_message(str(exc)))
    raise typer.Exit(int(code or 0))


@app.command()
def version() -> None:
    """Print the versions of saferl and its main dependencies."""
    import gymnasium
    import numpy
    import torch

    typer.echo(f"saferl {__version__}")
    typer.echo(
        f"python {sys.version.split()[0]}, torch {torch.__version__}, numpy {numpy.__version__}, "
        f"gymnasium {gymnasium.__version__}"
    )


@envs_app.callback()
def envs_list(ctx: typer.Context) -> None:
    """List registered environments, their constraints and per-episode cost limits."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for env_id in ENVS.names():
        try:
            constraints = _env_constraints(env_id)
        except (RegistryError, ValueError, ImportError) as exc:
            console.print(f"[bold]{env_id}[/bold] ({ENVS.source(env_id)}): unavailable: {exc}")
            continue
        console.print(f"[bold]{env_id}[/bold] ({ENVS.source(env_id)})")
        if constraints is None:
            console.print("  constraints: not declared\n")
            continue
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        table.add_column("constraint", no_wrap=True)
        table.add_column("violation when")
        table.add_column("what")
        for c in constraints:
            table.add_row(c.name, c.threshold, c.description)
        console.print(table)
        console.print(f"  {constraints.summary()}", soft_wrap=True)
        console.print()
    console.print(
        "external envs: gym:<Gymnasium id> (cost in info), safety:<module>:<callable> "
        "(Safety-Gymnasium's 6-tuple API); see docs/envs/adapters.md",
        soft_wrap=True,
        markup=False,
    )


def _env_constraints(env_id: str):
    """The ConstraintSet an environment declares (read from its factory, else a 1-env instance)."""
    factory = ENVS.get(env_id)
    constraints = getattr(factory, "constraints", None)
    if constraints is None:
        env = factory(num_envs=1)
        try:
            constraints = getattr(env, "constraints", None)
        finally:
            close = getattr(env, "close", None)
            if callable(close):
                close()
    return constraints


@envs_app.command("render")
def envs_render(
    env_id: Annotated[str, typer.Argument(help="Environment name, e.g. WheelchairSC-v0.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output GIF file.")] = Path(
        "episode.gif"
    ),
    policy: Annotated[
        str | None, typer.Option(help="Scripted policy name (default: random actions).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Episode seed.")] = 0,
    max_steps: Annotated[
        int, typer.Option("--max-steps", min=1, help="Frames to record (>= 1).")
    ] = 300,
) -> None:
    """Record one episode of an environment as a GIF."""
    record = _optional_attr("saferl.envs.rendering", "record_episode")
    if record is None:
        _not_available("envs render")
    if env_id not in ENVS:
        _fail(f"unknown environment '{env_id}'; available: {', '.join(ENVS.names())}")
    try:
        path = record(env_id, out, policy=policy, seed=seed, max_steps=max_steps)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    typer.echo(f"wrote {path}")


def main() -> None:
    """Console-script entry point.

    A command-line usage error (an unknown option, a value out of range) is one line on stderr
    with exit status 2, like every other user error; ``saferl`` alone prints the help.
    """
    try:  # typer >= 0.24 vendors click
        from typer._click import exceptions as click_errors
    except ImportError:  # pragma: no cover (older typer)
        from click import exceptions as click_errors

    try:
        code = app(standalone_mode=False)
    except (ConfigError, RegistryError, UserError) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click_errors.NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click_errors.UsageError as exc:
        where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
        message = " ".join(exc.format_message().split())
        typer.echo(f"error: {where}{message}", err=True)
        sys.exit(exc.exit_code)
    except click_errors.ClickException as exc:
        typer.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
        sys.exit(exc.exit_code)
    except click_errors.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
