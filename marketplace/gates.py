"""Where a floor that must hear of a rule above it asks for it (the README's registry rule): every
download asks the gate licensing registers in its ready(). No gate is a configuration error, never an
open door: downloads fail closed."""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import ImproperlyConfigured

DownloadGate = Callable[..., None]
_download_gate: list[DownloadGate] = []


def register_download_gate(gate: DownloadGate) -> None:
    """`gate(user, revision, artifact, kind)` raises a Refused to deny; called inside begin_download's
    transaction, so what it consumes is kept only with the download."""
    if _download_gate and _download_gate[0] is not gate:
        raise ImproperlyConfigured("a download gate is registered already: there is one")
    _download_gate[:] = [gate]


def check_download(user, revision, artifact, kind: str) -> None:
    if not _download_gate:
        raise ImproperlyConfigured("no download gate is registered (is the licensing app installed?)")
    _download_gate[0](user, revision, artifact, kind)
