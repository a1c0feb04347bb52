"""`python -m runner_image push <bundle dir> --url <portal> [--token <token>]`.

Sends a bundle exactly as the Acumos python client does (POST <portal>/onboarding-app/v2/models,
multipart `model`, `metadata`, `schema`[, `license`], header `Authorization: <token>`), prints the
answer, then follows the onboarding job (GET <portal>/api/v1/onboarding/jobs/<taskId>) and prints
each step as it finishes. Standard library only: this runs wherever the runner runs.

Exit status: 0 onboarded, 1 the pipeline failed (the failing step's error is printed),
2 bad usage, unreachable portal, or an HTTP error (the server's message is printed)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

PUSH_PATH = "/onboarding-app/v2/models"
AUTH_PATH = "/onboarding-app/v2/auth"
JOB_PATH = "/api/v1/onboarding/jobs/{}"
CHUNK = 1 << 20
DONE = ("succeeded", "failed")
STEP_DONE = ("succeeded", "failed", "skipped")

# (part, the files that may hold it in a bundle dir, the name and type the Acumos client sends)
PARTS = (
    ("model", ("modelpackage.zip", "model.zip"), "model.zip", "application/zip"),
    ("metadata", ("metadata.json",), "metadata.json", "application/json"),
    ("schema", ("model.proto",), "model.proto", "text/plain"),
    ("license", ("license.json",), "license.json", "application/json"),
)
REQUIRED = ("model", "metadata", "schema")


class PushError(Exception):
    """Anything that stops a push before the pipeline has an outcome (exit status 2)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Pushed:
    solution_id: str
    revision_id: str
    version: str
    name: str
    task_id: str
    tracking_id: str


# ---------------------------------------------------------------- the bundle as multipart

@dataclass(frozen=True)
class Part:
    name: str
    filename: str
    content_type: str
    path: Path


def bundle_parts(bundle: Path) -> list[Part]:
    if not bundle.is_dir():
        raise PushError(f"{bundle} is not a directory (expected one with metadata.json, model.proto, "
                        "modelpackage.zip)")
    parts, missing = [], []
    for name, candidates, filename, content_type in PARTS:
        found = next((bundle / c for c in candidates if (bundle / c).is_file()), None)
        if found is not None:
            parts.append(Part(name, filename, content_type, found))
        elif name in REQUIRED:
            missing.append(" or ".join(candidates))
    if missing:
        raise PushError(f"{bundle} lacks {', '.join(missing)}")
    return parts


class MultipartBody:
    """multipart/form-data streamed from the files (never whole in memory), with a known length."""

    def __init__(self, parts: list[Part]):
        self.boundary = uuid.uuid4().hex
        self.parts = parts
        self.heads = [self._head(p) for p in parts]
        self.tail = f"--{self.boundary}--\r\n".encode()
        self.length = sum(len(h) + p.path.stat().st_size + 2 for h, p in zip(self.heads, parts, strict=True))
        self.length += len(self.tail)

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def _head(self, part: Part) -> bytes:
        return (f"--{self.boundary}\r\n"
                f'Content-Disposition: form-data; name="{part.name}"; filename="{part.filename}"\r\n'
                f"Content-Type: {part.content_type}\r\n\r\n").encode()

    def __iter__(self) -> Iterator[bytes]:
        for head, part in zip(self.heads, self.parts, strict=True):
            yield head
            with open(part.path, "rb") as handle:
                while chunk := handle.read(CHUNK):
                    yield chunk
            yield b"\r\n"
        yield self.tail


# ---------------------------------------------------------------- HTTP

def portal_root(url: str) -> str:
    """The portal's base URL; a full push URL (…/onboarding-app/v2/models) is accepted too."""
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise PushError(f"--url must be the portal's http(s) address, e.g. http://127.0.0.1:8000, not {url!r}")
    path = parsed.path.rstrip("/")
    for suffix in (PUSH_PATH, "/onboarding-app/v2", "/onboarding-app"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, path, "", ""))


def _request(method: str, url: str, *, token: str | None = None, data=None, headers: dict | None = None,
             timeout: float = 60) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, data=data, method=method, headers={"Accept": "application/json",
                                                                             **(headers or {})})
    if token:
        request.add_header("Authorization", token)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), _json(response.read(), response.status, url)
    except urllib.error.HTTPError as exc:
        raise PushError(f"{method} {url} answered {exc.code}: {server_message(exc.read(), exc.reason)}",
                        exc.code) from exc
    except urllib.error.URLError as exc:
        raise PushError(f"cannot reach {url}: {exc.reason}") from exc
    except (TimeoutError, OSError) as exc:
        raise PushError(f"{method} {url} failed: {exc}") from exc


def _json(raw: bytes, status: int, url: str) -> dict:
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise PushError(f"{url} answered {status} with something that is not JSON: {raw[:200]!r}", status) from exc
    if not isinstance(body, dict):
        raise PushError(f"{url} answered {status} with unexpected JSON: {raw[:200]!r}", status)
    return body


def server_message(raw: bytes, fallback: str = "") -> str:
    """The message of either error shape: Acumos's {errorMessage, errors} or the API's {error: {message}}."""
    try:
        body = json.loads(raw)
    except ValueError:
        text = raw.decode("utf-8", "replace").strip()
        return text[:500] or str(fallback)
    if not isinstance(body, dict):
        return str(body)[:500]
    if "errorMessage" in body:
        lines = [str(body["errorMessage"])]
        lines += [f"  {e.get('field') or '-'}: {e.get('message')}" for e in body.get("errors") or []
                  if isinstance(e, dict) and e.get("message") and e.get("message") != body["errorMessage"]]
        return "\n".join(lines)
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return json.dumps(body)[:500]


# ---------------------------------------------------------------- the API

def get_jwt(root: str, username: str, password: str) -> str:
    """The deprecated Acumos user/password path: POST /onboarding-app/v2/auth for a JWT."""
    body = json.dumps({"request_body": {"username": username, "password": password}}).encode()
    _, _, answer = _request("POST", root + AUTH_PATH, data=body, headers={"Content-Type": "application/json"})
    token = answer.get("jwtToken")
    if not token:
        raise PushError(f"{root + AUTH_PATH} answered without a jwtToken")
    return token


def with_version(parts: list[Part], version: str | None, workdir: Path) -> list[Part]:
    """The parts with metadata.json's `modelVersion` set to `version`, or removed when `version` is
    "" (the portal then gives the next version after the newest); unchanged when it is None. The
    bundle's own file is not touched: a changed copy in `workdir` is sent."""
    if version is None:
        return parts
    return [Part(part.name, part.filename, part.content_type, _versioned_metadata(part.path, version, workdir))
            if part.name == "metadata" else part for part in parts]


def _versioned_metadata(path: Path, version: str, workdir: Path) -> Path:
    try:
        metadata = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise PushError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(metadata, dict):
        raise PushError(f"{path} is not a JSON object")
    metadata.pop("modelVersion", None)
    if version:
        metadata["modelVersion"] = version
    copy = workdir / "metadata.json"
    copy.write_text(json.dumps(metadata, indent=2))
    return copy


def push_bundle(bundle: Path, root: str, token: str, *, create_microservice: bool = True,
                tracking_id: str | None = None, timeout: float = 600, version: str | None = None) -> Pushed:
    """`version`: see with_version (None sends the bundle as it is)."""
    with tempfile.TemporaryDirectory(prefix="acumos-push-") as workdir:
        return _push(with_version(bundle_parts(bundle), version, Path(workdir)), root, token,
                     create_microservice=create_microservice, tracking_id=tracking_id, timeout=timeout)


def _push(parts: list[Part], root: str, token: str, *, create_microservice: bool, tracking_id: str | None,
          timeout: float) -> Pushed:
    body = MultipartBody(parts)
    headers = {"Content-Type": body.content_type, "Content-Length": str(body.length),
               "isCreateMicroservice": "true" if create_microservice else "false", "deploy": "false"}
    if tracking_id:
        headers["Tracking-Id"] = tracking_id
    _, _, answer = _request("POST", root + PUSH_PATH, token=token, data=body, headers=headers, timeout=timeout)
    result = answer.get("result") or {}
    try:
        return Pushed(solution_id=result["solutionId"], revision_id=result["revisionId"], version=result["version"],
                      name=result.get("name", ""), task_id=answer["taskId"], tracking_id=answer.get("trackingId", ""))
    except KeyError as exc:
        raise PushError(f"the portal's answer lacks {exc.args[0]}: {json.dumps(answer)[:500]}") from exc


def get_job(root: str, token: str, task_id: str) -> dict:
    return _request("GET", root + JOB_PATH.format(task_id), token=token)[2]


def wait_for_job(root: str, token: str, task_id: str, *, on_step: Callable[[dict], None] = lambda step: None,
                 interval: float = 1.0, timeout: float = 3600, retries: int = 5) -> dict:
    """Poll the job until it ends; `on_step` sees each step once, when it has finished, in order."""
    deadline = time.monotonic() + timeout
    reported = 0
    failures = 0
    while True:
        try:
            job = get_job(root, token, task_id)
            failures = 0
        except PushError as exc:
            failures += 1  # a restarting portal or a dropped connection: try again, a few times
            if (exc.status is not None and exc.status < 500) or failures > retries:
                raise
            job = None
        if job is not None:
            steps = job.get("steps") or []
            while reported < len(steps) and steps[reported].get("status") in STEP_DONE:
                on_step(steps[reported])
                reported += 1
            if job.get("status") in DONE:
                return job
        if time.monotonic() > deadline:
            raise PushError(f"gave up after {timeout:.0f} s; the job goes on: {root + JOB_PATH.format(task_id)}")
        time.sleep(interval)


# ---------------------------------------------------------------- the command

def add_arguments(p) -> None:
    p.add_argument("bundle", type=Path, help="directory with metadata.json, model.proto, modelpackage.zip "
                                             "(or model.zip) and optionally license.json")
    p.add_argument("--url", required=True, help="the portal, e.g. http://127.0.0.1:8000")
    p.add_argument("--token", default=None,
                   help="API token, `<login>:<api token>` or a JWT (default: $ACUMOS_TOKEN; or $ACUMOS_USERNAME "
                        "and $ACUMOS_PASSWORD to get a JWT from the portal)")
    p.add_argument("--no-wait", action="store_true", help="print the answer and exit; do not follow the job")
    p.add_argument("--no-microservice", action="store_true", help="send isCreateMicroservice: false")
    p.add_argument("--tracking-id", help="your id for this upload (default: the portal makes one)")
    versions = p.add_mutually_exclusive_group()
    versions.add_argument("--version", help="onboard as this version (replaces metadata.json's modelVersion in "
                                            "what is sent; the bundle is not changed)")
    versions.add_argument("--next-version", action="store_true",
                          help="let the portal give the next version after the newest (sends metadata.json "
                               "without modelVersion): for pushing the same bundle again")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between status polls (default 1)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the pipeline (default 3600)")


def run(args, out=None, err=None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    try:
        root = portal_root(args.url)
        token = _token(args, root)
        _warn_if_plain_http(root, err)
        pushed = push_bundle(args.bundle, root, token, create_microservice=not args.no_microservice,
                             tracking_id=args.tracking_id, version=_version_wanted(args))
        _print_pushed(pushed, out)
        if args.no_wait:
            print(f"status: {root + JOB_PATH.format(pushed.task_id)}", file=out, flush=True)
            return 0
        print(f"onboarding (status: {root + JOB_PATH.format(pushed.task_id)})", file=out, flush=True)
        job = wait_for_job(root, token, pushed.task_id, on_step=lambda step: _print_step(step, out),
                           interval=args.interval, timeout=args.timeout)
    except PushError as exc:
        print(f"error: {exc.message}{_hint(exc)}", file=err, flush=True)
        return 2
    if job["status"] == "succeeded":
        revision = job.get("revision") or pushed.revision_id
        print(f"succeeded: {pushed.name} {pushed.version} is ready (revision {revision})", file=out, flush=True)
        return 0
    failed = next((s for s in job.get("steps") or [] if s.get("status") == "failed"), None)
    where = f" at step {failed['name']}" if failed else ""
    reason = (failed or {}).get("error") or job.get("error") or "no reason given"
    print(f"failed{where}: {reason}", file=err, flush=True)
    return 1


def _hint(exc: PushError) -> str:
    """What to do next, where the portal's message leaves it to the reader."""
    if exc.status == 400 and "already exists" in exc.message:
        return "\n(to push this bundle again: --next-version, or --version <version>)"
    return ""


def _version_wanted(args) -> str | None:
    if getattr(args, "next_version", False):
        return ""
    version = getattr(args, "version", None)
    if version is not None and not version.strip():
        raise PushError("--version is empty: give a version, or use --next-version")
    return version.strip() if version is not None else None


def _token(args, root: str) -> str:
    token = (args.token or os.environ.get("ACUMOS_TOKEN") or "").strip()
    if token:
        return token
    username, password = os.environ.get("ACUMOS_USERNAME"), os.environ.get("ACUMOS_PASSWORD")
    if username and password:
        return get_jwt(root, username, password)
    raise PushError("no token: pass --token, or set ACUMOS_TOKEN (an API token from your account page)")


def _warn_if_plain_http(root: str, err) -> None:
    parsed = urllib.parse.urlsplit(root)
    if parsed.scheme == "http" and parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: {root} is not https; your token travels in clear text", file=err, flush=True)


def _print_pushed(pushed: Pushed, out) -> None:
    print(f"pushed {pushed.name} {pushed.version}", file=out)
    for label, value in (("solutionId", pushed.solution_id), ("revisionId", pushed.revision_id),
                         ("version", pushed.version), ("taskId", pushed.task_id), ("trackingId", pushed.tracking_id)):
        print(f"  {label + ':':<12}{value}", file=out)
    out.flush()


def _print_step(step: dict, out) -> None:
    duration = step.get("duration_seconds")
    took = f" ({duration:.1f} s)" if isinstance(duration, int | float) else ""
    line = f"  {step.get('name', '?'):<22}{step.get('status', '?')}{took}"
    if step.get("status") == "skipped" and step.get("log"):
        line += f": {step['log'].strip().splitlines()[-1]}"
    elif step.get("status") == "failed" and step.get("error"):
        line += f": {step['error']}"
    print(line, file=out, flush=True)
