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
    status, content = _fetch(method, url, token, timeout, deadline, **kwargs)
    if status == 204:  # done, nothing to say (a DELETE may answer so)
        return {}
    try:
        return json.loads(content)
    except (ValueError, RecursionError) as exc:
        raise RunnerError("the runner answered something that is not JSON", status) from exc


def _fetch(method: str, url: str, token: str, timeout: float, deadline: float | None, **kwargs) -> tuple[int, bytes]:
    """The status and bytes of a runner's answer that is neither a redirect nor an error."""
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
        raise RunnerError(f"the runner refused: {error_message(content, response.status_code)}", response.status_code)
    return response.status_code, content


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


def error_message(content: bytes, status: int) -> str:
    """What a runner's error answer says (its OIP or Acumos error shape), or its first bytes."""
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        return f"HTTP {status}: {content[:500].decode(errors='replace')}"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)[:500]
    return str(error or body)[:500]


# ---------------------------------------------------------------- reading a runner's figures (monitoring)

# The monitoring round reads every live runner each interval: one that does not answer soon is counted as
# not answering this round, and the round goes on (a slow runner must not hold the others' figures back).
READ_TIMEOUT = 5


def statistics(url: str, token: str, *, windows: int | None = None, timeout: float = READ_TIMEOUT) -> dict:
    """GET /model/statistics: per method, generation and variant, requests per window and per field
    summaries (count, mean, quantiles, counted values) over the last `windows` windows (all kept: None)."""
    return _read(url, "/model/statistics", token, timeout, windows=windows)


def drift(url: str, token: str, *, windows: int | None = None, timeout: float = READ_TIMEOUT) -> dict:
    """GET /model/statistics/drift against the runner's default reference (a posted set, else the first full
    window of the generation): {window_seconds, thresholds, groups: [{method, generation, variant, reference,
    dataset_drift, inputs: {field: score}, outputs: {...}}]}; `windows` current windows (the runner's 2: None)."""
    return _read(url, "/model/statistics/drift", token, timeout, windows=windows)


def quality(url: str, token: str, timeout: float = READ_TIMEOUT) -> dict:
    """GET /model/quality: {feedback: {joined, duplicate, unknown}, groups: [{method, generation, variant,
    fields: {field: {metric: accuracy|mae, count, accuracy | mae, rmse}}}]}, from the feedback joined so far."""
    return _read(url, "/model/quality", token, timeout)


def candidate(url: str, token: str, timeout: float = READ_TIMEOUT) -> dict:
    """GET /model/candidate: {candidate: description or None (the current one, or the last and how it ended),
    live: {generation, name}, metrics: {variant: {requests, errors, latency_ms: {p50, p99}, and for a shadow
    compared, agreed, agreement_rate}} (the candidate's counts since it was set, all workers), workers}."""
    return _read(url, "/model/candidate", token, timeout)


def metrics(url: str, timeout: float = READ_TIMEOUT) -> str:
    """GET /metrics (public): the Prometheus text, every worker merged by the runner (multiprocess mode):
    runner_requests_total{route,status} and the runner_request_seconds{route} histogram among the rest."""
    _, content = _fetch("get", f"{url}/metrics", "", timeout, time.monotonic() + timeout)
    return content.decode("utf-8", errors="replace")


def _read(url: str, path: str, token: str, timeout: float, **params) -> dict:
    """A read of the admin API, bounded as a whole by `timeout` (a runner that trickles its answer counts as
    not answering, like one that is silent)."""
    query = {name: value for name, value in params.items() if value is not None}
    return _call("get", f"{url}{path}", token, timeout=timeout, deadline=time.monotonic() + timeout, params=query)



# ---------------------------------------------------------------- a candidate beside the live model (rollouts)

# A candidate's parts (runner_image.variants_api.UPLOAD_PARTS): the model, and the proto only to say it is the
# live one (the runner refuses a different one with 409 before loading anything). No metadata: a candidate
# answers as the live model does.
CANDIDATE_PARTS = {"model": PARTS["model"], "proto": PARTS["proto"]}


def set_candidate(url: str, token: str, *, generation: int | None = None, bundle: Path | None = None,
                  mode: str, weight: float, sticky: bool = False) -> dict:
    """PUT /model/candidate: the bundle's model (multipart, checked with its sample like a swap), or a kept
    `generation` (JSON), held by every worker beside the live model as a `mode` ("canary" or "shadow")
    answering `weight` % of the requests. Answers the runner's description: {candidate: {id, generation,
    mode, weight, state, ...}, live: {generation, name}, ...}. A candidate whose proto is not the live one
    byte for byte, or a second candidate, is a RunnerError with 409."""
    if (generation is None) == (bundle is None):
        raise ValueError("send either a bundle or a kept generation")
    if generation is not None:
        return _call("put", f"{url}/model/candidate", token,
                     json={"generation": generation, "mode": mode, "weight": weight, "sticky": sticky})
    with contextlib.ExitStack() as stack:
        files = {part: stack.enter_context(open(bundle / name, "rb")) for part, name in CANDIDATE_PARTS.items()}
        return _call("put", f"{url}/model/candidate", token, files=files,
                     data={"mode": mode, "weight": str(weight), "sticky": "true" if sticky else "false"})


def change_candidate(url: str, token: str, **changes) -> dict:
    """PATCH /model/candidate with {weight?, mode?, sticky?}: every worker follows before it answers."""
    return _call("patch", f"{url}/model/candidate", token, json=changes)


def promote_candidate(url: str, token: str) -> dict:
    """POST /model/candidate/promote: the candidate becomes the live model (a swap with no second load).
    Answers the history entry: {generation, previous_generation, action: "promote", duration_ms, ...}."""
    return _call("post", f"{url}/model/candidate/promote", token)


def abort_candidate(url: str, token: str) -> dict:
    """DELETE /model/candidate: every worker drops it; the live model never stopped answering. A runner with
    no candidate (it was dropped by a swap, or never set) answers 404."""
    return _call("delete", f"{url}/model/candidate", token)
