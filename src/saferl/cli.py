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
from saferl.log import LEVELS, setup_logging
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


def _split(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [p.strip() for p in text.split(",") if p.strip()]


@app.command()
def tune(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config.")] = None,
) -> None:
    """Hyperparameter search with Optuna (not available yet)."""
    _not_available("tune")


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
    max_steps: Annotated[int, typer.Option("--max-steps", help="Frames to record.")] = 300,
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
    """Console-script entry point."""
    try:
        app()
    except (ConfigError, RegistryError, UserError) as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
