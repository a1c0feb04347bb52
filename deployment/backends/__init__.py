"""Deployment backends by target kind. Each is imported only when a target of its kind is used, so
the embedded default needs neither the docker nor the kubernetes client loaded."""

from __future__ import annotations

from deployment.backends.base import Backend, BackendError, Placement
from deployment.choices import TargetKind

__all__ = ["Backend", "BackendError", "Placement", "backend_for", "check_options"]


def backend_for(target) -> Backend:
    if target.kind == TargetKind.LOCAL:
        from deployment.backends.local import LocalBackend

        return LocalBackend(target.options)
    if target.kind == TargetKind.DOCKER:
        from deployment.backends.docker import DockerBackend

        return DockerBackend(target.options, target.secret())
    if target.kind == TargetKind.KUBERNETES:
        from deployment.backends.kubernetes import KubernetesBackend

        return KubernetesBackend(target.options, target.secret())
    raise BackendError(f"targets of kind {target.kind!r} are not supported")


def check_options(kind: str, options: dict) -> None:
    """Refuse a target's options before they are saved: the message names the option, what is
    wrong and what is allowed (the same checks the backend makes when it is used)."""
    if kind == TargetKind.DOCKER:
        from deployment.backends.docker import parse_options

        parse_options(options)
    elif kind == TargetKind.KUBERNETES:
        from deployment.backends.kubernetes import check_options as check_kubernetes
        from deployment.manifests import BadOptions

        try:
            check_kubernetes(options)
        except BadOptions as exc:
            raise BackendError(str(exc)) from exc
    elif kind == TargetKind.LOCAL:
        from deployment.backends.local import check_options as check_local

        check_local(options)
