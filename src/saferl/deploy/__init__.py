"""Deployment: a trained run as a self-contained policy file, and an HTTP service for it.

* :func:`export_run` (``saferl export``): TorchScript or ONNX of the deterministic policy of the
  raw observation (normaliser folded in, actions clipped to the box, ``obs_ema`` as explicit
  state), plus a JSON sidecar with the layouts, env, wrappers, hashes and versions;
* :func:`load_policy` / :func:`policy_from_run`: run it (ONNX Runtime, TorchScript, torch);
* :func:`load_exported_model`: an exported file as an evaluation model (A/B against its run);
* :func:`create_app` / :func:`serve` (``saferl serve``): ``/act``, ``/health``, ``/metadata``,
  ``/metrics`` on 127.0.0.1.

ONNX export and runtime, and the service, need the ``deploy`` extra
(``pip install 'saferl[deploy]'``); TorchScript needs only torch. Heavy modules load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from saferl.deploy.errors import DeployError

_LAZY = {
    "FORMATS": "saferl.deploy.export:FORMATS",
    "build_module": "saferl.deploy.export:build_module",
    "export_policy": "saferl.deploy.export:export_policy",
    "export_run": "saferl.deploy.export:export_run",
    "sidecar_path": "saferl.deploy.export:sidecar_path",
    "PolicyRuntime": "saferl.deploy.runtime:PolicyRuntime",
    "SessionStore": "saferl.deploy.runtime:SessionStore",
    "ExportedEvalPolicy": "saferl.deploy.runtime:ExportedEvalPolicy",
    "load_policy": "saferl.deploy.runtime:load_policy",
    "policy_from_run": "saferl.deploy.runtime:policy_from_run",
    "load_exported_model": "saferl.deploy.runtime:load_exported_model",
    "create_app": "saferl.deploy.server:create_app",
    "serve": "saferl.deploy.server:serve",
}

__all__ = ["DeployError", *_LAZY]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'saferl.deploy' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value
