"""Deployment backends by target kind."""

from __future__ import annotations

from deployment.backends.base import Backend, BackendError, Placement
from deployment.choices import TargetKind

__all__ = ["Backend", "BackendError", "Placement", "backend_for"]


def backend_for(target) -> Backend:
    if target.kind == TargetKind.LOCAL:
        from deployment.backends.local import LocalBackend

        return LocalBackend(target.options)
    raise BackendError(f"targets of kind {target.kind!r} are not supported yet")
