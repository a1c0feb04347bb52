"""Calls to a peer's API, the one way this site talks to peers: mutual TLS with this instance's
certificate, the peer's server certificate checked against what is registered for it (its
certificate or CA; nothing else is trusted), timeouts on every call, answers read in the Acumos
envelope, artifact bytes streamed to a file with resume (HTTP Range), never followed redirects."""

from __future__ import annotations

import contextlib
import hashlib
import json
import ssl
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import requests
import urllib3
from django.conf import settings
from requests.adapters import HTTPAdapter

from federation import identity
from federation.models import Peer

CHUNK = 1 << 20
MAX_JSON_BYTES = 32 << 20
MAX_RAW_BYTES = 4 << 20


class PeerUnavailable(Exception):
    """The peer could not be reached or answered with an error: worth trying again later."""


class PeerAnswer(Exception):
    """The peer answered, refusing (a 4xx with its envelope): `status`, `code` and its message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{message} (HTTP {status}, {code})")
        self.status, self.code, self.message = status, code, message


class _PinnedAdapter(HTTPAdapter):
    """TLS to one peer: only its registered certificate or CA is trusted (a partial chain is enough,
    so a pinned leaf works), and this instance's certificate is the client certificate."""

    def __init__(self, context: ssl.SSLContext, **kwargs):
        self._context = context
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["ssl_context"] = self._context
        return super().init_poolmanager(*args, **kwargs)


def _context(peer: Peer, me: identity.Identity) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=peer.certificate)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.load_cert_chain(me.cert_path, me.key_path)
    return context


class PeerClient:
    """`deadline` (time.monotonic()) bounds everything the client does, whatever the peer does: a
    peer that trickles bytes stays within the timeout between reads, but not past the deadline."""

    def __init__(self, peer: Peer, *, timeout: float | None = None, deadline: float | None = None):
        self.peer = peer
        self.base = peer.api_url.rstrip("/") + "/federation/"
        self.timeout = timeout or settings.ACUMOS_FEDERATION_TIMEOUT
        self.deadline = deadline
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy from the environment sees this traffic
        try:
            context = _context(peer, identity.load())
        except ssl.SSLError as exc:
            raise PeerUnavailable(f"the certificate registered for {peer.name} cannot be used: {exc}") from exc
        self.session.mount("https://", _PinnedAdapter(context))
        self.session.mount("http://", HTTPAdapter(max_retries=0))  # refused below: peers speak TLS only

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> PeerClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ---- the API

    def ping(self) -> dict:
        return self.get("ping")

    def catalogs(self) -> list[dict]:
        return self.get("catalogs")

    def changes(self, catalog_id: str, since: int) -> dict:
        return self.get("changes", catalogId=catalog_id, since=since)

    def revision(self, solution_id: str, revision_id: str) -> dict:
        return self.get(f"solutions/{solution_id}/revisions/{revision_id}")

    def artifacts(self, solution_id: str, revision_id: str) -> list[dict]:
        return self.get(f"solutions/{solution_id}/revisions/{revision_id}/artifacts")

    def get(self, path: str, **params) -> object:
        response = self._send(path, params=params, stream=True)
        with contextlib.closing(response):
            return self._content(response)

    # ---- bytes

    def download(self, path: str, target: Path, *, size: int, sha256: str) -> int:
        """Stream `path` into `target`, resuming from what `target` already holds (Range), never past
        `size`; check the size and sha256 at the end. Returns the bytes fetched now. A wrong size or
        hash removes the file and raises ValueError (the content is refused); a resumed transfer that
        does not match is fetched once more from its first byte before that."""
        have = target.stat().st_size if target.exists() else 0
        if have > size:
            target.unlink()
            have = 0
        fetched = self._fetch_rest(path, target, have, size) if have < size else 0
        digest, length = _file_sha256(target)
        if (length != size or digest != sha256) and have:
            target.unlink(missing_ok=True)
            fetched += self._fetch_rest(path, target, 0, size)
            digest, length = _file_sha256(target)
        if length != size or digest != sha256:
            target.unlink(missing_ok=True)
            raise ValueError(f"the peer's bytes do not match the signed manifest: sha256 {digest} and {length} "
                             f"bytes, the manifest says {sha256} and {size} bytes")
        return fetched

    def _fetch_rest(self, path: str, target: Path, have: int, size: int) -> int:
        headers = {"Range": f"bytes={have}-"} if have else {}
        response = self._send(path, headers=headers, stream=True)
        with contextlib.closing(response):
            if response.status_code >= 400:
                self._content(response)  # raises with the peer's reason
            append = have and response.status_code == 206
            room = size - (have if append else 0)
            fetched, pace = 0, _Pace(self.peer.rate_limit_kbps)
            with open(target, "ab" if append else "wb") as out:
                try:
                    for chunk in self.chunks(response, pace.chunk):
                        if fetched + len(chunk) > room:  # more than the manifest says: the rest is not taken
                            out.write(chunk[:room - fetched])
                            return room
                        out.write(chunk)
                        out.flush()  # what arrived is on disk: a transfer cut short resumes from it
                        fetched += len(chunk)
                        pace.wait(fetched)
                        self.check_deadline()
                except requests.RequestException as exc:
                    raise PeerUnavailable(f"the transfer from {self.peer.name} was cut short after {have + fetched} "
                                          f"bytes: {exc}") from exc
            return fetched

    def chunks(self, response: requests.Response, size: int):
        """The answer's bytes as they arrive (read1: what the socket has, not a full block), the
        deadline checked between reads: a peer sending a byte at a time is dropped at the deadline,
        not when it has sent a whole block. urllib3's errors are the peer's, as requests' are."""
        while True:
            self.check_deadline()
            try:
                chunk = response.raw.read1(size, decode_content=True)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise requests.exceptions.ConnectionError(str(exc)) from exc
            if not chunk:
                return
            yield chunk

    def check_deadline(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise PeerUnavailable(f"{self.peer.name} took longer than this run may take "
                                  f"(ACUMOS_FEDERATION_RUN_SECONDS); the next run goes on from here")

    def read_capped(self, response: requests.Response, limit: int) -> bytes:
        """A whole answer, at most `limit` bytes (more is refused, not read), within the deadline."""
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise PeerUnavailable(f"{self.peer.name} answered with {declared} bytes; at most {limit} are taken")
        body = bytearray()
        try:
            for chunk in self.chunks(response, CHUNK):
                body += chunk
                if len(body) > limit:
                    raise PeerUnavailable(f"{self.peer.name} answered with more than {limit} bytes")
                self.check_deadline()
        except requests.RequestException as exc:
            raise PeerUnavailable(f"the answer of {self.peer.name} was cut short: {exc}") from exc
        return bytes(body)

    def stream(self, path: str) -> requests.Response:
        """A streaming response (the caller closes it), for image blobs."""
        response = self._send(path, stream=True)
        if response.status_code >= 400:
            with contextlib.closing(response):
                self._content(response)
        return response

    def raw(self, path: str, limit: int = MAX_RAW_BYTES) -> tuple[bytes, str]:
        """A small answer that is not in the envelope (an image manifest): its bytes and content type."""
        response = self._send(path, stream=True)
        with contextlib.closing(response):
            if response.status_code >= 400:
                self._content(response)
            return self.read_capped(response, limit), response.headers.get("Content-Type", "")

    # ---- transport

    def _send(self, path: str, **kwargs) -> requests.Response:
        self.check_deadline()
        url = urljoin(self.base, path)
        if not url.startswith("https://"):
            raise PeerUnavailable(f"{self.peer.name}'s API URL must be https://: {self.peer.api_url}")
        try:
            return self.session.get(url, timeout=(self.timeout, self.timeout), allow_redirects=False, **kwargs)
        except requests.exceptions.SSLError as exc:
            raise PeerUnavailable(f"TLS with {self.peer.name} failed (is its registered certificate or CA "
                                  f"the one it serves?): {exc}") from exc
        except requests.RequestException as exc:
            raise PeerUnavailable(f"{self.peer.name} cannot be reached at {url}: {exc}") from exc

    def _content(self, response: requests.Response):
        data = self.read_capped(response, MAX_JSON_BYTES)
        try:
            body = json.loads(data)
        except ValueError:
            body = None
        if not isinstance(body, dict) or "content" not in body:
            raise PeerUnavailable(f"{self.peer.name} answered HTTP {response.status_code} without the "
                                  f"federation envelope")
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise PeerUnavailable(f"{self.peer.name}: {body.get('message')} (HTTP {response.status_code})")
        if response.status_code >= 300:
            raise PeerAnswer(response.status_code, str(body.get("error")), str(body.get("message")))
        return body["content"]


class _Pace:
    """A peer's download cap (Peer.rate_limit_kbps): sleeps so that the bytes read so far never run
    ahead of the rate (0: no cap)."""

    def __init__(self, kbps: int):
        self.rate = kbps * 1000
        self.chunk = min(CHUNK, max(self.rate // 10, 4096)) if self.rate else CHUNK
        self.started = time.monotonic()

    def wait(self, done: int) -> None:
        if self.rate:
            ahead = done / self.rate - (time.monotonic() - self.started)
            if ahead > 0:
                time.sleep(ahead)


def _file_sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    if not path.exists():
        return digest.hexdigest(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="federation-"))
    try:
        yield folder
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
