"""Daemonless image primitives over the registry HTTP API v2: image references, a registry client,
deterministic layer tarballs, appending layers to a base image, and `docker load` archives.

Also copying an image from another registry (or a federation peer) byte for byte, digest kept.

Only the standard library and `requests`: a worker can build and export images with no Docker
engine, no external tools and no Django. Blobs are streamed, never held in memory whole."""

from __future__ import annotations

import contextlib
import copy
import gzip
import hashlib
import json
import os
import re
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode, urljoin

import requests

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX)
IMAGE_MANIFEST_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
CHUNK = 1 << 20
DEFAULT_PLATFORM = ("linux", "amd64")
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}

# Grammars from the distribution reference spec (github.com/distribution/reference).
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_REGISTRY = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?")
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(Exception):
    """A registry refused or failed a request; the message names the registry, the repository and
    what failed. `status` is the HTTP status, None when the registry could not be reached."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------- references

@dataclass(frozen=True)
class ImageRef:
    registry: str
    repository: str
    tag: str = ""
    digest: str = ""

    def __post_init__(self) -> None:
        if not _REGISTRY.fullmatch(self.registry):
            raise ValueError(f"registry {self.registry!r} is not a host name with an optional port")
        if len(self.repository) > 255 or not _REPOSITORY.fullmatch(self.repository):
            raise ValueError(f"repository {self.repository!r} must be lowercase letters, digits and separators "
                             f"(. _ __ -) in /-separated parts")
        if self.tag and not _TAG.fullmatch(self.tag):
            raise ValueError(f"tag {self.tag!r} must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}")
        if self.digest:
            _check_digest(self.digest)

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        """"host:port/repo/path:tag", "host/repo@sha256:..", "host/repo:tag@sha256:..". With neither a
        tag nor a digest the tag is "latest", as for the docker CLI."""
        try:
            return cls._parse(text.strip())
        except ValueError as error:
            raise ValueError(f"invalid image reference {text!r}: {error}") from None

    @classmethod
    def _parse(cls, text: str) -> ImageRef:
        if not text:
            raise ValueError("it is empty")
        name, at, digest = text.partition("@")
        if at and not digest:
            raise ValueError("nothing follows '@'")
        registry, path = _split_registry(name)
        repository, colon, tag = path.rpartition(":") if ":" in path else (path, "", "")
        if colon and not tag:
            raise ValueError("nothing follows ':'")
        if registry == "docker.io" and "/" not in repository:
            repository = f"library/{repository}"  # Docker Hub's official images
        return cls(registry, repository, tag or ("" if digest else "latest"), digest)

    @property
    def reference(self) -> str:
        return self.digest or self.tag

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        text += f":{self.tag}" if self.tag else ""
        return text + (f"@{self.digest}" if self.digest else "")


def _split_registry(name: str) -> tuple[str, str]:
    """The first path part names a registry only if it looks like a host, as in the docker CLI."""
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return ("docker.io" if first == "index.docker.io" else first), rest
    return "docker.io", name


def _check_digest(digest: str) -> None:
    algorithm, _, encoded = digest.partition(":")
    if not _DIGEST.fullmatch(digest) or (algorithm == "sha256" and not re.fullmatch(r"[0-9a-f]{64}", encoded)):
        raise ValueError(f"digest {digest!r} is not <algorithm>:<hex>, e.g. sha256 and 64 lowercase hex digits")


def _display(repository: str, reference: str) -> str:
    separator = "@" if ":" in reference else ":"
    return f"{repository}{separator}{reference}"


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


# ---------------------------------------------------------------- registry client

Body = bytes | Callable[[], Any] | None  # a callable opens a fresh stream, so a request can be retried


class Registry:
    """A registry API v2 client: anonymous first, then Basic or Bearer token auth as challenged."""

    def __init__(self, host: str, *, insecure: bool | None = None, username: str = "", password: str = "",
                 timeout: float = 120):
        self.host = host
        plain_http = _is_loopback(host) if insecure is None else insecure
        self.base_url = f"{'http' if plain_http else 'https'}://{_api_host(host)}"
        self.timeout = timeout
        self.session = requests.Session()
        self._credentials = (username, password) if username or password else None
        self._use_basic = False
        self._tokens: dict[str, str] = {}

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- manifests

    def manifest(self, repository: str, reference: str) -> tuple[dict, str, str]:
        """(manifest, media type, digest) of an image manifest; a list or index resolves to linux/amd64."""
        body, media_type, digest = self.manifest_bytes(repository, reference)
        return json.loads(body), media_type, digest

    def manifest_bytes(self, repository: str, reference: str) -> tuple[bytes, str, str]:
        """Like `manifest`, with the exact bytes the digest is computed from."""
        body, media_type, digest = self._get_manifest(repository, reference)
        if media_type in (DOCKER_MANIFEST_LIST, OCI_INDEX):
            chosen = self._platform_manifest(json.loads(body), repository, reference)
            body, media_type, digest = self._get_manifest(repository, chosen)
        if media_type not in IMAGE_MANIFEST_TYPES:
            raise RegistryError(f"registry {self.host}: manifest {_display(repository, reference)} is {media_type}; "
                                f"only Docker schema 2 and OCI image manifests are supported")
        return body, media_type, digest

    def _get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, str]:
        what = f"manifest {_display(repository, reference)}"
        response = self._send("GET", self._url(repository, "manifests", reference), _pull(repository),
                              headers={"Accept": ", ".join(MANIFEST_TYPES)})
        self._expect(response, what, 200)
        body, digest = response.content, _sha256(response.content)
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(f"registry {self.host}: {what} has the wrong content (digest {digest})")
        return body, _manifest_media_type(response, body), digest

    def _platform_manifest(self, index: dict, repository: str, reference: str) -> str:
        """Image builds and runners here are linux/amd64, so that is the one image of a multi-platform list."""
        entries = index.get("manifests", [])
        platforms = [(entry.get("platform") or {}) for entry in entries]
        for entry, platform in zip(entries, platforms, strict=True):
            if (platform.get("os"), platform.get("architecture")) == DEFAULT_PLATFORM:
                return entry["digest"]
        found = sorted({f"{platform.get('os')}/{platform.get('architecture')}" for platform in platforms})
        raise RegistryError(f"registry {self.host}: {_display(repository, reference)} has no linux/amd64 image "
                            f"(it has {', '.join(found) or 'none'})")

    def put_manifest(self, repository: str, tag: str, body: bytes, media_type: str) -> str:
        """Push a manifest under a tag (or a digest) and return its digest."""
        response = self._send("PUT", self._url(repository, "manifests", tag), _push(repository), body=body,
                              headers={"Content-Type": media_type})
        self._expect(response, f"pushing manifest {_display(repository, tag)}", 201, 200)
        return response.headers.get("Docker-Content-Digest") or _sha256(body)

    def delete_image(self, repository: str, reference: str) -> None:
        """Delete a manifest by tag or digest (every tag on that digest goes too); a missing one is fine."""
        digest = reference if reference.startswith("sha256:") else self._tag_digest(repository, reference)
        if digest is None:
            return
        response = self._send("DELETE", self._url(repository, "manifests", digest), f"repository:{repository}:delete")
        if response.status_code != 404:
            self._expect(response, f"deleting manifest {_display(repository, digest)}", 202, 200)

    def tag_digest(self, repository: str, tag: str) -> str | None:
        """The digest a tag points at, or None when there is no such tag."""
        return self._tag_digest(repository, tag)

    def _tag_digest(self, repository: str, tag: str) -> str | None:
        """What the tag points at (a list stays a list: deleting it must not pick a platform)."""
        response = self._send("HEAD", self._url(repository, "manifests", tag), _pull(repository),
                              headers={"Accept": ", ".join(MANIFEST_TYPES)})
        if response.status_code == 404:
            return None
        self._expect(response, f"manifest {_display(repository, tag)}", 200)
        return response.headers.get("Docker-Content-Digest") or self._get_manifest(repository, tag)[2]

    # ---- blobs

    def blob_exists(self, repository: str, digest: str) -> bool:
        response = self._send("HEAD", self._url(repository, "blobs", digest), _pull(repository))
        if response.status_code == 404:
            return False
        self._expect(response, f"blob {digest} in {repository}", 200)
        return True

    def blob_size(self, repository: str, digest: str) -> int | None:
        """The blob's length as the registry reports it; None when the repository lacks it."""
        response = self._send("HEAD", self._url(repository, "blobs", digest), _pull(repository))
        if response.status_code == 404:
            return None
        self._expect(response, f"blob {digest} in {repository}", 200)
        length = response.headers.get("Content-Length")
        return int(length) if length and length.isdigit() else None

    def open_blob(self, repository: str, digest: str) -> requests.Response:
        """A streaming response (redirects to storage followed); the caller closes it."""
        response = self._send("GET", self._url(repository, "blobs", digest), _pull(repository), stream=True)
        if response.status_code != 200:
            with contextlib.closing(response):  # the error body is small: read it for the message, then close
                self._expect(response, f"blob {digest} in {repository}", 200)
        return response

    def read_blob(self, repository: str, digest: str) -> bytes:
        """A small blob (a config), checked against its digest."""
        with contextlib.closing(self.open_blob(repository, digest)) as response:
            data = b"".join(_raw_chunks(response))
        if digest.startswith("sha256:") and _sha256(data) != digest:
            raise RegistryError(f"registry {self.host}: blob {digest} in {repository} has the wrong content")
        return data

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Link a blob another repository has; False when the registry declines (then copy it)."""
        url = f"{self.base_url}/v2/{repository}/blobs/uploads/?{urlencode({'mount': digest, 'from': from_repository})}"
        scope = f"{_push(repository)} {_pull(from_repository)}"
        response = self._send("POST", url, scope)
        if response.status_code == 201:
            return True
        self._expect(response, f"mounting blob {digest} from {from_repository} into {repository}", 202)
        self._cancel_upload(response, repository)  # a refused mount opens an upload session we do not use
        return False

    def copy_blob(self, repository: str, digest: str, from_repository: str) -> None:
        """Stream a blob from one repository into another, for registries that refuse to mount."""
        self._put_blob(repository, digest, lambda: _BlobReader(self.open_blob(from_repository, digest)))

    def upload_blob(self, repository: str, source: Path | bytes, digest: str) -> None:
        """Upload a blob in one PUT, streamed from the file; nothing to do if the registry has it."""
        if self.blob_exists(repository, digest):
            return
        if isinstance(source, Path) and source.stat().st_size < CHUNK:
            source = source.read_bytes()  # also spares requests an empty file, which it would send chunked
        self._put_blob(repository, digest, source if isinstance(source, bytes) else lambda: source.open("rb"))

    def _put_blob(self, repository: str, digest: str, body: Body) -> None:
        url = _with_query(self._start_upload(repository), digest=digest)
        response = self._send("PUT", url, _push(repository), body=body,
                              headers={"Content-Type": "application/octet-stream"})
        self._expect(response, f"uploading blob {digest} to {repository}", 201)

    def _start_upload(self, repository: str) -> str:
        response = self._send("POST", f"{self.base_url}/v2/{repository}/blobs/uploads/", _push(repository))
        self._expect(response, f"starting a blob upload to {repository}", 202)
        return self._location(response, repository)

    def _cancel_upload(self, response: requests.Response, repository: str) -> None:
        with contextlib.suppress(RegistryError):
            self._send("DELETE", self._location(response, repository), _push(repository)).close()

    def _location(self, response: requests.Response, repository: str) -> str:
        """The upload URL; registries send it relative or absolute, often with a query of their own."""
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(f"registry {self.host}: no Location for an upload to {repository}",
                                response.status_code)
        return urljoin(response.url, location)

    # ---- transport and auth

    def _url(self, repository: str, kind: str, reference: str) -> str:
        return f"{self.base_url}/v2/{repository}/{kind}/{reference}"

    def _send(self, method: str, url: str, scope: str, *, body: Body = None, **kwargs: Any) -> requests.Response:
        response = self._send_once(method, url, scope, body, **kwargs)
        if response.status_code == 401 and self._authenticate(response, scope):
            response.close()
            response = self._send_once(method, url, scope, body, **kwargs)
        return response

    def _send_once(self, method: str, url: str, scope: str, body: Body, **kwargs: Any) -> requests.Response:
        headers = {**kwargs.pop("headers", {}), **self._token_header(scope)}
        auth = self._credentials if self._use_basic else None
        try:
            with _opened(body) as data:
                return self.session.request(method, url, data=data, headers=headers, auth=auth,
                                            timeout=self.timeout, **kwargs)
        except requests.RequestException as error:
            raise RegistryError(f"registry {self.host}: cannot reach {url}: {error}") from error

    def _token_header(self, scope: str) -> dict[str, str]:
        token = self._tokens.get(scope)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _authenticate(self, response: requests.Response, scope: str) -> bool:
        """Learn from a 401 challenge how to authenticate; False when there is nothing new to try."""
        scheme, params = _parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if scheme == "basic":
            retry = self._credentials is not None and not self._use_basic
            self._use_basic = self._use_basic or retry
            return retry
        if scheme == "bearer" and params.get("realm"):
            self._tokens[scope] = self._fetch_token(params, scope)
            return True
        return False

    def _fetch_token(self, challenge: dict[str, str], scope: str) -> str:
        realm = challenge["realm"]
        params = {"service": challenge.get("service", ""), "scope": (challenge.get("scope") or scope).split()}
        try:
            response = self.session.get(realm, params=params, auth=self._credentials, timeout=self.timeout)
        except requests.RequestException as error:
            raise RegistryError(f"registry {self.host}: cannot reach the token service {realm}: {error}") from error
        self._expect(response, f"token for {' '.join(params['scope'])} from {realm}", 200)
        with contextlib.suppress(ValueError, AttributeError):
            payload = response.json()
            return payload.get("token") or payload.get("access_token") or ""
        raise RegistryError(f"registry {self.host}: the token service {realm} did not answer with a token", 200)

    def _expect(self, response: requests.Response, what: str, *statuses: int) -> None:
        if response.status_code in statuses:
            return
        status = response.status_code
        verb = "not found" if status == 404 else "failed"
        raise RegistryError(f"registry {self.host}: {what} {verb} (HTTP {status}: {_error_text(response)})", status)


def _is_loopback(host: str) -> bool:
    return _hostname(host) in LOOPBACK_HOSTS


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def _api_host(host: str) -> str:
    """Docker Hub's name in references is not where its API lives."""
    return "registry-1.docker.io" if host == "docker.io" else host


def _pull(repository: str) -> str:
    return f"repository:{repository}:pull"


def _push(repository: str) -> str:
    return f"repository:{repository}:pull,push"


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM.findall(rest))


def _error_text(response: requests.Response) -> str:
    """The registry's own error codes and messages when it sent them, else the start of the body."""
    with contextlib.suppress(ValueError, AttributeError, TypeError, KeyError):
        errors = response.json()["errors"]
        return "; ".join(f"{e.get('code', '')} {e.get('message', '')}".strip() for e in errors)
    with contextlib.suppress(Exception):
        return response.text.strip()[:300] or response.reason
    return response.reason or ""


def _manifest_media_type(response: requests.Response, body: bytes) -> str:
    media_type = response.headers.get("Content-Type", "").partition(";")[0].strip()
    if media_type in MANIFEST_TYPES:
        return media_type
    manifest = json.loads(body)  # some registries say application/json: the manifest says what it is
    return manifest.get("mediaType") or (OCI_INDEX if "manifests" in manifest else OCI_MANIFEST)


def _with_query(url: str, **params: str) -> str:
    """Append to the query as is: upload URLs carry opaque state that must not be re-encoded."""
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"


@contextlib.contextmanager
def _opened(body: Body) -> Iterator[Any]:
    data = body() if callable(body) else body
    try:
        yield data
    finally:
        if hasattr(data, "close"):
            data.close()


def _raw_chunks(response: requests.Response) -> Iterator[bytes]:
    """Blob bytes as stored: a layer is gzip, and must not be decoded even if a server labels it so."""
    return response.raw.stream(CHUNK, decode_content=False)


class _BlobReader:
    """A sized file-like view of a blob download, so requests streams it into an upload with a length."""

    def __init__(self, response: requests.Response):
        self.response = response
        self.length = int(response.headers.get("Content-Length") or 0)

    def __len__(self) -> int:
        return self.length

    def read(self, size: int = -1) -> bytes:
        return self.response.raw.read(None if size is None or size < 0 else size, decode_content=False)

    def __iter__(self) -> Iterator[bytes]:
        return _raw_chunks(self.response)

    def close(self) -> None:
        self.response.close()


# ---------------------------------------------------------------- layers

@dataclass(frozen=True)
class Layer:
    path: Path
    digest: str
    diff_id: str
    size: int


class _HashingWriter:
    """Counts and hashes what passes through on its way to `target`."""

    def __init__(self, target: Any):
        self.target = target
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += memoryview(data).nbytes
        self.target.write(data)
        return memoryview(data).nbytes

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.target.flush()

    @property
    def digest(self) -> str:
        return f"sha256:{self.hash.hexdigest()}"


def layer_from_tree(entries: dict[str, Path], out: Path, *, uid: int = 0, gid: int = 0, level: int = 1) -> Layer:
    """Pack files and directories into a gzip layer at `out`, in one streaming pass.

    `entries` maps a path in the image ("app/bundle") to a local file or directory (copied
    recursively; the entry itself is resolved, symlinks inside it are stored as links). The result
    depends only on names, contents, the owner-executable bit and uid/gid: mtimes are 0, owner names
    empty, modes 0o755/0o644, so the same inputs always give the same digest. The parent directories
    of each entry are members too (owned by uid/gid, like the rest), so in the image they replace the
    base image's owner and mode of those directories."""
    with out.open("wb") as file:
        compressed = _HashingWriter(file)
        with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, compresslevel=level, mtime=0) as gz:
            uncompressed = _HashingWriter(gz)
            with tarfile.open(fileobj=uncompressed, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for name, source in _unique_members(_tree_members(entries)):
                    _add_member(tar, _member_info(name, source, uid, gid), source)
    return Layer(out, compressed.digest, uncompressed.digest, compressed.size)


def _tree_members(entries: dict[str, Path]) -> Iterator[tuple[str, Path | None]]:
    """(name in the image, source) in a fixed order, parents first; a None source is a plain directory."""
    targets = _clean_targets(entries)
    for target in sorted(targets):
        parts = target.split("/")
        for depth in range(1, len(parts)):
            yield "/".join(parts[:depth]), None
        yield from _walk(target, targets[target])


def _clean_targets(entries: dict[str, Path]) -> dict[str, Path]:
    targets: dict[str, Path] = {}
    for target, source in entries.items():
        parts = [part for part in str(target).split("/") if part not in ("", ".")]
        if not parts or ".." in parts:
            raise ValueError(f"layer path {target!r} must be a relative path inside the image without '..'")
        resolved, name = Path(source).resolve(), "/".join(parts)
        if not resolved.exists():
            raise FileNotFoundError(f"layer source {source} does not exist")
        if name in targets:
            raise ValueError(f"layer path {target!r} is given twice")
        targets[name] = resolved
    return targets


def _walk(name: str, source: Path) -> Iterator[tuple[str, Path]]:
    yield name, source
    if source.is_dir() and not source.is_symlink():
        for child in sorted(source.iterdir(), key=lambda path: path.name):
            yield from _walk(f"{name}/{child.name}", child)


def _unique_members(members: Iterable[tuple[str, Path | None]]) -> Iterator[tuple[str, Path | None]]:
    """A directory met twice (a parent of two entries) is written once; a file twice is a mistake."""
    seen: set[str] = set()
    for name, source in members:
        if name in seen:
            if source is None or (source.is_dir() and not source.is_symlink()):
                continue
            raise ValueError(f"layer path {name!r} would be written twice")
        seen.add(name)
        yield name, source


def _member_info(name: str, source: Path | None, uid: int, gid: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.uid, info.gid, info.uname, info.gname, info.mtime = uid, gid, "", "", 0
    mode = source.lstat().st_mode if source is not None else stat.S_IFDIR
    if stat.S_ISDIR(mode):
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    elif stat.S_ISLNK(mode):
        info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, os.readlink(source)
    elif stat.S_ISREG(mode):
        info.type, info.size = tarfile.REGTYPE, source.lstat().st_size
        info.mode = 0o755 if mode & stat.S_IXUSR else 0o644
    else:
        raise ValueError(f"{source}: only files, directories and symlinks can go into a layer")
    return info


def _add_member(tar: tarfile.TarFile, info: tarfile.TarInfo, source: Path | None) -> None:
    if info.type != tarfile.REGTYPE:
        tar.addfile(info)
        return
    with source.open("rb") as file:
        tar.addfile(info, file)


# ---------------------------------------------------------------- the daemonless build

@dataclass(frozen=True)
class _Family:
    config: str
    layer: str


_FAMILIES = {DOCKER_MANIFEST: _Family(DOCKER_CONFIG, DOCKER_LAYER), OCI_MANIFEST: _Family(OCI_CONFIG, OCI_LAYER)}


def append_layers(registry: Registry, base: ImageRef, target: ImageRef, layers: list[Layer], *,
                  labels: dict[str, str] | None = None, env: dict[str, str] | None = None,
                  created: str | None = None, comment: str = "") -> str:
    """Push `target` = `base` + `layers` through the registry API alone, and return its manifest digest.
    Base layers are mounted (or, if refused, streamed) into the target repository, never re-packed."""
    _require_registry(registry, base, target)
    manifest, media_type, _ = registry.manifest(base.repository, base.reference)
    config = json.loads(registry.read_blob(base.repository, manifest["config"]["digest"]))
    _share_blobs(registry, base.repository, target.repository, manifest["layers"])
    for layer in layers:
        registry.upload_blob(target.repository, layer.path, layer.digest)
    new_config = _extended_config(config, layers, labels=labels or {}, env=env or {},
                                  created=created or _now(), comment=comment)
    config_descriptor = _upload_config(registry, target.repository, media_type, new_config)
    body = _canonical_json({"schemaVersion": 2, "mediaType": media_type, "config": config_descriptor,
                            "layers": [*manifest["layers"], *_layer_descriptors(media_type, layers)]})
    return registry.put_manifest(target.repository, target.tag or _sha256(body), body, media_type)


def _require_registry(registry: Registry, *refs: ImageRef) -> None:
    for ref in refs:
        if ref.registry != registry.host:
            raise RegistryError(f"registry {registry.host}: {ref} is on another registry; "
                                f"base and target must both be on {registry.host}")


def _share_blobs(registry: Registry, source: str, target: str, descriptors: list[dict]) -> None:
    if source == target:
        return
    for descriptor in descriptors:
        digest = descriptor["digest"]
        if descriptor.get("urls") or registry.blob_exists(target, digest):
            continue  # foreign layers live outside the registry
        if not registry.mount_blob(target, digest, source):
            registry.copy_blob(target, digest, source)


def _extended_config(config: dict, layers: list[Layer], *, labels: dict[str, str], env: dict[str, str],
                     created: str, comment: str) -> dict:
    result = copy.deepcopy(config)
    result["created"] = created
    rootfs = result.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), *(layer.diff_id for layer in layers)]
    step = {"created": created, "created_by": f"acumos: {comment or 'append layer'}"}
    result["history"] = [*(result.get("history") or []), *(dict(step) for _ in layers)]
    settings = result["config"] = result.get("config") or {}
    settings["Labels"] = {**(settings.get("Labels") or {}), **labels}
    settings["Env"] = _merged_env(settings.get("Env") or [], env)
    return result


def _merged_env(current: list[str], updates: dict[str, str]) -> list[str]:
    """A new value replaces the old one in place, so the base's order (and PATH) is kept."""
    merged = dict(item.partition("=")[::2] for item in current)
    merged.update(updates)
    return [f"{key}={value}" for key, value in merged.items()]


def _upload_config(registry: Registry, repository: str, media_type: str, config: dict) -> dict:
    body = _canonical_json(config)
    digest = _sha256(body)
    registry.upload_blob(repository, body, digest)
    return {"mediaType": _FAMILIES[media_type].config, "size": len(body), "digest": digest}


def _layer_descriptors(media_type: str, layers: list[Layer]) -> list[dict]:
    """Same manifest family as the base: engines are picky about mixing Docker and OCI media types."""
    return [{"mediaType": _FAMILIES[media_type].layer, "size": layer.size, "digest": layer.digest}
            for layer in layers]


def _canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------- docker load archives

@dataclass(frozen=True)
class _Member:
    """One archive member: generated `data`, a registry blob (`digest`), or a directory."""

    name: str
    size: int = 0
    data: bytes | None = None
    digest: str = ""

    @property
    def header(self) -> bytes:
        info = tarfile.TarInfo(self.name)
        info.size, info.mtime, info.mode = self.size, 0, 0o644
        if not self.size and self.data is None and not self.digest:
            info.type, info.mode = tarfile.DIRTYPE, 0o755
        return info.tobuf(format=tarfile.PAX_FORMAT)

    @property
    def length(self) -> int:
        return len(self.header) + self.size + _padding(self.size)


def docker_archive(registry: Registry, ref: ImageRef, *, repo_tag: str | None = None) -> Iterator[bytes]:
    """The image as a tarball `docker load` accepts (the `docker save` layout of Docker 25+, with the
    legacy manifest.json older engines read), streamed blob by blob from the registry in ~1 MiB chunks.
    The manifest is fetched now, so a missing image fails before the first byte; layers stay gzip."""
    members = _archive_members(registry, ref, repo_tag)
    return _rechunk(_archive_pieces(registry, ref.repository, members))


def archive_size(registry: Registry, ref: ImageRef, *, repo_tag: str | None = None) -> int:
    """The exact byte length `docker_archive` yields (one manifest request), for a Content-Length."""
    return sum(member.length for member in _archive_members(registry, ref, repo_tag)) + _END_OF_ARCHIVE


_END_OF_ARCHIVE = 1024  # two zero blocks


def _archive_members(registry: Registry, ref: ImageRef, repo_tag: str | None) -> list[_Member]:
    body, media_type, digest = registry.manifest_bytes(ref.repository, ref.reference)
    manifest = json.loads(body)
    tag = _archive_tag(repo_tag or (str(replace(ref, digest="")) if ref.tag else ""))
    blobs = [manifest["config"], *manifest["layers"]]
    members = [_Member("blobs/"), _Member("blobs/sha256/")]
    members += _unique([_Member(_blob_path(b["digest"]), b["size"], digest=b["digest"]) for b in blobs])
    members.append(_Member(_blob_path(digest), len(body), data=body))
    metadata = {"index.json": _index_json(media_type, digest, len(body), tag),
                "manifest.json": _legacy_manifest_json(manifest, tag),
                "oci-layout": _canonical_json({"imageLayoutVersion": "1.0.0"})}
    return members + [_Member(name, len(data), data=data) for name, data in metadata.items()]


def _archive_tag(repo_tag: str) -> str:
    """`docker load` rejects the whole archive over a RepoTags entry that is not name:tag, so check it now."""
    if repo_tag and (ImageRef.parse(repo_tag).digest or ":" not in repo_tag.rpartition("/")[2]):
        raise ValueError(f"repo_tag {repo_tag!r} must be name:tag, without a digest")
    return repo_tag


def _unique(members: list[_Member]) -> list[_Member]:
    """A blob used twice (a repeated layer) is stored once."""
    return list({member.name: member for member in members}.values())


def _blob_path(digest: str) -> str:
    return "blobs/" + digest.replace(":", "/", 1)


def _index_json(media_type: str, digest: str, size: int, tag: str) -> bytes:
    entry: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
    if tag:
        name = ImageRef.parse(tag)
        entry["annotations"] = {"io.containerd.image.name": str(name),
                                "org.opencontainers.image.ref.name": name.tag}
    return _canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]})


def _legacy_manifest_json(manifest: dict, tag: str) -> bytes:
    return _canonical_json([{"Config": _blob_path(manifest["config"]["digest"]),
                             "RepoTags": [tag] if tag else [],
                             "Layers": [_blob_path(layer["digest"]) for layer in manifest["layers"]]}])


def _archive_pieces(registry: Registry, repository: str, members: list[_Member]) -> Iterator[bytes]:
    for member in members:
        yield member.header
        if member.data is not None:
            yield member.data
        elif member.digest:
            yield from _verified_blob(registry, repository, member)
        yield b"\0" * _padding(member.size)
    yield b"\0" * _END_OF_ARCHIVE


def _verified_blob(registry: Registry, repository: str, member: _Member) -> Iterator[bytes]:
    """The tar header promised `size` bytes up front, so a blob of another length or content must stop
    the archive rather than corrupt it."""
    digest, received = hashlib.sha256(), 0
    with contextlib.closing(registry.open_blob(repository, member.digest)) as response:
        for chunk in _raw_chunks(response):
            received += len(chunk)
            if received > member.size:
                break
            digest.update(chunk)
            yield chunk
    wrong_digest = member.digest.startswith("sha256:") and f"sha256:{digest.hexdigest()}" != member.digest
    if received != member.size or wrong_digest:
        raise RegistryError(f"registry {registry.host}: blob {member.digest} in {repository} is not the "
                            f"{member.size} bytes its manifest describes")


def _padding(size: int) -> int:
    return -size % tarfile.BLOCKSIZE


def _rechunk(pieces: Iterable[bytes], size: int = CHUNK) -> Iterator[bytes]:
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        if len(buffer) >= size:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


# ---------------------------------------------------------------- copying an image between registries

class BlobStream(Protocol):
    """One blob being read: read(n) gives up to n bytes (b"" at the end), iterating gives chunks,
    close() lets go of the connection or file behind it."""

    def read(self, size: int = -1) -> bytes: ...

    def __iter__(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class ImageSource(Protocol):
    """Where `copy_image` reads an image: a registry (`RegistrySource`) or a federation peer.

    `manifest()` returns the exact manifest bytes, their media type and their digest: the copy pushes
    those bytes unchanged, so the image keeps its digest. `open_blob(digest)` returns a stream of one
    blob, which `copy_image` closes. A source may also offer `blob_size(digest) -> int | None` for its
    own callers; `copy_image` does not need it, because the manifest gives every blob's size."""

    def manifest(self) -> tuple[bytes, str, str]: ...

    def open_blob(self, digest: str) -> BlobStream: ...


class RegistrySource:
    """An image in a registry, as an `ImageSource`. The manifest is the one the reference names: a list
    or index is not narrowed to one platform, so `copy_image` refuses it instead of tagging an image
    whose digest is not the one that was asked for."""

    def __init__(self, registry: Registry, repository: str, reference: str):
        self.registry = registry
        self.repository = repository
        self.reference = reference

    def __str__(self) -> str:
        return f"registry {self.registry.host}: {_display(self.repository, self.reference)}"

    def manifest(self) -> tuple[bytes, str, str]:
        return self.registry._get_manifest(self.repository, self.reference)

    def open_blob(self, digest: str) -> BlobStream:
        return _BlobReader(self.registry.open_blob(self.repository, digest))

    def blob_size(self, digest: str) -> int | None:
        return self.registry.blob_size(self.repository, digest)


@dataclass
class CopyReport:
    """What `copy_image` did. The blobs are the config and the layers, each counted once; a blob is
    present (the target repository had it), mounted (linked from another repository of the target,
    no bytes sent) or copied (streamed from the source). `bytes_skipped` is present + mounted."""

    digest: str
    media_type: str
    blobs_present: int = 0
    blobs_mounted: int = 0
    blobs_copied: int = 0
    bytes_copied: int = 0
    bytes_skipped: int = 0

    def summary(self) -> str:
        total = self.blobs_present + self.blobs_mounted + self.blobs_copied
        return (f"Copied {self.blobs_copied} of {total} blobs of image {self.digest} "
                f"({_human_size(self.bytes_copied)}); {self.blobs_present} were already there and "
                f"{self.blobs_mounted} were mounted ({_human_size(self.bytes_skipped)} not sent).")


def copy_image(source: ImageSource, target: Registry, repository: str, tag: str, *,
               mount_from: Iterable[str] = ()) -> CopyReport:
    """Copy one image from `source` into `repository:tag` at `target`, and report what moved.

    Each blob, the config first and then the layers, is skipped when the target repository has it,
    else mounted from the first repository in `mount_from` (on the target) that has it, else streamed
    from the source with its size and digest checked on the way. The manifest goes last, byte for
    byte, so the image keeps its digest, a copy that fails half way leaves no tag, and running it
    again sends only what had not arrived. Raises RegistryError, and ValueError for a bad name."""
    others = _mount_candidates(target, repository, tag, mount_from)
    body, media_type, digest = _image_manifest(source)
    report = CopyReport(digest, media_type)
    for blob_digest, size in _manifest_blobs(source, body, media_type):
        _place_blob(source, target, repository, blob_digest, size, mount_from=others, report=report)
    pushed = target.put_manifest(repository, tag, body, media_type)
    if pushed != digest:
        raise RegistryError(f"registry {target.host}: {repository}:{tag} was stored as {pushed}, not as "
                            f"{digest}; the registry changed the manifest")
    return report


def _mount_candidates(target: Registry, repository: str, tag: str, mount_from: Iterable[str]) -> tuple[str, ...]:
    """Check the names before any byte moves (ImageRef raises ValueError saying what is wrong)."""
    ImageRef(target.host, repository, tag)
    others = tuple(other for other in dict.fromkeys(mount_from) if other != repository)
    for other in others:
        ImageRef(target.host, other)
    return others


def _image_manifest(source: ImageSource) -> tuple[bytes, str, str]:
    body, media_type, digest = source.manifest()
    if media_type in (DOCKER_MANIFEST_LIST, OCI_INDEX):
        raise RegistryError(f"{source}: this is an image list/index ({media_type}), several images in one; "
                            f"copy one platform's image manifest by its digest instead")
    if media_type not in IMAGE_MANIFEST_TYPES:
        raise RegistryError(f"{source}: the manifest is {media_type or 'of no media type'}; only Docker "
                            f"schema 2 and OCI image manifests can be copied")
    _check_source_digest(source, digest)
    if _digest_of(source, digest, body) != digest:
        raise RegistryError(f"{source}: the manifest's bytes do not match its digest {digest}")
    return body, media_type, digest


def _manifest_blobs(source: ImageSource, body: bytes, media_type: str) -> list[tuple[str, int]]:
    """(digest, size) of the config and each layer, in manifest order, each digest once."""
    try:
        manifest = json.loads(body)
        if manifest.get("mediaType", media_type) != media_type or "manifests" in manifest:
            raise ValueError(f"its body says {manifest.get('mediaType') or 'image list/index'}, not {media_type}")
        descriptors = [manifest["config"], *manifest["layers"]]
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise RegistryError(f"{source}: the manifest is not a usable image manifest ({error})") from None
    blobs: dict[str, int] = {}
    for descriptor in descriptors:
        digest, size = _descriptor(source, descriptor)
        blobs.setdefault(digest, size)
    return list(blobs.items())


def _descriptor(source: ImageSource, descriptor: Any) -> tuple[str, int]:
    """A peer's manifest is checked before its digests go into URLs or its sizes into Content-Length."""
    digest = descriptor.get("digest") if isinstance(descriptor, dict) else None
    size = descriptor.get("size") if isinstance(descriptor, dict) else None
    if not isinstance(digest, str) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RegistryError(f"{source}: a blob in the manifest lacks a digest or a size ({descriptor!r:.200})")
    _check_source_digest(source, digest)
    return digest, size


def _check_source_digest(source: ImageSource, digest: str) -> None:
    try:
        _check_digest(digest)
    except ValueError as error:
        raise RegistryError(f"{source}: {error}") from None


def _place_blob(source: ImageSource, target: Registry, repository: str, digest: str, size: int, *,
                mount_from: tuple[str, ...], report: CopyReport) -> None:
    if target.blob_exists(repository, digest):
        report.blobs_present += 1
        report.bytes_skipped += size
    elif any(target.mount_blob(repository, digest, other) for other in mount_from):
        report.blobs_mounted += 1
        report.bytes_skipped += size
    else:
        target._put_blob(repository, digest, lambda: _CheckedBlob(source.open_blob(digest), digest, size, source))
        report.blobs_copied += 1
        report.bytes_copied += size


class _CheckedBlob:
    """A source's blob on its way into an upload, counted and hashed as it is read. The upload says the
    manifest's size up front, and the last bytes are handed over only once the digest matches, so a
    source that sends other bytes, or more or fewer, never completes a blob at the target."""

    def __init__(self, stream: BlobStream, digest: str, size: int, source: ImageSource):
        self.stream = stream
        self.digest = digest
        self.size = size
        self.source = source
        self.hash = _hasher(source, digest)
        self.received = 0

    def __len__(self) -> int:
        return self.size

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(CHUNK if size is None or size < 0 else min(size, CHUNK))
        self.received += len(data)
        self.hash.update(data)
        self._check(at_end=not data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while data := self.read(CHUNK):
            yield data

    def close(self) -> None:
        self.stream.close()

    def _check(self, *, at_end: bool) -> None:
        if self.received > self.size or (at_end and self.received < self.size):
            raise RegistryError(f"{self.source}: blob {self.digest} is not the {self.size} bytes its manifest "
                                f"says ({'more' if self.received > self.size else self.received} arrived)")
        found = f"{self.digest.partition(':')[0]}:{self.hash.hexdigest()}"
        if self.received == self.size and found != self.digest:
            raise RegistryError(f"{self.source}: blob {self.digest} does not match its digest (its bytes are "
                                f"{found}); refused")


def _hasher(source: ImageSource, digest: str) -> Any:
    algorithm = digest.partition(":")[0]
    if algorithm not in ("sha256", "sha384", "sha512"):
        raise RegistryError(f"{source}: cannot check digest {digest}: only sha256, sha384 and sha512 are known")
    return hashlib.new(algorithm)


def _digest_of(source: ImageSource, digest: str, data: bytes) -> str:
    """`data`'s digest by the algorithm `digest` names."""
    hasher = _hasher(source, digest)
    hasher.update(data)
    return f"{digest.partition(':')[0]}:{hasher.hexdigest()}"


def _human_size(size: float) -> str:
    unit = "bytes"
    for larger in ("kB", "MB", "GB"):
        if size < 1000:
            break
        size, unit = size / 1000, larger
    return f"{int(size)} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
