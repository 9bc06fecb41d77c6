"""MLflow backend: one MLflow run per saferl run, reopened on resume, never duplicated.

* URI: ``tracking.mlflow_uri``, else ``sqlite:///<runs_dir>/mlflow.db`` (never MLflow's implicit
  default in the working directory); with a local store the experiment's artifacts go to
  ``<runs_dir>/mlartifacts``.
* Experiment: ``tracking.experiment``, else ``saferl-<env id>``.
* Params: the flattened resolved config (``algo.target_kl`` ...). MLflow refuses to change a
  logged param, so a resumed run logs only keys the run lacks; a value changed on resume (e.g.
  ``--set train.total_steps=...``) is recorded as the tag ``saferl.param_changed.<key>``.
* Tags: git commit, seed, saferl/torch versions, algorithm, env, run directory, ``tracking.tags``.
* Metrics: each epoch's numeric columns in one ``log_batch`` (several queued epochs share a
  request, at most 1000 values each), at ``step = env_steps``.
* At the end: ``config.yaml``, ``manifest.json``, ``metrics.csv``, ``checkpoints/best.pt``,
  ``eval/`` when present, the plots, and the final policy as an MLflow pyfunc model
  (``tracking.mlflow_log_model``).

The run id is kept in ``<run_dir>/tracking.json``; a resumed run reopens it (or, if that file was
lost, the experiment's run tagged with this run directory), reads the epochs the run already
holds, delivers the local rows it lacks and skips rows it already has: every epoch exactly once.

Everything here runs on the backend's delivery thread (see ``delivery.py``); HTTP requests are
made without MLflow's own retries (our queue retries) and time out after 10 s unless the
``MLFLOW_HTTP_REQUEST_*`` variables say otherwise.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from saferl.training.tracking.base import (
    MetricsRow,
    TrackerContext,
    flatten,
    numeric_metrics,
    read_tracking_file,
    require_package,
    update_tracking_file,
)

logger = logging.getLogger(__name__)

__all__ = ["MLflowTracker", "default_mlflow_uri", "log_evaluation"]

MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limit
MAX_PARAMS_PER_BATCH = 100
MAX_PARAM_LENGTH = 6000
RUN_DIR_TAG = "saferl.run_dir"


def default_mlflow_uri(runs_dir: str | Path) -> str:
    """``sqlite:///<runs_dir>/mlflow.db`` (absolute path)."""
    return f"sqlite:///{Path(runs_dir).resolve() / 'mlflow.db'}"


def _is_local_store(uri: str) -> bool:
    return uri.startswith(("sqlite:", "file:", "postgresql", "mysql", "mssql")) or "://" not in uri


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."


def _quiet_http_defaults() -> None:
    """No MLflow-internal HTTP retries (a caller retries or gives up) and a 10-s timeout, unless
    the ``MLFLOW_HTTP_REQUEST_*`` variables say otherwise."""
    for var, value in (
        ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0"),
        ("MLFLOW_HTTP_REQUEST_TIMEOUT", "10"),
    ):
        os.environ.setdefault(var, value)


_METRIC_NAME_BAD = re.compile(r"[^A-Za-z0-9_\-. /]")


def log_evaluation(
    run_dir: str | Path, eval_dir: str | Path, results: Mapping[str, Any]
) -> str | None:
    """Send one ``saferl evaluate`` of a run to the run's MLflow run (the one in its
    ``tracking.json``): the files of ``eval_dir`` as artifacts under ``eval/`` (a later
    evaluation replaces them), each protocol condition's mean return, mean cost and violation
    rate as metrics ``eval/<protocol>/<condition>/{return,cost,violation_rate}`` at step = the
    evaluated checkpoint's env steps, and the checkpoint as the tag ``saferl.eval.checkpoint``.

    Returns:
        a line saying where it went, or None when the run has no MLflow run.

    Raises:
        BackendUnavailableError: the run has an MLflow run but mlflow is not installed.
        Exception: whatever the MLflow client raises (server down, ...): the caller reports it;
            the evaluation's own files are written before this is called.
    """
    stored = read_tracking_file(run_dir).get("mlflow") or {}
    run_id, uri = stored.get("run_id"), stored.get("tracking_uri")
    if not run_id or not uri:
        return None
    require_package("mlflow")
    _quiet_http_defaults()
    from mlflow.entities import Metric, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    model = results.get("model") or {}
    step = int(model.get("env_steps") or 0)
    stamp = int(time.time() * 1000)
    metrics = []
    for protocol, block in (results.get("protocols") or {}).items():
        for condition, s in (block.get("conditions") or {}).items():
            prefix = _METRIC_NAME_BAD.sub("_", f"eval/{protocol}/{condition}")
            for key in ("return", "cost", "violation_rate"):
                value = (s.get(key) or {}).get("estimate")
                if isinstance(value, (int, float)) and math.isfinite(value):
                    metrics.append(Metric(f"{prefix}/{key}", float(value), stamp, step))
    tags = [RunTag("saferl.eval.checkpoint", str(model.get("checkpoint") or ""))]
    for i in range(0, len(metrics), MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=metrics[i : i + MAX_METRICS_PER_BATCH])
    client.log_batch(run_id, tags=tags)
    client.log_artifacts(run_id, str(eval_dir), artifact_path="eval")
    return f"evaluation sent to MLflow run {run_id} at {uri} ({len(metrics)} metrics, eval/ files)"


class MLflowTracker:
    """See the module docstring.

    Args:
        run_dir: the run directory.
        tracking_config: the run's ``tracking`` section.
        context: the run's config, name and resume point (see :class:`TrackerContext`).

    Raises:
        BackendUnavailableError: mlflow is not installed.
    """

    def __init__(
        self, run_dir: str | Path, tracking_config: Any, *, context: TrackerContext | None = None
    ) -> None:
        require_package("mlflow")
        _quiet_http_defaults()
        self.run_dir = Path(run_dir)
        self.cfg = tracking_config
        self.context = context
        self.uri = tracking_config.mlflow_uri or default_mlflow_uri(self.run_dir.parent)
        config = context.config if context is not None else None
        env_id = config.env.id if config is not None else "run"
        self.experiment = tracking_config.experiment or f"saferl-{env_id}"
        self.client: Any = None
        self.run_id: str | None = None
        self._logged_steps: set[int] = set()
        self._params: dict[str, str] = {}
        self._backfilled = False

    # -- connection ----------------------------------------------------------------------------
    def _open(self) -> None:
        """Create or reopen the run (idempotent; retried by the queue until it succeeds)."""
        if self.run_id is not None and self._backfilled:
            return
        from mlflow.tracking import MlflowClient

        if self.client is None:
            self.client = MlflowClient(tracking_uri=self.uri)
        client = self.client
        if self.run_id is None:
            exp_id = self._experiment_id()
            stored = read_tracking_file(self.run_dir).get("mlflow") or {}
            run = None
            if stored.get("run_id") and stored.get("tracking_uri") == self.uri:
                run = client.get_run(stored["run_id"])
            elif self.context is not None and self.context.resume_epoch is not None:
                run = self._find_run_of_this_directory(exp_id)
            if run is None:
                run = client.create_run(exp_id, run_name=self.run_dir.name, tags=self._tags())
                logger.info("MLflow run %s created at %s", run.info.run_id, self.uri)
            else:
                client.update_run(run.info.run_id, status="RUNNING")
                self._params = dict(run.data.params)
                history = client.get_metric_history(run.info.run_id, "epoch")
                self._logged_steps = {int(m.step) for m in history}
                logger.info(
                    "MLflow run %s reopened at %s (%d epochs already logged)",
                    run.info.run_id,
                    self.uri,
                    len(self._logged_steps),
                )
            self.run_id = run.info.run_id
            update_tracking_file(
                self.run_dir,
                "mlflow",
                run_id=self.run_id,
                experiment_id=exp_id,
                experiment=self.experiment,
                tracking_uri=self.uri,
            )
        if not self._backfilled:
            # Rows of the local files this run lacks (an interrupted process's undelivered
            # backlog, or the whole history when the backend is added on resume).
            history = self.context.history if self.context is not None else ()
            rows = [
                MetricsRow(r, int(r.get("env_steps", 0)), 0)
                for r in history
                if int(r.get("env_steps", -1)) not in self._logged_steps
            ]
            if rows:
                self._send_rows(rows)
                logger.info("MLflow run %s: delivered %d earlier row(s)", self.run_id, len(rows))
            self._backfilled = True

    def _experiment_id(self) -> str:
        client = self.client
        exp = client.get_experiment_by_name(self.experiment)
        if exp is not None:
            return exp.experiment_id
        location = None
        if _is_local_store(self.uri):
            location = (self.run_dir.parent.resolve() / "mlartifacts").as_uri()
        try:
            return client.create_experiment(self.experiment, artifact_location=location)
        except Exception:
            exp = client.get_experiment_by_name(self.experiment)  # created meanwhile elsewhere
            if exp is None:
                raise
            return exp.experiment_id

    def _find_run_of_this_directory(self, exp_id: str) -> Any:
        path = str(self.run_dir.resolve()).replace("'", "\\'")
        runs = self.client.search_runs(
            [exp_id], filter_string=f"tags.`{RUN_DIR_TAG}` = '{path}'", max_results=1
        )
        return runs[0] if runs else None

    def _tags(self) -> dict[str, str]:
        from importlib.metadata import PackageNotFoundError, version

        tags = {RUN_DIR_TAG: str(self.run_dir.resolve())}
        for pkg in ("saferl", "torch"):
            try:
                tags[f"saferl.version.{pkg}"] = version(pkg)
            except PackageNotFoundError:
                pass
        config = self.context.config if self.context is not None else None
        if config is not None:
            tags["saferl.algo"] = config.algo.name
            tags["saferl.env"] = config.env.id
            tags["saferl.seed"] = str(config.train.seed)
        from saferl.training.trainer import _git_commit

        commit = _git_commit()
        if commit:
            tags["mlflow.source.git.commit"] = commit
        for tag in self.cfg.tags:
            tags[tag] = "true"
        return tags

    # -- protocol ------------------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param, RunTag

        self._open()
        flat = {k: _param_value(v) for k, v in flatten(params).items()}
        new = [Param(k, v) for k, v in flat.items() if k not in self._params]
        changed = [
            RunTag(f"saferl.param_changed.{k}", v)
            for k, v in flat.items()
            if k in self._params and self._params[k] != v
        ]
        for i in range(0, len(new), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=new[i : i + MAX_PARAMS_PER_BATCH])
        if changed:
            self.client.log_batch(self.run_id, tags=changed)
        self._params.update({p.key: p.value for p in new})

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        self.log_rows([MetricsRow(metrics, int(step), 0)])

    def log_rows(self, rows: Sequence[MetricsRow]) -> None:
        """Deliver queued rows in as few requests as MLflow allows; rows already logged (at the
        same step) are skipped."""
        self._open()
        self._send_rows([r for r in rows if r.step not in self._logged_steps])

    def _send_rows(self, rows: Sequence[MetricsRow]) -> None:
        import time

        from mlflow.entities import Metric

        batch: list[Any] = []
        steps: list[int] = []
        for row in rows:
            ts = row.time_ms or int(time.time() * 1000)
            for k, v in numeric_metrics(row.metrics).items():
                batch.append(Metric(k, v if math.isfinite(v) else math.nan, ts, row.step))
            steps.append(row.step)
            if len(batch) >= MAX_METRICS_PER_BATCH:
                self._flush(batch, steps)
                batch, steps = [], []
        if batch:
            self._flush(batch, steps)

    def _flush(self, batch: list[Any], steps: list[int]) -> None:
        for i in range(0, len(batch), MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=batch[i : i + MAX_METRICS_PER_BATCH])
        self._logged_steps.update(steps)

    def log_artifact(self, path: str | Path) -> None:
        self._open()
        p = Path(path)
        folder = "plots" if p.suffix.lower() in (".png", ".svg", ".jpg") else None
        self.client.log_artifact(self.run_id, str(p), artifact_path=folder)

    def close(self) -> None:
        """Final artifacts, the policy model, and the run marked FINISHED."""
        self._open()
        rd = self.run_dir
        for name in ("config.yaml", "manifest.json", "metrics.csv"):
            if (rd / name).is_file():
                self.client.log_artifact(self.run_id, str(rd / name))
        best = rd / "checkpoints" / "best.pt"
        if best.is_file():
            self.client.log_artifact(self.run_id, str(best), artifact_path="checkpoints")
        if (rd / "eval").is_dir():
            self.client.log_artifacts(self.run_id, str(rd / "eval"), artifact_path="eval")
        if self.cfg.mlflow_log_model and self._model_checkpoint() is not None:
            self._log_model()
        self.client.set_terminated(self.run_id, "FINISHED")

    def describe(self) -> str:
        if self.run_id is None:
            return f"MLflow at {self.uri} (no run created)"
        return f"MLflow run {self.run_id} (experiment '{self.experiment}') at {self.uri}"

    # -- the policy as an MLflow model -----------------------------------------------------------
    def _model_checkpoint(self) -> Path | None:
        for name in ("best.pt", "last.pt"):
            p = self.run_dir / "checkpoints" / name
            if p.is_file():
                return p
        return None

    def _log_model(self) -> None:
        """Log the final policy as a pyfunc model (``policy``) with an input example and a
        signature; ``mlflow.pyfunc.load_model(uri).predict(obs)`` gives the mean actions that
        saferl's own loader gives (``load_model(run_dir).policy.act(..., deterministic=True)``)."""
        import mlflow
        from mlflow.models import infer_signature

        from saferl.training.tracking.mlflow_model import SaferlPolicyModel, example_batch

        ckpt = self._model_checkpoint()
        assert ckpt is not None
        with tempfile.TemporaryDirectory(prefix="saferl-model-") as tmp:
            staged = Path(tmp) / "run"
            (staged / "checkpoints").mkdir(parents=True)
            shutil.copy2(self.run_dir / "config.yaml", staged / "config.yaml")
            shutil.copy2(ckpt, staged / "checkpoints" / ckpt.name)
            obs, actions = example_batch(staged, ckpt.name)
            from importlib.metadata import version

            requirements = [f"saferl=={version('saferl')}", f"torch=={version('torch')}"]
            mlflow.set_tracking_uri(self.uri)
            with mlflow.start_run(run_id=self.run_id):
                info = mlflow.pyfunc.log_model(
                    name="policy",
                    python_model=SaferlPolicyModel(checkpoint=ckpt.name),
                    artifacts={"run": str(staged)},
                    input_example=obs,
                    signature=infer_signature(obs, actions),
                    pip_requirements=requirements,
                )
        update_tracking_file(self.run_dir, "mlflow", model_uri=info.model_uri)
        logger.info("MLflow model of %s logged: %s", ckpt.name, info.model_uri)
