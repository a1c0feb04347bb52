"""The runner's admin API, as the portal calls it: swap in a bundle, roll back, read the active model."""

from __future__ import annotations

import contextlib
from pathlib import Path

import requests

from marketplace.choices import ARTIFACT_FILE_NAMES, ArtifactKind

SWAP_TIMEOUT = 300
# The runner's PUT /model parts -> the bundle's files.
PARTS = {"model": ARTIFACT_FILE_NAMES[ArtifactKind.MODEL], "proto": ARTIFACT_FILE_NAMES[ArtifactKind.PROTO],
         "metadata": ARTIFACT_FILE_NAMES[ArtifactKind.METADATA]}


class RunnerError(Exception):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def swap(url: str, token: str, bundle: Path) -> dict:
    """PUT /model with the bundle's files: the runner checks the new model with its sample first."""
    with contextlib.ExitStack() as stack:
        files = {part: stack.enter_context(open(bundle / name, "rb")) for part, name in PARTS.items()}
        return _call("put", f"{url}/model", token, files=files)


def rollback(url: str, token: str, generation: int | None) -> dict:
    return _call("post", f"{url}/model/rollback", token, json={"generation": generation} if generation else None)


def active(url: str, timeout: float = SWAP_TIMEOUT) -> dict:
    return _call("get", f"{url}/model", "", timeout=timeout)


def call_method(url: str, method: str, body: dict, timeout: float = 30) -> dict:
    """A prediction, as a client would send it (the page's "try it" box)."""
    return _call("post", f"{url}/model/methods/{method}", "", json=body, timeout=timeout)


def _call(method: str, url: str, token: str, timeout: float = SWAP_TIMEOUT, **kwargs) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = requests.request(method, url, headers=headers, timeout=timeout, **kwargs)
    except requests.RequestException as exc:
        raise RunnerError(f"the runner at {url} could not be reached: {exc}") from exc
    if response.status_code >= 400:
        raise RunnerError(f"the runner refused: {_message(response)}", response.status_code)
    return response.json()


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:500]}"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return error.get("message") or str(error)
    return str(error or body)[:500]
