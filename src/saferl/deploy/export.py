"""Export a trained policy as one self-contained function: TorchScript or ONNX, plus a sidecar.

The exported function is the *deterministic* policy (the Gaussian's mean) of the raw
observation the environment produces, with everything saferl does around the actor folded in:

1. the observation moving averages of ``env.obs_ema`` (when the run used them) as explicit
   state: ``ema_t = episode_start ? x_t : (1 - w) ema_{t-1} + w x_t`` for the averaged dims
   ``x_t``, exactly as :class:`~saferl.envs.wrappers.ObservationEMA` computes them (float32);
2. the frozen observation normaliser, ``clip((obs - mean) / sqrt(var + eps), -c, c)`` in float32;
3. the actor's mean network, on the dims it reads (with ``algo.asymmetric_critic`` the env's
   privileged dims are not an input at all), in float64 by default, as saferl's evaluation runs
   it, rounded to float32;
4. clipping to the environment's action box.

Signatures (``B`` is dynamic)::

    stateless:  action (B, A) f32 = f(obs (B, D) f32)
    obs_ema:    action (B, A) f32, ema_out (B, E) f32 = f(obs (B, D) f32, ema (B, E) f32,
                                                          episode_start (B,) bool)

The sidecar ``<file>.json`` (:func:`build_sidecar`) says what a deployer needs: the layout of
``obs``, ``ema`` and ``action`` (names, units, bounds), the env id and options, the wrappers and
their weights, the artefact's and the checkpoint's SHA-256 and the versions that made them.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import platform
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from saferl.deploy.errors import DeployError, require
from saferl.deploy.layouts import action_layout, observation_layout

logger = logging.getLogger(__name__)

__all__ = [
    "FORMATS",
    "SIDECAR_FORMAT",
    "EMAPolicyModule",
    "ExportSpec",
    "PolicyModule",
    "build_module",
    "build_spec",
    "export_policy",
    "export_run",
    "sidecar_path",
]

#: export formats and the file suffix each gets by default
FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
#: ``format`` field of every sidecar (readers check it and ``format_version``)
SIDECAR_FORMAT = "saferl-policy"
SIDECAR_VERSION = 1
PRECISIONS = ("float64", "float32")
ONNX_OPSET = 18


def sidecar_path(artefact: str | Path) -> Path:
    """The sidecar of an exported file: ``policy.onnx`` -> ``policy.onnx.json``."""
    p = Path(artefact)
    return p.with_name(p.name + ".json")


# ------------------------------------------------------------------------------------------
# The exported modules
# ------------------------------------------------------------------------------------------
class _Core(nn.Module):
    """Normaliser + mean network + clipping on the actor's input ``(B, input_dims)``."""

    def __init__(
        self,
        mu: nn.Module,
        shift: torch.Tensor | None,
        scale: torch.Tensor | None,
        clip: float,
        low: np.ndarray,
        high: np.ndarray,
        precision: str,
    ) -> None:
        super().__init__()
        dtype = torch.float64 if precision == "float64" else torch.float32
        self.mu = mu.to(dtype).eval()
        for p in self.mu.parameters():
            p.requires_grad_(False)
        self.normalize = shift is not None
        n = int(self.mu[0].in_features)  # type: ignore[index]
        self.register_buffer("shift", shift if shift is not None else torch.zeros(n))
        self.register_buffer("scale", scale if scale is not None else torch.ones(n))
        self.clip = float(clip)
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32))
        self.compute_dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            # the normaliser's own float32 arithmetic (ObsNormalizer.normalize)
            x = ((x - self.shift) * self.scale).clamp(-self.clip, self.clip)
        mean = self.mu(x.to(self.compute_dtype)).to(torch.float32)
        return torch.minimum(torch.maximum(mean, self.low), self.high)


class PolicyModule(nn.Module):
    """``action (B, A) float32 = f(obs (B, D) float32)``: the stateless exported policy."""

    def __init__(self, core: _Core, input_dims: int) -> None:
        super().__init__()
        self.core = core
        self.input_dims = int(input_dims)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.core(obs[:, : self.input_dims])


class EMAPolicyModule(nn.Module):
    """The policy of a run trained with ``env.obs_ema``, the averages as explicit state.

    ``(action (B, A), ema_out (B, E)) = f(obs (B, D), ema (B, E), episode_start (B,) bool)``
    with ``E = len(weights) * len(dims)`` (weight-major: ``ema[:, i * K + k]`` averages
    ``obs[:, dims[k]]`` with ``weights[i]``). A row with ``episode_start`` ignores its ``ema``
    input (the averages restart at the episode's first observation).
    """

    def __init__(
        self,
        core: _Core,
        dims: list[int],
        weights: list[float],
        visible: int,
        input_dims: int,
    ) -> None:
        super().__init__()
        self.core = core
        self.register_buffer("dims", torch.as_tensor(dims, dtype=torch.int64))
        w = np.asarray(weights, np.float32).reshape(-1, 1)
        # (1 - w) rounded to float32 once, as the wrapper's numpy arithmetic does
        self.register_buffer("w", torch.from_numpy(w.copy()))
        self.register_buffer("keep", torch.from_numpy((np.float32(1.0) - w).astype(np.float32)))
        self.n_weights = int(w.shape[0])
        self.n_dims = len(dims)
        self.visible = int(visible)
        self.input_dims = int(input_dims)

    def forward(
        self, obs: torch.Tensor, ema: torch.Tensor, episode_start: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b = obs.shape[0]
        x = torch.index_select(obs, 1, self.dims).unsqueeze(1)  # (B, 1, K)
        prev = ema.reshape(b, self.n_weights, self.n_dims)
        new = prev * self.keep + self.w * x
        new = torch.where(episode_start.reshape(b, 1, 1), x.expand_as(new), new)
        flat = new.reshape(b, self.n_weights * self.n_dims)
        aug = torch.cat([obs[:, : self.visible], flat, obs[:, self.visible :]], dim=1)
        return self.core(aug[:, : self.input_dims]), flat


# ------------------------------------------------------------------------------------------
# From a loaded run to the module and its description
# ------------------------------------------------------------------------------------------
@dataclass
class ExportSpec:
    """What was exported: the module, the raw input width and the sidecar (without the
    artefact's own hash, which :func:`export_policy` adds)."""

    module: nn.Module
    obs_dim: int
    act_dim: int
    state_dim: int
    sidecar: dict[str, Any] = field(default_factory=dict)

    @property
    def stateful(self) -> bool:
        """Whether the function has the ``ema`` state input/output."""
        return self.state_dim > 0


def _probe(factory: Any, options: dict[str, Any]) -> dict[str, Any]:
    env = factory(num_envs=1, **options)
    try:
        space = env.single_observation_space
        act = env.single_action_space
        constraints = getattr(env, "constraints", None)
        return {
            "obs_dim": int(space.shape[0]),
            "obs_low": np.broadcast_to(np.asarray(space.low, np.float32), space.shape).copy(),
            "obs_high": np.broadcast_to(np.asarray(space.high, np.float32), space.shape).copy(),
            "act_dim": int(act.shape[0]),
            "act_low": np.broadcast_to(np.asarray(act.low, np.float32), act.shape).copy(),
            "act_high": np.broadcast_to(np.asarray(act.high, np.float32), act.shape).copy(),
            "privileged": int(getattr(env, "privileged_obs_dims", 0)),
            "constraints": list(getattr(constraints, "names", ()) or ()),
            "episode_steps": getattr(env, "max_episode_steps", None),
            # the averaged dims as indices (env.obs_ema may name layout fields)
            "ema_dims": [int(d) for d in getattr(env, "dims", ())],
        }
    finally:
        close = getattr(env, "close", None)
        if callable(close):
            close()


def _floats(a: Any) -> list[float]:
    return [float(v) for v in np.asarray(a, np.float64).reshape(-1)]


def _versions() -> dict[str, str]:
    from saferl import __version__

    out = {
        "saferl": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    for mod in ("onnx", "onnxruntime"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return out


def build_module(model: Any, precision: str = "float64") -> ExportSpec:
    """The exportable module and its sidecar for a trained run.

    Args:
        model: a trained :class:`~saferl.training.evaluation.Model` (from
            :func:`saferl.training.evaluation.load_run_model`): its ``policy`` holds the actor
            and the frozen normaliser; its config says which wrappers the env had.
        precision: ``float64`` (the mean network in float64, as saferl's evaluation runs it;
            actions equal evaluation's) or ``float32`` (for runtimes without doubles; actions
            differ from evaluation's in the last float32 bits).

    Raises:
        DeployError: ``precision`` unknown; the model is not a trained Gaussian actor; the run
            used an env wrapper this exporter does not know how to carry.
    """
    if precision not in PRECISIONS:
        raise DeployError(
            f"--precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}"
        )
    policy = model.policy
    actor = getattr(policy, "actor", None)
    if model.run_dir is None or actor is None or not hasattr(actor, "mu"):
        raise DeployError(f"{model.spec}: only trained runs can be exported (not a baseline)")
    from saferl.registry import ENVS

    cfg = model.config
    base = ENVS.get(model.env_id)
    options = dict(model.env_options)
    raw = _probe(base, options)
    wrapped = _probe(model.env_factory, options)
    ema_cfg = cfg.env.obs_ema
    ema_dims = wrapped["ema_dims"]
    n_ema = 0 if ema_cfg is None else len(ema_dims) * len(ema_cfg.weights)
    if wrapped["obs_dim"] != raw["obs_dim"] + n_ema:
        # another wrapper changed the observation: exporting without it would be wrong
        raise DeployError(
            f"{model.spec}: the run's env wraps the observation in a way the exporter cannot "
            f"carry ({raw['obs_dim']} raw dims, {wrapped['obs_dim']} seen by the policy); only "
            "env.obs_ema is supported"
        )
    input_dims = int(actor.input_dims)
    priv = raw["privileged"]
    visible = raw["obs_dim"] - priv
    # raw dims the function needs: the visible ones, and privileged ones only if the actor reads
    # them (a run without algo.asymmetric_critic on an env with privileged_obs)
    obs_dim = visible + max(0, input_dims - visible - n_ema)
    if obs_dim > visible:
        logger.warning(
            "%s: the actor reads %d privileged (simulator-only) observation dims; a real robot "
            "cannot provide them (train with algo.asymmetric_critic to keep them from the actor)",
            model.spec,
            obs_dim - visible,
        )
    norm = getattr(policy, "normalizer", None)
    shift = scale = None
    clip = 0.0
    if norm is not None and getattr(norm, "enabled", True):
        mean = norm.mean.detach().cpu().double()
        var = norm.var.detach().cpu().double()
        shift = mean.float()[:input_dims].clone()
        scale = torch.rsqrt(var + norm.eps).float()[:input_dims].clone()
        clip = float(norm.clip)
    import copy

    mu = copy.deepcopy(actor.mu).cpu()
    core = _Core(mu, shift, scale, clip, raw["act_low"], raw["act_high"], precision)
    if ema_cfg is None:
        module: nn.Module = PolicyModule(core, input_dims)
    else:
        module = EMAPolicyModule(core, list(ema_dims), list(ema_cfg.weights), visible, input_dims)
    module.eval()
    spec = ExportSpec(module, obs_dim, raw["act_dim"], n_ema)
    spec.sidecar = build_spec(model, spec, raw, precision)
    return spec


def build_spec(model: Any, spec: ExportSpec, raw: dict[str, Any], precision: str) -> dict[str, Any]:
    """The sidecar (everything but ``artefact``) for ``spec`` exported from ``model``."""
    from saferl.config import config_to_dict
    from saferl.utils import sha256_file

    cfg = model.config
    options = dict(model.env_options)
    env_id = model.env_id
    names = observation_layout(env_id, options, raw["obs_dim"])
    visible = raw["obs_dim"] - raw["privileged"]
    d = spec.obs_dim
    observation = {
        "dim": d,
        "names": [n for n, _ in names[:d]],
        "units": [u for _, u in names[:d]],
        "low": _floats(raw["obs_low"][:d]),
        "high": _floats(raw["obs_high"][:d]),
        "privileged": [i >= visible for i in range(d)],
        "env_dim": raw["obs_dim"],
        "note": (
            "the first `dim` dims of the env's observation, float32; values outside [low, high] "
            "are accepted (the env clips its own observation to that box)"
        ),
    }
    acts = action_layout(env_id, raw["act_dim"])
    action = {
        "dim": raw["act_dim"],
        "names": [n for n, _ in acts],
        "units": [u for _, u in acts],
        "low": _floats(raw["act_low"]),
        "high": _floats(raw["act_high"]),
        "clipped": True,
    }
    inputs: list[dict[str, Any]] = [
        {"name": "obs", "shape": ["batch", d], "dtype": "float32"},
    ]
    outputs: list[dict[str, Any]] = [
        {"name": "action", "shape": ["batch", raw["act_dim"]], "dtype": "float32"},
    ]
    wrappers: list[dict[str, Any]] = []
    ema_cfg = cfg.env.obs_ema
    if ema_cfg is not None:
        ema_idx = [int(i) for i in spec.module.dims]  # indices, also where the config names fields
        e = spec.state_dim
        inputs += [
            {"name": "ema", "shape": ["batch", e], "dtype": "float32"},
            {"name": "episode_start", "shape": ["batch"], "dtype": "bool"},
        ]
        outputs.append({"name": "ema_out", "shape": ["batch", e], "dtype": "float32"})
        state_names = [
            f"ema_w{w:g}({observation['names'][k]})" for w in ema_cfg.weights for k in ema_idx
        ]
        wrappers.append(
            {
                "type": "obs_ema",
                "dims": ema_idx,
                "weights": [float(w) for w in ema_cfg.weights],
                "handling": "state",
                "state_input": "ema",
                "state_output": "ema_out",
                "state_dim": e,
                "state_names": state_names,
                "update": (
                    "ema_out = x if episode_start else (1 - w) * ema + w * x, float32, for "
                    "x = obs[dims] and each weight w (weight-major); feed ema_out back as ema "
                    "with the next observation of the same episode; at an episode's first "
                    "observation pass episode_start = true (ema is then ignored, zeros will do)"
                ),
            }
        )
    ckpt = Path(model.checkpoint) if model.checkpoint is not None else None
    ac = cfg.algo
    return {
        "format": SIDECAR_FORMAT,
        "format_version": SIDECAR_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "stateful": spec.stateful,
        "inputs": inputs,
        "outputs": outputs,
        "observation": observation,
        "action": action,
        "wrappers": wrappers,
        "env": {
            "id": env_id,
            "options": options,
            "cost_limit": float(model.limit),
            "constraints": raw["constraints"],
            "episode_steps": raw["episode_steps"],
        },
        "policy": {
            "deterministic": True,
            "precision": precision,
            "hidden_sizes": list(ac.hidden_sizes),
            "activation": ac.activation,
            "normalizer": bool(ac.normalize_obs),
            "obs_clip": float(ac.obs_clip),
            "actor_input_dims": int(model.policy.actor.input_dims),
            "asymmetric_critic": bool(ac.asymmetric_critic),
        },
        "source": {
            "run": model.name,
            "run_dir": str(model.run_dir),
            "checkpoint": str(ckpt) if ckpt is not None else None,
            "checkpoint_sha256": sha256_file(ckpt) if ckpt is not None else None,
            "epoch": model.meta.get("epoch"),
            "env_steps": model.meta.get("env_steps"),
            "algo": model.meta.get("algo"),
        },
        "versions": _versions(),
        "training_config": config_to_dict(cfg),
    }


# ------------------------------------------------------------------------------------------
# Serialisation
# ------------------------------------------------------------------------------------------
def _example_inputs(spec: ExportSpec, batch: int = 2) -> tuple[torch.Tensor, ...]:
    obs = torch.zeros(batch, spec.obs_dim)
    if not spec.stateful:
        return (obs,)
    return (obs, torch.zeros(batch, spec.state_dim), torch.ones(batch, dtype=torch.bool))


def _torchscript_bytes(spec: ExportSpec) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # torch >= 2.10 marks TorchScript deprecated (in favour of torch.export); it still is
        # what C++ deployments load with torch::jit::load, so it stays an export format
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(spec.module)
        torch.jit.save(scripted, buf)
    return buf.getvalue()


def _onnx_bytes(spec: ExportSpec) -> bytes:
    onnx = require("onnx")
    require("onnxscript")
    names_in = ["obs"] + (["ema", "episode_start"] if spec.stateful else [])
    names_out = ["action"] + (["ema_out"] if spec.stateful else [])
    batch = torch.export.Dim("batch", min=1)
    dynamic = {
        "obs": {0: batch},
        **({"ema": {0: batch}, "episode_start": {0: batch}} if spec.stateful else {}),
    }
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    with warnings.catch_warnings():
        # torch's exporter warns about its own internals (pytree API deprecations, the shared
        # batch axis' name) and logs that torchvision's ops are not registered
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", message=".*axis name", category=UserWarning)
        quiet.setLevel(logging.ERROR)
        try:
            program = torch.onnx.export(
                spec.module,
                _example_inputs(spec),
                input_names=names_in,
                output_names=names_out,
                dynamic_shapes=dynamic,
                opset_version=ONNX_OPSET,
                dynamo=True,
                verbose=False,
                optimize=True,
            )
        finally:
            quiet.setLevel(level)
    proto = program.model_proto
    proto.doc_string = "saferl deterministic policy; see the .json sidecar for the layout"
    for key in ("saferl", "torch"):
        entry = proto.metadata_props.add()
        entry.key = f"{key}_version"
        entry.value = _versions()[key]
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def export_policy(
    spec: ExportSpec, fmt: str, out: str | Path, *, overwrite: bool = True
) -> tuple[Path, Path]:
    """Write ``spec``'s module as ``fmt`` to ``out`` and its sidecar to ``out.json``.

    Both files are written to a temp file and renamed; the artefact first, so a sidecar never
    describes a file that is not there. The sidecar records the artefact's SHA-256, which
    loaders check.

    Returns:
        (artefact path, sidecar path).

    Raises:
        DeployError: unknown format, ``out`` is a directory, exists and ``overwrite`` is false,
            or the optional ONNX packages are missing.
    """
    from saferl.utils import atomic_write_bytes, atomic_write_text

    if fmt not in FORMATS:
        raise DeployError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    path = Path(out)
    if path.is_dir():
        raise DeployError(f"--out: {path} is a directory; give a file name")
    if path.exists() and not overwrite:
        raise DeployError(f"--out: {path} exists")
    data = _onnx_bytes(spec) if fmt == "onnx" else _torchscript_bytes(spec)
    sidecar = dict(spec.sidecar)
    sidecar["artefact"] = {
        "file": path.name,
        "format": fmt,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        **({"opset": ONNX_OPSET} if fmt == "onnx" else {}),
    }
    try:
        atomic_write_bytes(path, data)
        side = atomic_write_text(sidecar_path(path), json.dumps(sidecar, indent=2) + "\n")
    except OSError as exc:
        raise DeployError(f"--out: cannot write {path}: {exc.strerror or exc}") from None
    return path, side


def export_run(
    run_dir: str | Path,
    fmt: str,
    out: str | Path | None = None,
    *,
    checkpoint: str = "best",
    precision: str = "float64",
) -> tuple[Path, Path]:
    """What ``saferl export`` calls: load the run's checkpoint, export it, write the sidecar.

    Args:
        run_dir: a run directory (``runs/<name>``).
        fmt: ``onnx`` or ``torchscript``.
        out: output file (default ``<run_dir>/export/policy.onnx`` or ``.../policy.pt``).
        checkpoint: ``best`` (falls back to ``last``), ``last`` or a checkpoint file.
        precision: see :func:`build_module`.

    Raises:
        DeployError: any user error, one line (bad format/precision, not a run, unreadable
            checkpoint, missing optional packages).
    """
    if fmt not in FORMATS:
        raise DeployError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if precision not in PRECISIONS:
        raise DeployError(
            f"--precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}"
        )
    if fmt == "onnx":
        require("onnx")
        require("onnxscript")
    model = load_trained(run_dir, checkpoint)
    spec = build_module(model, precision)
    target = Path(out) if out is not None else Path(run_dir) / "export" / f"policy{FORMATS[fmt]}"
    return export_policy(spec, fmt, target)


def load_trained(run_dir: str | Path, checkpoint: str = "best") -> Any:
    """A run's :class:`~saferl.training.evaluation.Model`, user errors as :class:`DeployError`."""
    from saferl.config import ConfigError
    from saferl.registry import RegistryError
    from saferl.training.evaluation import EvaluationError, load_run_model

    try:
        return load_run_model(run_dir, checkpoint=checkpoint)
    except (EvaluationError, ConfigError, RegistryError) as exc:
        raise DeployError(str(exc)) from None
