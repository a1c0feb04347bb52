"""The runner's admin API, as the portal calls it: swap in a bundle, roll back, read the active model,
install, drop and read the use of an entitlement (a licensed model's metering)."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import requests
import urllib3

from marketplace.choices import ARTIFACT_FILE_NAMES, ArtifactKind

SWAP_TIMEOUT = 300
# Telling runners of a revocation happens in the revoking request, after commit: a runner that does not
# answer soon is left to its entitlement's expiry.
REVOKE_TIMEOUT = 5
# Installing an entitlement and reading its use: the status check does both for every metered runner,
# so one that does not answer soon waits for the next check.
METER_TIMEOUT = 10
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


def delete_entitlement(url: str, token: str, timeout: float = REVOKE_TIMEOUT) -> dict:
    """DELETE /model/entitlement: the runner drops its entitlement at once (an agreement was revoked)
    and refuses predictions with `right_to_use_revoked` until a new one is installed."""
    return _call("delete", f"{url}/model/entitlement", token, timeout=timeout)


def put_entitlement(url: str, token: str, document: dict, timeout: float = METER_TIMEOUT) -> dict:
    """PUT /model/entitlement: the runner verifies the signed document (this site's key, this deployment,
    not expired, not older than the one it holds) and meters predictions by it. Answers {id, predictions,
    not_after}; a document it refuses is a RunnerError with the runner's 4xx."""
    return _call("put", f"{url}/model/entitlement", token, json=document, timeout=timeout)


def usage(url: str, token: str, timeout: float = METER_TIMEOUT) -> dict:
    """GET /model/usage: {metered, entitlement, used, refused, limit, previous: [{id, used}]}, what the
    installed document has used and the final use of those it replaced."""
    return _call("get", f"{url}/model/usage", token, timeout=timeout)


def active(url: str, timeout: float = SWAP_TIMEOUT) -> dict:
    return _call("get", f"{url}/model", "", timeout=timeout)


def call_method(url: str, method: str, body: dict, timeout: float = 30) -> dict:
    """A prediction, as a client would send it (the page's "try it" box). `timeout` bounds the whole
    answer, not only each read: a model that trickles its answer holds a web thread no longer."""
    return _call("post", f"{url}/model/methods/{method}", "", json=body, timeout=timeout,
                 deadline=time.monotonic() + timeout)


ANSWER_LIMIT = 1024 * 1024  # a runner's answer the portal reads at most: more is refused, not held in memory


def _call(method: str, url: str, token: str, timeout: float = SWAP_TIMEOUT, deadline: float | None = None,
          **kwargs) -> dict:
    """One request to a runner, which runs a stranger's code: its redirects are not followed (the portal
    would fetch whatever address the model names, and show the answer), and its answer must be JSON of
    at most ANSWER_LIMIT bytes."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with requests.request(method, url, headers=headers, timeout=timeout, allow_redirects=False,
                              stream=True, **kwargs) as response:
            content = _read_capped(response, deadline)
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:  # the latter: reading the body raw
        raise RunnerError(f"the runner at {url} could not be reached: {exc}") from exc
    if 300 <= response.status_code < 400:
        raise RunnerError(f"the runner answered a redirect (HTTP {response.status_code}); a runner answers itself",
                          response.status_code)
    if response.status_code >= 400:
        raise RunnerError(f"the runner refused: {_message(content, response.status_code)}", response.status_code)
    if response.status_code == 204:  # done, nothing to say (a DELETE may answer so)
        return {}
    try:
        return json.loads(content)
    except (ValueError, RecursionError) as exc:
        raise RunnerError("the runner answered something that is not JSON", response.status_code) from exc


def _read_capped(response: requests.Response, deadline: float | None) -> bytes:
    """The answer's bytes as they arrive (read1: what the socket has, not a full block), so that the
    deadline is checked between arrivals however slowly a model trickles its answer."""
    chunks, size = [], 0
    while chunk := response.raw.read1(64 * 1024, decode_content=True):
        if deadline is not None and time.monotonic() > deadline:
            raise RunnerError("the runner did not finish its answer in time")
        size += len(chunk)
        if size > ANSWER_LIMIT:
            raise RunnerError(f"the runner's answer is larger than {ANSWER_LIMIT // 1024} KiB", response.status_code)
        chunks.append(chunk)
    return b"".join(chunks)


def _message(content: bytes, status: int) -> str:
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        return f"HTTP {status}: {content[:500].decode(errors='replace')}"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)[:500]
    return str(error or body)[:500]
