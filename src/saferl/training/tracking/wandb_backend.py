"""Weights & Biases backend: online when an API key is found, otherwise offline in the run
directory; the same W&B run id on resume.

* Mode (``tracking.wandb_mode``): ``auto`` is online when ``WANDB_API_KEY`` is set or
  ``~/.netrc`` holds a key for the W&B host, else offline; ``online`` without a key falls back to
  offline with a warning. Offline files go to ``<run_dir>/wandb/offline-run-*``; one log line
  (and the end-of-run report) gives the ``wandb sync`` command that uploads them.
* Project: ``tracking.experiment``, else ``saferl-<env id>``; entity ``tracking.wandb_entity``.
* Config: the nested resolved config. Metrics: each epoch's numeric columns at
  ``step = env_steps``. Plots: logged as images at the end.
* Run id: chosen before the run starts and kept in ``<run_dir>/tracking.json``; a resumed run
  passes it again (``resume="must"`` online, ``"allow"`` offline, where W&B cannot check), so
  both processes' rows end up in one W&B run.
"""

from __future__ import annotations

import logging
import netrc
import os
import secrets
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from saferl.training.tracking.base import (
    MetricsRow,
    TrackerContext,
    numeric_metrics,
    read_tracking_file,
    require_package,
    update_tracking_file,
)

logger = logging.getLogger(__name__)

__all__ = ["WandbTracker", "wandb_api_key_available"]


def wandb_api_key_available() -> bool:
    """Whether W&B would find an API key: ``WANDB_API_KEY`` or a ``~/.netrc`` entry for the W&B
    host (``WANDB_BASE_URL``, default api.wandb.ai). Reads no network."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return bool(host and netrc.netrc().authenticators(host))
    except (OSError, netrc.NetrcParseError):
        return False


def _new_run_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


class WandbTracker:
    """See the module docstring.

    Args:
        run_dir: the run directory.
        tracking_config: the run's ``tracking`` section.
        context: the run's config, name and resume point.

    Raises:
        BackendUnavailableError: wandb is not installed.
    """

    def __init__(
        self, run_dir: str | Path, tracking_config: Any, *, context: TrackerContext | None = None
    ) -> None:
        require_package("wandb")
        self.run_dir = Path(run_dir)
        self.cfg = tracking_config
        self.context = context
        config = context.config if context is not None else None
        self.project = tracking_config.experiment or (
            f"saferl-{config.env.id}" if config is not None else "saferl"
        )
        has_key = wandb_api_key_available()
        mode = tracking_config.wandb_mode
        if mode == "auto":
            mode = "online" if has_key else "offline"
        elif mode == "online" and not has_key:
            logger.warning(
                "W&B: wandb_mode is online but no API key was found (WANDB_API_KEY or "
                "`wandb login`); logging offline instead"
            )
            mode = "offline"
        self.mode = mode
        stored = read_tracking_file(self.run_dir).get("wandb") or {}
        self.resuming = (
            bool(stored.get("id")) and context is not None and (context.resume_epoch is not None)
        )
        self.run_id = stored.get("id") or _new_run_id()
        # Recorded before the run starts: a process killed at any point is resumed under this id.
        update_tracking_file(self.run_dir, "wandb", id=self.run_id, project=self.project)
        self.run: Any = None
        self.offline_dir: Path | None = None

    def _open(self) -> None:
        if self.run is not None:
            return
        import wandb

        config = self.context.config if self.context is not None else None
        from saferl.config import config_to_dict

        resume = None
        if self.resuming:
            resume = "must" if self.mode == "online" else "allow"
        self.run = wandb.init(
            project=self.project,
            entity=self.cfg.wandb_entity,
            dir=str(self.run_dir),
            id=self.run_id,
            name=self.run_dir.name,
            resume=resume,
            mode=self.mode,
            tags=list(self.cfg.tags) or None,
            config=config_to_dict(config) if config is not None else None,
            settings=wandb.Settings(
                silent=True, console="off", x_disable_stats=True, save_code=False
            ),
        )
        if self.mode == "offline":
            self.offline_dir = Path(self.run.dir).parent  # .../wandb/offline-run-<time>-<id>
            update_tracking_file(self.run_dir, "wandb", mode="offline")
            logger.info(
                "W&B run %s is offline in %s; upload it with: wandb sync %s",
                self.run_id,
                self.offline_dir,
                self.offline_dir,
            )
        else:
            update_tracking_file(self.run_dir, "wandb", mode="online", url=self.run.url)

    # -- protocol ------------------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        self._open()  # the config goes with wandb.init

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        self.log_rows([MetricsRow(metrics, int(step), 0)])

    def log_rows(self, rows: Sequence[MetricsRow]) -> None:
        self._open()
        for row in rows:
            self.run.log(numeric_metrics(row.metrics), step=row.step)

    def log_artifact(self, path: str | Path) -> None:
        import wandb

        self._open()
        p = Path(path)
        if p.suffix.lower() in (".png", ".jpg", ".jpeg"):
            self.run.log({f"plots/{p.stem}": wandb.Image(str(p))}, commit=False)
        else:
            self.run.save(str(p), base_path=str(p.parent), policy="now")

    def close(self) -> None:
        self._open()
        self.run.finish()

    def describe(self) -> str:
        if self.offline_dir is not None:
            return (
                f"W&B offline run {self.run_id} in {self.offline_dir} "
                f"(upload with: wandb sync {self.offline_dir})"
            )
        return f"W&B run {self.run_id} ({self.mode}, project '{self.project}')"
