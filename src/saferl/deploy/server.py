"""``saferl serve``: an exported policy behind a small HTTP JSON service (FastAPI + uvicorn).

Endpoints:

* ``POST /act`` (``Content-Type: application/json``)::

      {"obs": [..D floats..]}                              -> {"action": [..A floats..]}
      {"obs": [[..], [..]], "session": ["u1", "u2"]}       -> {"action": [[..], [..]]}
      {"obs": [..], "session": "u1", "reset": true}        (start a new episode for u1)

  A policy with ``obs_ema`` state needs a ``session`` id per observation (distinct within a
  request); the server keeps each session's averages, a session's first observation (or one
  with ``reset``) starts its episode. Stateless policies ignore ``session`` and ``reset``.
* ``DELETE /sessions/{id}``: forget a session.
* ``GET /health``, ``GET /metadata`` (the sidecar), ``GET /metrics`` (Prometheus text:
  requests by endpoint and status, ``/act`` latency histogram, observations, errors by reason,
  actions out of range, actions at the box bound per dimension, sessions held).

Bad requests get a 4xx and a JSON ``{"error": "..."}`` naming the problem: 400 malformed JSON,
413 body or batch over the limits, 415 not JSON, 422 wrong fields, shapes, types or non-finite
numbers. The handler validates before it touches the policy, so bad input cannot reach it.

The service binds 127.0.0.1 unless told otherwise; it has no authentication or TLS (put it
behind a proxy that has them before binding another address).
"""

import json
import logging
import signal
import socket
import threading
import time
from typing import Any

import numpy as np

from saferl.deploy.errors import DeployError, require
from saferl.deploy.runtime import PolicyRuntime, SessionStore

logger = logging.getLogger(__name__)

__all__ = ["RequestError", "create_app", "parse_act_request", "serve"]

_LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)
_MAX_SESSION_ID = 128
try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - part of the deploy extra
    _orjson = None
_ALLOWED_KEYS = {"obs", "session", "reset"}


class RequestError(Exception):
    """A bad request: HTTP ``status``, a one-line ``message`` and a metrics ``reason``."""

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason


def _fast_loads(body: bytes) -> Any:
    """orjson (strict JSON, ~10x faster than the standard library on a batch of numbers) when
    installed, else the standard parser."""
    if _orjson is not None:
        return _orjson.loads(body)
    return json.loads(body, parse_constant=_reject_constant)


def _reject_constant(name: str) -> float:
    # json.loads accepts NaN/Infinity literals, which JSON does not define
    raise RequestError(422, f"obs: {name} is not a finite number", "non_finite")


def _has_bool(obs: list[Any]) -> bool:
    for row in obs:
        if type(row) is bool:
            return True
        if type(row) is list and any(type(v) is bool for v in row):
            return True
    return False


def parse_act_request(
    body: bytes, obs_dim: int, max_batch: int, stateful: bool
) -> tuple[np.ndarray, bool, list[str] | None, list[bool] | None]:
    """Validate a ``/act`` body.

    Returns:
        ``(obs (B, obs_dim) float32, single, sessions or None, reset or None)``; ``single`` is
        true when ``obs`` was one observation (the reply is then one action).

    Raises:
        RequestError: the status and message for the client.
    """
    try:
        data = _fast_loads(body)
    except ValueError:
        # not strict JSON: the standard parser tells NaN/Infinity literals and overflowing
        # numbers (422, non-finite) from malformed text (400); only bad requests pay for it
        try:
            data = json.loads(body, parse_constant=_reject_constant)
        except RequestError:
            raise
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(400, f"malformed JSON: {exc}", "malformed_json") from None
    if not isinstance(data, dict):
        raise RequestError(422, "body: expected a JSON object with 'obs'", "bad_field")
    unknown = sorted(set(data) - _ALLOWED_KEYS)
    if unknown:
        raise RequestError(
            422,
            f"unknown field(s) {', '.join(map(repr, unknown))}; allowed: obs, session, reset",
            "bad_field",
        )
    if "obs" not in data:
        raise RequestError(422, "obs: missing (one observation or a list of them)", "bad_field")
    raw = data["obs"]
    if not isinstance(raw, list) or not raw:
        raise RequestError(
            422, f"obs: expected a list of {obs_dim} numbers or a list of such lists", "bad_shape"
        )
    single = not isinstance(raw[0], list)
    rows = 1 if single else len(raw)
    if rows > max_batch:
        raise RequestError(
            413,
            f"obs: batch of {rows} observations exceeds this server's limit {max_batch}",
            "too_large",
        )
    # the per-element scan only when the body has a JSON boolean somewhere (a C-speed search)
    if (b"true" in body or b"false" in body) and _has_bool(raw):
        raise RequestError(422, "obs: must be numbers, got true/false", "bad_dtype")
    try:
        arr = np.asarray(raw)
    except ValueError:
        raise RequestError(
            422, f"obs: rows must all have {obs_dim} numbers (ragged list)", "bad_shape"
        ) from None
    if arr.dtype.kind not in "iuf":
        raise RequestError(422, "obs: must contain numbers only", "bad_dtype")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != obs_dim:
        raise RequestError(
            422,
            f"obs: expected {obs_dim} numbers per observation (shape ({obs_dim},) or "
            f"(B, {obs_dim})), got shape {np.shape(raw)}",
            "bad_shape",
        )
    with np.errstate(over="ignore", invalid="ignore"):
        obs = arr.astype(np.float32)
    finite = np.isfinite(obs)
    if not finite.all():
        r, c = np.argwhere(~finite)[0]
        raise RequestError(
            422,
            f"obs: observation {r}, dim {c} is not a finite float32 ({float(arr[r, c])!r})",
            "non_finite",
        )
    sessions = _sessions(data.get("session"), rows, single, stateful)
    reset = _reset(data.get("reset"), rows, single)
    return obs, single, sessions, reset


def _sessions(value: Any, rows: int, single: bool, stateful: bool) -> list[str] | None:
    if value is None:
        if stateful:
            raise RequestError(
                422,
                "session: this policy keeps per-user state (obs_ema); give a session id "
                "(a list of ids, one per observation, for a batch)",
                "bad_field",
            )
        return None
    ids = [value] if single else value
    if not isinstance(ids, list) or len(ids) != rows:
        raise RequestError(
            422,
            "session: expected one id string"
            + ("" if single else f", or a list of {rows} id strings, one per observation"),
            "bad_field",
        )
    for s in ids:
        if not isinstance(s, str) or not 0 < len(s) <= _MAX_SESSION_ID:
            raise RequestError(
                422, f"session: ids are strings of 1 to {_MAX_SESSION_ID} characters", "bad_field"
            )
    if len(set(ids)) != len(ids):
        raise RequestError(422, "session: ids in one request must be distinct", "bad_field")
    return ids


def _reset(value: Any, rows: int, single: bool) -> list[bool] | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return [value] * rows
    if (
        not single
        and isinstance(value, list)
        and len(value) == rows
        and all(isinstance(v, bool) for v in value)
    ):
        return value
    raise RequestError(422, f"reset: expected true/false or a list of {rows} of them", "bad_field")


def _json_response(payload: Any, status: int = 200) -> Any:
    from starlette.responses import Response

    if _orjson is not None:
        text: bytes | str = _orjson.dumps(payload)
    else:
        text = json.dumps(payload, allow_nan=False, separators=(",", ":"))
    return Response(
        text,
        status_code=status,
        media_type="application/json",
    )


def create_app(
    runtime: PolicyRuntime,
    *,
    max_batch: int = 1024,
    max_body_bytes: int | None = None,
    max_sessions: int = 10_000,
) -> Any:
    """The FastAPI application serving ``runtime``.

    Args:
        runtime: the policy (:func:`saferl.deploy.load_policy` or
            :func:`saferl.deploy.policy_from_run`).
        max_batch: most observations per request (413 above).
        max_body_bytes: largest request body (413 above); default enough for ``max_batch``
            observations written with 17 significant digits.
        max_sessions: sessions kept (least recently used dropped first).
    """
    fastapi = require("fastapi")
    prom = require("prometheus_client")
    from starlette.requests import Request

    limit = max_body_bytes or (max_batch * runtime.obs_dim * 32 + 65536)
    store = SessionStore(runtime, max_sessions=max_sessions)
    registry = prom.CollectorRegistry()  # type: ignore[attr-defined]
    requests = prom.Counter(  # type: ignore[attr-defined]
        "saferl_requests",
        "HTTP requests by endpoint and status",
        ["endpoint", "status"],
        registry=registry,
    )
    latency = prom.Histogram(  # type: ignore[attr-defined]
        "saferl_act_latency_seconds",
        "Time to answer a valid /act request (parse, policy, reply)",
        buckets=_LATENCY_BUCKETS,
        registry=registry,
    )
    observations = prom.Counter(  # type: ignore[attr-defined]
        "saferl_observations", "Observations answered by /act", registry=registry
    )
    errors = prom.Counter(  # type: ignore[attr-defined]
        "saferl_errors", "Rejected /act requests by reason", ["reason"], registry=registry
    )
    out_of_range = prom.Counter(  # type: ignore[attr-defined]
        "saferl_actions_out_of_range",
        "Actions outside the action box or not finite (never expected: a broken artefact)",
        registry=registry,
    )
    at_bound = prom.Counter(  # type: ignore[attr-defined]
        "saferl_actions_at_bound",
        "Action components at the box bound (clipped or saturated), by action dimension",
        ["dim"],
        registry=registry,
    )
    sessions_gauge = prom.Gauge(  # type: ignore[attr-defined]
        "saferl_sessions", "Sessions held", registry=registry
    )
    sessions_gauge.set_function(lambda: len(store))
    act_names = list(runtime.spec["action"]["names"])
    started = time.time()

    app = fastapi.FastAPI(  # type: ignore[attr-defined]
        title="saferl policy", docs_url=None, redoc_url=None, openapi_url=None
    )

    def _error(exc: RequestError) -> Any:
        errors.labels(exc.reason).inc()
        requests.labels("/act", str(exc.status)).inc()
        return _json_response({"error": exc.message}, exc.status)

    async def _read_body(request: Request) -> bytes:
        ctype = request.headers.get("content-type", "")
        if ctype.split(";")[0].strip().lower() != "application/json":
            raise RequestError(
                415,
                f"Content-Type must be application/json, got {ctype or 'none'!r}",
                "content_type",
            )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RequestError(413, f"body of {declared} bytes exceeds {limit}", "too_large")
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"body exceeds {limit} bytes", "too_large")
            chunks.append(chunk)
        return b"".join(chunks)

    @app.post("/act")
    async def act(request: Request) -> Any:
        t0 = time.perf_counter()
        try:
            body = await _read_body(request)
            obs, single, sessions, reset = parse_act_request(
                body, runtime.obs_dim, max_batch, runtime.stateful
            )
        except RequestError as exc:
            return _error(exc)
        action = store.act(obs, sessions, reset)
        bad = ~np.isfinite(action) | (action < runtime.low) | (action > runtime.high)
        if bad.any():
            out_of_range.inc(int(bad.any(axis=1).sum()))
        edge = (action <= runtime.low) | (action >= runtime.high)
        if edge.any():
            for j in np.nonzero(edge.any(axis=0))[0]:
                at_bound.labels(act_names[j]).inc(int(edge[:, j].sum()))
        observations.inc(obs.shape[0])
        out = action[0].tolist() if single else action.tolist()
        response = _json_response({"action": out})
        latency.observe(time.perf_counter() - t0)
        requests.labels("/act", "200").inc()
        return response

    @app.delete("/sessions/{session}")
    async def drop_session(session: str) -> Any:
        if store.drop(session):
            requests.labels("/sessions", "200").inc()
            return _json_response({"dropped": session})
        requests.labels("/sessions", "404").inc()
        return _json_response({"error": f"session: no session {session[:64]!r}"}, 404)

    @app.get("/health")
    async def health() -> Any:
        requests.labels("/health", "200").inc()
        return _json_response(
            {
                "status": "ok",
                "policy": runtime.name,
                "backend": runtime.backend,
                "stateful": runtime.stateful,
                "obs_dim": runtime.obs_dim,
                "act_dim": runtime.act_dim,
                "sessions": len(store),
                "uptime_s": round(time.time() - started, 3),
            }
        )

    @app.get("/metadata")
    async def metadata() -> Any:
        requests.labels("/metadata", "200").inc()
        return _json_response(runtime.spec)

    @app.get("/metrics")
    async def metrics() -> Any:
        from starlette.responses import Response

        requests.labels("/metrics", "200").inc()
        return Response(
            prom.generate_latest(registry),  # type: ignore[attr-defined]
            media_type=prom.CONTENT_TYPE_LATEST,  # type: ignore[attr-defined]
        )

    app.state.sessions = store
    return app


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    runtime: PolicyRuntime,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_batch: int = 1024,
    max_sessions: int = 10_000,
) -> None:
    """Serve ``runtime`` until SIGINT/SIGTERM (uvicorn shuts down gracefully on both).

    Binds the socket first, then prints ``saferl serve: http://HOST:PORT ...`` on stdout (with
    ``port=0`` the system picks a free port and that line tells which).

    Raises:
        DeployError: ``host``/``port`` invalid or the address cannot be bound; the serving
            packages are missing.
    """
    uvicorn = require("uvicorn")
    if not 0 <= int(port) <= 65535:
        raise DeployError(f"--port: expected 0..65535, got {port}")
    app = create_app(runtime, max_batch=max_batch, max_sessions=max_sessions)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DeployError(f"--host: cannot resolve {host!r} ({exc.strerror})") from None
    family, kind, proto, _, addr = infos[0]
    # proto must be IPPROTO_TCP (not 0): asyncio sets TCP_NODELAY only on such sockets, and
    # without it every reply (headers and body written separately) waits ~40 ms for the
    # client's delayed ACK
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise DeployError(f"--port: cannot bind {host}:{port} ({exc.strerror or exc})") from None
    if not _is_loopback(host):
        logger.warning(
            "bound %s: the service has no authentication or TLS; anyone who can reach this "
            "address can drive the policy",
            host,
        )
    # listening before the address is announced: clients that connect while uvicorn starts
    # wait in the backlog instead of being refused
    sock.listen(2048)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(
        f"saferl serve: http://{shown}:{bound} ({runtime.name}, {runtime.backend}, "
        f"{'stateful' if runtime.stateful else 'stateless'})",
        flush=True,
    )
    config = uvicorn.Config(  # type: ignore[attr-defined]
        app, log_level="warning", access_log=False, timeout_graceful_shutdown=5, lifespan="off"
    )
    server = uvicorn.Server(config)  # type: ignore[attr-defined]

    def _stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal with the
    # previous handlers: these make that a clean exit (status 0, no traceback)
    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        with runtime.threads_context():
            server.run(sockets=[sock])
    except SystemExit:
        pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sock.close()
    print("saferl serve: stopped", flush=True)
