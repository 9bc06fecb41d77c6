"""Run an exported policy: ONNX Runtime, TorchScript, or the run's own torch modules.

:func:`load_policy` opens an exported file with its sidecar (checking the artefact's SHA-256
against it); :func:`policy_from_run` builds the same function in-process from a run directory.
Both give a :class:`PolicyRuntime`::

    rt = load_policy("runs/x/export/policy.onnx")
    action, ema = rt.run(obs)                      # stateless policies: ema is None
    action, ema = rt.run(obs, ema, episode_start)  # policies with obs_ema state

:class:`SessionStore` keeps that state per user (what ``saferl serve`` does with ``session``
ids), and :class:`ExportedEvalPolicy` / :func:`load_exported_model` let saferl's evaluation and
comparison drive an exported file as a model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from saferl.deploy.errors import DeployError, require
from saferl.deploy.export import SIDECAR_FORMAT, SIDECAR_VERSION, sidecar_path

__all__ = [
    "ExportedEvalPolicy",
    "PolicyRuntime",
    "SessionStore",
    "load_exported_model",
    "load_policy",
    "policy_from_run",
]


class PolicyRuntime:
    """An exported policy function and its sidecar.

    Attributes:
        spec: the sidecar (dict).
        backend: ``onnxruntime`` | ``torchscript`` | ``torch``.
        obs_dim, act_dim, state_dim: widths of ``obs``, ``action`` and ``ema`` (0: stateless).
        low, high: the action box (float32 arrays).
        name: display name.
    """

    def __init__(self, spec: dict[str, Any], backend: str, name: str, threads: int = 1) -> None:
        self.spec = spec
        self.backend = backend
        self.name = name
        self.threads = int(threads)
        self.obs_dim = int(spec["observation"]["dim"])
        self.act_dim = int(spec["action"]["dim"])
        self.state_dim = int(sum(w.get("state_dim", 0) for w in spec.get("wrappers", [])))
        self.low = np.asarray(spec["action"]["low"], np.float32)
        self.high = np.asarray(spec["action"]["high"], np.float32)

    @property
    def stateful(self) -> bool:
        """Whether the function carries ``obs_ema`` state between calls."""
        return self.state_dim > 0

    def run(
        self,
        obs: np.ndarray,
        ema: np.ndarray | None = None,
        episode_start: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Actions for a batch of raw observations.

        Args:
            obs: ``(B, obs_dim)`` float32 (cast if another float dtype).
            ema: ``(B, state_dim)`` float32 averages returned by the previous call of each row's
                episode (stateful policies only; zeros for rows with ``episode_start``).
            episode_start: ``(B,)`` bool, true at an episode's first observation (stateful only;
                default all true: each row starts an episode).

        Returns:
            ``(action (B, act_dim) float32, ema_out (B, state_dim) float32 or None)``.
        """
        obs = np.ascontiguousarray(obs, np.float32)
        if not self.stateful:
            return self._run(obs, None, None)
        b = obs.shape[0]
        if ema is None:
            ema = np.zeros((b, self.state_dim), np.float32)
        if episode_start is None:
            episode_start = np.ones(b, bool)
        return self._run(
            obs,
            np.ascontiguousarray(ema, np.float32),
            np.ascontiguousarray(episode_start, bool),
        )

    def _run(
        self, obs: np.ndarray, ema: np.ndarray | None, start: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None]:  # pragma: no cover - overridden
        raise NotImplementedError

    @contextlib.contextmanager
    def threads_context(self) -> Iterator[None]:
        """Torch intra-op threads set to ``threads`` while inside (restored afterwards)."""
        if self.backend == "onnxruntime":
            yield
            return
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)


class _OnnxRuntime(PolicyRuntime):
    def __init__(self, path: Path, spec: dict[str, Any], threads: int = 1) -> None:
        super().__init__(spec, "onnxruntime", path.name, threads)
        ort = require("onnxruntime")
        opts = ort.SessionOptions()  # type: ignore[attr-defined]
        # one thread: a small MLP gains nothing from more, and spinning threads steal the cores
        # the robot's other software (or a server's event loop) needs
        opts.intra_op_num_threads = max(1, self.threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(  # type: ignore[attr-defined]
                str(path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise DeployError(
                f"{path}: not a loadable ONNX model ({str(exc).splitlines()[0]})"
            ) from None
        self._out = ["action", "ema_out"] if self.stateful else ["action"]

    def _run(self, obs, ema, start):  # type: ignore[no-untyped-def]
        feed: dict[str, np.ndarray] = {"obs": obs}
        if ema is not None:
            feed["ema"] = ema
            feed["episode_start"] = start
        out = self.session.run(self._out, feed)
        return out[0], (out[1] if len(out) > 1 else None)


class _TorchRuntime(PolicyRuntime):
    def __init__(
        self, module: Any, spec: dict[str, Any], backend: str, name: str, threads: int = 1
    ) -> None:
        super().__init__(spec, backend, name, threads)
        import torch

        self._torch = torch
        self.module = module.eval()

    def _run(self, obs, ema, start):  # type: ignore[no-untyped-def]
        torch = self._torch
        with torch.inference_mode():
            o = torch.from_numpy(obs)
            if ema is None:
                return self.module(o).numpy(), None
            action, new = self.module(o, torch.from_numpy(ema), torch.from_numpy(start))
            return action.numpy(), new.numpy()


def _read_sidecar(path: Path) -> dict[str, Any]:
    side = sidecar_path(path)
    if not side.is_file():
        raise DeployError(f"{path}: its sidecar {side.name} is missing (export writes both)")
    try:
        spec = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DeployError(f"{side}: not a readable sidecar ({exc})") from None
    if not isinstance(spec, dict) or spec.get("format") != SIDECAR_FORMAT:
        raise DeployError(f"{side}: not a saferl policy sidecar (format {SIDECAR_FORMAT!r})")
    if spec.get("format_version") != SIDECAR_VERSION:
        raise DeployError(
            f"{side}: sidecar format_version {spec.get('format_version')!r}; this saferl reads "
            f"{SIDECAR_VERSION}"
        )
    return spec


def load_policy(path: str | Path, *, threads: int = 1) -> PolicyRuntime:
    """Open an exported policy (``.onnx`` with ONNX Runtime, TorchScript with ``torch.jit``).

    The sidecar ``<path>.json`` must be present and its ``artefact.sha256`` must match the file
    (a policy is never run with the wrong description). TorchScript files contain code that
    ``torch.jit.load`` runs: load only files you trust (the hash proves they belong together,
    not where they came from); ONNX files are data only.

    Args:
        path: the exported file.
        threads: intra-op threads of the runtime.

    Raises:
        DeployError: no such file, no/bad sidecar, hash mismatch, unreadable model, missing
            optional package.
    """
    p = Path(path)
    if not p.is_file():
        raise DeployError(f"{p}: no such file")
    spec = _read_sidecar(p)
    art = spec.get("artefact") or {}
    data = p.read_bytes()
    if hashlib.sha256(data).hexdigest() != art.get("sha256"):
        raise DeployError(
            f"{p}: its SHA-256 does not match {sidecar_path(p).name} (file changed or sidecar of "
            "another export)"
        )
    fmt = art.get("format")
    if fmt == "onnx":
        return _OnnxRuntime(p, spec, threads)
    if fmt == "torchscript":
        import io

        import torch

        try:
            with warnings.catch_warnings():  # deprecated in torch >= 2.10, still supported
                warnings.simplefilter("ignore", DeprecationWarning)
                module = torch.jit.load(io.BytesIO(data), map_location="cpu")
        except Exception as exc:  # torch raises RuntimeError and others for bad archives
            raise DeployError(
                f"{p}: not a loadable TorchScript module ({str(exc).splitlines()[0]})"
            ) from None
        return _TorchRuntime(module, spec, "torchscript", p.name, threads)
    raise DeployError(f"{sidecar_path(p)}: unknown artefact format {fmt!r}")


def policy_from_run(
    run_dir: str | Path, *, checkpoint: str = "best", precision: str = "float64", threads: int = 1
) -> PolicyRuntime:
    """The exported function built in-process from a run directory (no files written): the
    eager torch module that export would serialise, with the same sidecar (``artefact`` is
    ``null``)."""
    from saferl.deploy.export import build_module, load_trained

    model = load_trained(run_dir, checkpoint)
    spec = build_module(model, precision)
    side = dict(spec.sidecar)
    side["artefact"] = None
    return _TorchRuntime(spec.module, side, "torch", model.name, threads)


# ------------------------------------------------------------------------------------------
# Per-user state
# ------------------------------------------------------------------------------------------
class SessionStore:
    """``obs_ema`` state per session id, for many users of one stateful policy.

    A session's first observation starts its episode (as does ``reset``); later ones continue
    it. At most ``max_sessions`` are kept, the least recently used dropped first (its next
    request then starts a new episode, as after a reset). Thread-safe.

    Args:
        runtime: the policy.
        max_sessions: bound on the sessions held (memory: ``4 * state_dim`` bytes each).
    """

    def __init__(self, runtime: PolicyRuntime, max_sessions: int = 10_000) -> None:
        self.runtime = runtime
        self.max_sessions = int(max_sessions)
        self._state: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._state)

    def get(self, session: str) -> np.ndarray | None:
        """The session's averages (a copy), or None if it has none."""
        with self._lock:
            s = self._state.get(session)
            return None if s is None else s.copy()

    def drop(self, session: str) -> bool:
        """Forget a session; True if it existed."""
        with self._lock:
            return self._state.pop(session, None) is not None

    def act(
        self,
        obs: np.ndarray,
        sessions: Sequence[str] | None = None,
        reset: Sequence[bool] | None = None,
    ) -> np.ndarray:
        """Actions for ``obs (B, obs_dim)``; row ``i`` belongs to ``sessions[i]`` (distinct ids).

        Stateless policies ignore ``sessions`` and ``reset``. Stateful ones need ``sessions``
        (a ``ValueError`` otherwise, naming it).
        """
        rt = self.runtime
        if not rt.stateful:
            return rt.run(obs)[0]
        if sessions is None:
            raise ValueError(
                "session: this policy keeps per-user state (obs_ema); give a session id for "
                "each observation"
            )
        b = len(sessions)
        starts = np.zeros(b, bool) if reset is None else np.asarray(reset, bool).copy()
        ema = np.zeros((b, rt.state_dim), np.float32)
        with self._lock:
            for i, sid in enumerate(sessions):
                prev = self._state.get(sid)
                if prev is None or starts[i]:
                    starts[i] = True
                else:
                    ema[i] = prev
            action, new = rt.run(obs, ema, starts)
            if new is None:  # a stateful runtime always returns its state
                raise RuntimeError(f"{rt.name}: the policy returned no ema_out")
            for i, sid in enumerate(sessions):
                self._state[sid] = new[i].copy()
                self._state.move_to_end(sid)
            while len(self._state) > self.max_sessions:
                self._state.popitem(last=False)
                self.evicted += 1
        return action


# ------------------------------------------------------------------------------------------
# Evaluation and comparison of an exported file
# ------------------------------------------------------------------------------------------
class ExportedEvalPolicy:
    """An exported policy as an evaluation policy (``EvalPolicy``), driving the *raw* env.

    Each instance's episode starts at ``reset`` (evaluation runs one episode per instance and
    ignores the autoreset ones after it), so the ``obs_ema`` state restarts there and is then
    carried from step to step, as a deployed controller would. The exported function is the
    deterministic policy: sampled actions are refused.
    """

    obs_scale = None

    def __init__(self, runtime: PolicyRuntime, name: str | None = None) -> None:
        self.runtime = runtime
        self.name = name or runtime.name
        self._ema: np.ndarray | None = None
        self._start: np.ndarray | None = None

    def reset(self, env: Any) -> None:
        n = int(env.num_envs)
        self._ema = np.zeros((n, self.runtime.state_dim), np.float32)
        self._start = np.ones(n, bool)

    def rollout_context(self) -> contextlib.AbstractContextManager[None]:
        """The runtime's thread setting while episodes run."""
        return self.runtime.threads_context()

    def act(self, obs: np.ndarray, env: Any, *, deterministic: bool, rng: Any) -> np.ndarray:
        if not deterministic:
            from saferl.training.evaluation import EvaluationError

            raise EvaluationError(
                f"{self.name}: an exported policy is deterministic (its mean action); protocols "
                "that sample actions (stochastic) cannot run it"
            )
        o = np.asarray(obs, np.float32)[:, : self.runtime.obs_dim]
        if not self.runtime.stateful:
            return self.runtime.run(o)[0]
        if self._ema is None or self._start is None:
            raise RuntimeError("ExportedEvalPolicy.act called before reset(env)")
        action, self._ema = self.runtime.run(o, self._ema, self._start)
        self._start[:] = False
        return action


def load_exported_model(path: str | Path, *, threads: int = 1) -> Any:
    """An exported file as a :class:`~saferl.training.evaluation.Model`: the policy runs the
    file, the env is the raw registered env with the sidecar's options (the ``obs_ema`` state is
    the policy's own), the cost limit and evaluation settings are the source run's.

    Raises:
        DeployError: see :func:`load_policy`; the env id is not registered here.
    """
    from saferl.config import Config, ConfigError
    from saferl.registry import ENVS, RegistryError
    from saferl.training.evaluation import Model

    rt = load_policy(path, threads=threads)
    spec = rt.spec
    env_id = spec["env"]["id"]
    try:
        factory = ENVS.get(env_id)
    except RegistryError as exc:
        raise DeployError(f"{path}: {exc}") from None
    try:
        cfg = Config.model_validate(spec.get("training_config") or {"env": {"id": env_id}})
    except (ValueError, ConfigError) as exc:
        raise DeployError(f"{sidecar_path(path)}: training_config is not valid ({exc})") from None
    art = spec.get("artefact") or {}
    p = Path(path)
    return Model(
        name=p.name,
        spec=str(path),
        policy=ExportedEvalPolicy(rt, p.name),
        env_id=env_id,
        env_factory=factory,
        env_options=dict(spec["env"]["options"]),
        limit=float(spec["env"]["cost_limit"]),
        config=cfg,
        run_dir=None,
        checkpoint=p,
        meta={
            "kind": "exported",
            "format": art.get("format"),
            "sha256": art.get("sha256"),
            "source_run": spec.get("source", {}).get("run_dir"),
            "source_checkpoint_sha256": spec.get("source", {}).get("checkpoint_sha256"),
            "epoch": spec.get("source", {}).get("epoch"),
            "env_steps": spec.get("source", {}).get("env_steps"),
            "algo": spec.get("source", {}).get("algo"),
        },
    )
