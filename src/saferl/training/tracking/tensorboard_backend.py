"""TensorBoard backend: event files in ``<run_dir>/tensorboard``.

* Scalars: each epoch's numeric columns at ``step = env_steps`` (flushed every epoch, so a killed
  run's files hold every row it produced).
* Resume: the writer starts with ``purge_step`` = the checkpoint's env steps + 1, so TensorBoard
  (and ``EventAccumulator``) discard the rows the interrupted process wrote after its checkpoint:
  each step appears once.
* At the end: the hyperparameters (flattened config: numbers, strings, booleans; lists as
  text) with the final metrics ``final/<column>`` (TensorBoard's HPARAMS tab).

Open with ``tensorboard --logdir runs/`` (every run) or ``--logdir runs/<name>/tensorboard``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from saferl.training.tracking.base import (
    MetricsRow,
    TrackerContext,
    flatten,
    numeric_metrics,
    require_package,
    update_tracking_file,
)

__all__ = ["FINAL_METRICS", "TensorBoardTracker"]

#: Columns reported as the hparams' metrics (``final/<column>``), when the run has them.
FINAL_METRICS = ("ep_return", "ep_cost", "cost_limit", "ep_len", "env_steps", "epoch")


class TensorBoardTracker:
    """See the module docstring.

    Args:
        run_dir: the run directory.
        tracking_config: the run's ``tracking`` section (unused: TensorBoard needs no settings).
        context: the run's resume point.

    Raises:
        BackendUnavailableError: tensorboard is not installed.
    """

    def __init__(
        self, run_dir: str | Path, tracking_config: Any, *, context: TrackerContext | None = None
    ) -> None:
        require_package("tensorboard")
        self.run_dir = Path(run_dir)
        self.log_dir = self.run_dir / "tensorboard"
        self.purge_step: int | None = None
        if context is not None and context.resume_epoch is not None:
            steps = [int(r.get("env_steps", 0)) for r in context.history]
            self.purge_step = (max(steps) if steps else 0) + 1
        self.writer: Any = None
        self.params: dict[str, Any] = {}
        self.last: dict[str, float] = {}
        self.last_step = 0
        update_tracking_file(self.run_dir, "tensorboard", log_dir=str(self.log_dir))

    def _open(self) -> None:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.log_dir), purge_step=self.purge_step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._open()
        for k, v in flatten(params).items():
            if isinstance(v, (bool, int, float, str)):
                self.params[k] = v
            else:
                self.params[k] = str(v)  # lists, None
        self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in self.params.items()))

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        self.log_rows([MetricsRow(metrics, int(step), 0)])

    def log_rows(self, rows: Sequence[MetricsRow]) -> None:
        self._open()
        for row in rows:
            values = numeric_metrics(row.metrics)
            for k, v in values.items():
                self.writer.add_scalar(k, v, row.step)
            self.last.update(values)
            self.last_step = row.step
        self.writer.flush()

    def log_artifact(self, path: str | Path) -> None:
        pass  # the plots live beside the event files, in the run directory

    def close(self) -> None:
        from torch.utils.tensorboard.summary import hparams

        self._open()
        final = {f"final/{k}": self.last[k] for k in FINAL_METRICS if k in self.last}
        if self.params and final:
            exp, ssi, sei = hparams(self.params, final)
            fw = self.writer._get_file_writer()
            for summary in (exp, ssi, sei):
                fw.add_summary(summary, self.last_step)
            for k, v in final.items():
                self.writer.add_scalar(k, v, self.last_step)
        self.writer.close()

    def describe(self) -> str:
        return f"TensorBoard event files in {self.log_dir} (tensorboard --logdir {self.log_dir})"
