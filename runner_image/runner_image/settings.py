"""Runner settings: every value from a RUNNER_* environment variable, with a safe default."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
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


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()


def admin_token_sha256() -> str:
    """RUNNER_ADMIN_TOKEN_SHA256 (what the portal gives its runners), else the hash of
    RUNNER_ADMIN_TOKEN (what a person running the image by hand sets)."""
    hashed = os.environ.get("RUNNER_ADMIN_TOKEN_SHA256", "").strip().lower()
    if hashed:
        if not re.fullmatch(r"[0-9a-f]{64}", hashed):
            raise SystemExit("RUNNER_ADMIN_TOKEN_SHA256 must be a sha256 in hex (64 characters 0-9a-f)")
        return hashed
    token = os.environ.get("RUNNER_ADMIN_TOKEN", "").strip()
    return token_sha256(token) if token else ""


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
    metrics_multiproc: bool = field(default=False)

    @classmethod
    def from_env(cls) -> Settings:
        state = os.environ.get("RUNNER_STATE_DIR", "").strip()
        if not state:
            raise SystemExit("RUNNER_STATE_DIR is not set (the serve command sets it)")
        return cls(
            state_dir=Path(state),
            admin_token_sha256=admin_token_sha256(),
            max_request_bytes=_env_int("RUNNER_MAX_REQUEST_BYTES", 16 << 20),
            max_upload_bytes=_env_int("RUNNER_MAX_UPLOAD_BYTES", 1 << 30),
            max_package_bytes=_env_int("RUNNER_MAX_PACKAGE_BYTES", 4 << 30),
            keep_generations=max(2, _env_int("RUNNER_KEEP_GENERATIONS", 5)),
            swap_timeout=_env_float("RUNNER_SWAP_TIMEOUT", 300.0),
            poll_interval=_env_float("RUNNER_POLL_INTERVAL", 0.02),
            metrics_multiproc=bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR")),
        )
