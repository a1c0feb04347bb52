"""Typed environment helpers for settings: a wrong value stops start-up with a clear message."""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = env_str(name).lower()
    if not raw:
        return default
    if raw in _TRUE | _FALSE:
        return raw in _TRUE
    raise ImproperlyConfigured(f"{name} must be one of {sorted(_TRUE | _FALSE)}, got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = env_str(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = env_str(name)
    return [part.strip() for part in raw.split(",") if part.strip()] if raw else default


def env_secret(name: str, default_file: Path) -> str:
    """From NAME, or the file named by NAME_FILE, or a key generated once into `default_file` (dev)."""
    if env_str(name):
        return env_str(name)
    if env_str(f"{name}_FILE"):
        return Path(env_str(f"{name}_FILE")).read_text().strip()
    if not default_file.exists():
        from django.core.management.utils import get_random_secret_key

        default_file.parent.mkdir(parents=True, exist_ok=True)
        # Made readable by its owner only from the first byte (a write, then a chmod, leaves a moment).
        try:
            fd = os.open(default_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it a moment ago: theirs is the one
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(get_random_secret_key())
    return default_file.read_text().strip()
