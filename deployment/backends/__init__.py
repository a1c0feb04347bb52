"""Deployment backends by target kind: BACKENDS names each kind's backend class. Adding a backend is
its module, with a class that follows base.Backend, and one line in BACKENDS.

A backend's module is imported when a target of its kind is first used, not when this package is:
the kubernetes client alone costs a process about 0.8 s and 40 MB, which the web and worker
processes of a portal with only local targets (the embedded default) never need."""

from __future__ import annotations

from django.utils.module_loading import import_string

from deployment.backends.base import Backend, BackendError, Placement
from deployment.choices import TargetKind

__all__ = ["BACKENDS", "Backend", "BackendError", "Placement", "backend_class", "backend_for", "check_options"]

BACKENDS: dict[str, str] = {
    TargetKind.LOCAL: "deployment.backends.local.LocalBackend",
    TargetKind.DOCKER: "deployment.backends.docker.DockerBackend",
    TargetKind.KUBERNETES: "deployment.backends.kubernetes.KubernetesBackend",
}


def backend_class(kind: str) -> type[Backend]:
    if kind not in BACKENDS:
        raise BackendError(f"targets of kind {kind!r} are not supported")
    return import_string(BACKENDS[kind])


def backend_for(target) -> Backend:
    backend = backend_class(target.kind)
    if backend.uses_secret:
        return backend(target.options, target.secret())
    return backend(target.options)


def check_options(kind: str, options: dict) -> None:
    """Refuse a target's options before they are saved: the message names the option, what is
    wrong and what is allowed (the same checks the backend makes when it is used). A kind with no
    backend has no options to check here: the form refuses the kind itself."""
    if kind in BACKENDS:
        backend_class(kind).check_options(options)
