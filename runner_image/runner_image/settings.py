"""Runner settings: every value from a RUNNER_* environment variable, with a safe default; and the
runner's log set-up (RUNNER_LOG_LEVEL), which the serve command and every worker it spawns share."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from None


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from None


def _env_number(name: str, default, floor=None):
    """A RUNNER_* number, read as the default's type (int or float), raised to `floor` if below it."""
    value = _env_float(name, default) if isinstance(default, float) else _env_int(name, default)
    return value if floor is None else max(floor, value)


def _defaults(cls) -> dict:
    """The defaults a settings dataclass declares, by field name: the one place each is written."""
    return {f.name: f.default for f in fields(cls)}


def log_level() -> str:
    return os.environ.get("RUNNER_LOG_LEVEL", "info")


def configure_logging() -> None:
    """Set up the runner's log lines once per process (uvicorn's spawned workers call it too)."""
    level = log_level().upper()
    logging.basicConfig(level=getattr(logging, level, logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s")


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()


MIN_TOKEN_LENGTH = 24
MIN_TOKEN_DISTINCT = 8
_TOKEN_ADVICE = 'make one with: python3 -c "import secrets; print(secrets.token_urlsafe(32))"'


def weak_token_reason(token: str) -> str | None:
    """Why `token` is too weak to guard the runner's changes, or None. Length and variety are all a
    runner can check; a random token (secrets.token_urlsafe(32): 43 characters) always passes."""
    if len(token) < MIN_TOKEN_LENGTH:
        return f"it has {len(token)} characters"
    distinct = len(set(token))
    if distinct < MIN_TOKEN_DISTINCT:
        return f"it uses only {distinct} different characters"
    return None


def admin_token_sha256() -> str:
    """RUNNER_ADMIN_TOKEN_SHA256 (what the portal gives its runners), else the hash of
    RUNNER_ADMIN_TOKEN (what a person running the image by hand sets), which must be strong.

    A hash cannot be checked for strength, and need not be: it is what the portal gives the runners
    it starts, for tokens it makes with secrets.token_urlsafe(32)."""
    hashed = os.environ.get("RUNNER_ADMIN_TOKEN_SHA256", "").strip().lower()
    if hashed:
        if not re.fullmatch(r"[0-9a-f]{64}", hashed):
            raise SystemExit("RUNNER_ADMIN_TOKEN_SHA256 must be a sha256 in hex (64 characters 0-9a-f)")
        return hashed
    token = os.environ.get("RUNNER_ADMIN_TOKEN", "").strip()
    if not token:
        return ""
    reason = weak_token_reason(token)
    if reason:
        raise SystemExit(f"RUNNER_ADMIN_TOKEN is too weak: {reason}. The runner needs at least {MIN_TOKEN_LENGTH} "
                         f"characters, {MIN_TOKEN_DISTINCT} or more of them different; {_TOKEN_ADVICE} "
                         "(or leave it unset, and the runner refuses every change)")
    return token_sha256(token)


@dataclass(frozen=True)
class HttpLimits:
    """How long a client may take to send a request; see runner_image.httpguard."""

    header_timeout: float = 10.0
    """Seconds from the connection (or the first byte of a request after another) to the end of its headers."""
    body_timeout: float = 30.0
    """Seconds a request body may take, plus one more per `body_min_rate` bytes received."""
    body_min_rate: int = 16 << 10
    """Bytes per second a long upload must keep up to be given more time."""
    limit_concurrency: int | None = None
    """uvicorn's cap on open connections and tasks (503 beyond); off by default, see cli._run_uvicorn."""

    @classmethod
    def from_env(cls) -> HttpLimits:
        default = _defaults(cls)
        limits = cls(header_timeout=_env_number("RUNNER_HEADER_TIMEOUT", default["header_timeout"]),
                     body_timeout=_env_number("RUNNER_BODY_TIMEOUT", default["body_timeout"]),
                     body_min_rate=_env_number("RUNNER_BODY_MIN_RATE", default["body_min_rate"]),
                     limit_concurrency=_env_int("RUNNER_LIMIT_CONCURRENCY", 0) or None)  # 0: off, as unset
        for name, value in (("RUNNER_HEADER_TIMEOUT", limits.header_timeout),
                            ("RUNNER_BODY_TIMEOUT", limits.body_timeout),
                            ("RUNNER_BODY_MIN_RATE", limits.body_min_rate)):
            if value <= 0:
                raise SystemExit(f"{name} must be above 0, got {value}")
        return limits


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    admin_token_sha256: str = ""
    """The sha256 (hex) of the bearer token every endpoint that changes the runner asks for; empty
    means changes are refused. Only the hash is kept: the model runs in this process and can read
    whatever the runner holds, so a runner that is given the hash has no token for it to find."""
    max_request_bytes: int = 16 << 20
    """Largest predict/convert request body."""
    max_upload_bytes: int = 1 << 30
    """Largest admin upload (a model package)."""
    max_package_bytes: int = 4 << 30
    """Largest total size a model package may expand to."""
    keep_generations: int = 5
    """Swapped-out models kept on disk for rollback."""
    swap_timeout: float = 300.0
    """Seconds a swap waits for every worker to load and switch."""
    poll_interval: float = 0.02
    """How often a worker looks for a swap started by another worker."""
    swap_priority_ms: float = 100.0
    """Milliseconds, at most, a worker's event loop stands aside while a swap's steps run in it (runner_image.gil):
    requests wait that long at most, none fails; 0 shares the CPU between the swap and the requests throughout."""
    batch_max_rows: int = 64
    """Most requests one model call answers together (runner_image.batching); 1 turns batching off."""
    statistics: int = 1
    """Drift statistics and feedback (runner_image.stats, runner_image.feedback): 1 on, 0 off."""
    stats_window_seconds: float = 60.0
    """The length of a statistics window (tumbling, aligned on the epoch so every worker's windows line up)."""
    stats_windows: int = 60
    """Statistics windows kept (the last ones); older windows are deleted."""
    stats_top_k: int = 50
    """Distinct values counted per categorical field and window; the rest count as "other"."""
    stats_flush_interval: float = 0.5
    """How often, at most, a worker writes its current statistics window for the others to read."""
    feedback_keep_answers: int = 100_000
    """Recent answers kept for feedback to join (all workers together)."""
    feedback_max_age: float = 86_400.0
    """Seconds an answer stays joinable by feedback."""
    max_proto_bytes: int = 1 << 20
    """Largest .proto a request may carry (a caller's own on /getBinary*, or a swap's)."""
    proto_compile_concurrency: int = 1
    """Caller protos compiled at once by each worker process; one leaves a core to the predictions."""
    proto_compile_wait: float = 10.0
    """Seconds a caller proto waits for a free compile slot before a 503 with Retry-After."""
    proto_cache_bytes: int = 4 << 20
    """Compiled protos kept per process, counted in bytes of their descriptors (protos.ProtoCache)."""
    proto_compile_nice: int = 10
    """How much lower the compile process's CPU priority is than the server's."""
    shadow_queue_size: int = 64
    """Requests waiting for a shadow candidate in each worker (runner_image.variants); beyond, dropped and counted."""
    shadow_queue_bytes: int = 32 << 20
    """Bytes those requests and the live answers kept to compare them with may hold in each worker."""
    metrics_multiproc: bool = field(default=False)
    grpc_port: int = 0
    """gRPC's port in every worker (runner_image.grpc_server); 0: no gRPC. `serve` sets it from --grpc-port
    (default 3331); an app made in-process (the tests) has none unless asked."""
    grpc_host: str = "127.0.0.1"
    """The address gRPC listens on: the HTTP --host (RUNNER_HOST)."""
    grpc_max_concurrent_rpcs: int = 64
    """gRPC calls a worker holds at once; beyond, RESOURCE_EXHAUSTED. With messages of at most
    max_request_bytes, this bounds what gRPC callers can make a worker hold."""
    require_entitlement: bool = False
    """Every prediction takes a unit from a signed entitlement (runner_image.meter); off, nothing is metered."""
    deployment_id: str = ""
    """The deployment an entitlement must name to be installed here."""
    entitlement_keys: dict = field(default_factory=dict)
    """kid -> raw Ed25519 public key (32 bytes): the portal keys whose entitlements this runner accepts."""

    @classmethod
    def from_env(cls) -> Settings:
        state = os.environ.get("RUNNER_STATE_DIR", "").strip()
        if not state:
            raise SystemExit("RUNNER_STATE_DIR is not set (the serve command sets it)")
        default = _defaults(cls)
        tuned = {name: _env_number(variable, default[name], floor) for name, (variable, floor) in _VARIABLES.items()}
        return cls(state_dir=Path(state), admin_token_sha256=admin_token_sha256(),
                   metrics_multiproc=bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR")),
                   grpc_host=os.environ.get("RUNNER_HOST", "").strip() or default["grpc_host"],
                   **entitlement_settings(), **tuned)


def entitlement_settings() -> dict:
    """RUNNER_REQUIRE_ENTITLEMENT, RUNNER_DEPLOYMENT_ID and RUNNER_ENTITLEMENT_KEYS as Settings fields.
    The serve command calls it before any worker starts, so a bad value stops the runner once, clearly."""
    required = _env_bool("RUNNER_REQUIRE_ENTITLEMENT")
    deployment = os.environ.get("RUNNER_DEPLOYMENT_ID", "").strip()
    keys = entitlement_keys(os.environ.get("RUNNER_ENTITLEMENT_KEYS", ""))
    if required and not (deployment and keys):
        raise SystemExit("RUNNER_REQUIRE_ENTITLEMENT=1 needs RUNNER_DEPLOYMENT_ID and RUNNER_ENTITLEMENT_KEYS "
                         "(else no entitlement could ever be installed and every prediction would be refused)")
    return {"require_entitlement": required, "deployment_id": deployment, "entitlement_keys": keys}


def _env_bool(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SystemExit(f"{name} must be 1 or 0, got {raw!r}")


def entitlement_keys(raw: str) -> dict[str, bytes]:
    """RUNNER_ENTITLEMENT_KEYS: JSON {kid: base64 of a raw 32-byte Ed25519 public key}. The kid must be
    the first 16 hex of the key's sha256 (how the portal names its keys), which catches a key pasted
    under the wrong kid at start-up rather than as a refused signature later."""
    if not raw.strip():
        return {}
    try:
        given = json.loads(raw)
    except ValueError as exc:
        raise SystemExit(f"RUNNER_ENTITLEMENT_KEYS is not JSON: {exc}") from None
    if not isinstance(given, dict):
        raise SystemExit('RUNNER_ENTITLEMENT_KEYS must be a JSON object {"<kid>": "<base64 public key>"}')
    return {kid: _public_key(kid, value) for kid, value in given.items()}


def _public_key(kid: str, value) -> bytes:
    try:
        key = base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise SystemExit(f"RUNNER_ENTITLEMENT_KEYS[{kid!r}] is not base64") from None
    if len(key) != 32:
        raise SystemExit(f"RUNNER_ENTITLEMENT_KEYS[{kid!r}] is {len(key)} bytes; an Ed25519 public key is 32")
    expected = hashlib.sha256(key).hexdigest()[:16]
    if kid != expected:
        raise SystemExit(f"RUNNER_ENTITLEMENT_KEYS: the kid of this key is {expected!r}, not {kid!r} "
                         "(the first 16 hex of the raw public key's sha256)")
    return key


# The Settings fields a RUNNER_* variable sets, and the least value each may take (None: no floor).
_VARIABLES = {
    "max_request_bytes": ("RUNNER_MAX_REQUEST_BYTES", None),
    "max_upload_bytes": ("RUNNER_MAX_UPLOAD_BYTES", None),
    "max_package_bytes": ("RUNNER_MAX_PACKAGE_BYTES", None),
    "keep_generations": ("RUNNER_KEEP_GENERATIONS", 2),
    "swap_timeout": ("RUNNER_SWAP_TIMEOUT", None),
    "poll_interval": ("RUNNER_POLL_INTERVAL", None),
    "swap_priority_ms": ("RUNNER_SWAP_PRIORITY_MS", 0),
    "batch_max_rows": ("RUNNER_BATCH_MAX_ROWS", 1),
    "statistics": ("RUNNER_STATISTICS", 0),
    "stats_window_seconds": ("RUNNER_STATS_WINDOW_SECONDS", 0.1),
    "stats_windows": ("RUNNER_STATS_WINDOWS", 2),
    "stats_top_k": ("RUNNER_STATS_TOP_K", 1),
    "stats_flush_interval": ("RUNNER_STATS_FLUSH_INTERVAL", 0.0),
    "feedback_keep_answers": ("RUNNER_FEEDBACK_KEEP_ANSWERS", 1),
    "feedback_max_age": ("RUNNER_FEEDBACK_MAX_AGE", 1.0),
    "max_proto_bytes": ("RUNNER_MAX_PROTO_BYTES", None),
    "proto_compile_concurrency": ("RUNNER_PROTO_COMPILE_CONCURRENCY", 1),
    "proto_compile_wait": ("RUNNER_PROTO_COMPILE_WAIT", 0.0),
    "proto_cache_bytes": ("RUNNER_PROTO_CACHE_BYTES", 0),
    "proto_compile_nice": ("RUNNER_PROTO_COMPILE_NICE", 0),
    "grpc_port": ("RUNNER_GRPC_PORT", 0),
    "grpc_max_concurrent_rpcs": ("RUNNER_GRPC_MAX_CONCURRENT_RPCS", 1),
    "shadow_queue_size": ("RUNNER_SHADOW_QUEUE_SIZE", 1),
    "shadow_queue_bytes": ("RUNNER_SHADOW_QUEUE_BYTES", 0),
}
