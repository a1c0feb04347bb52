"""The Docker engine builder: `docker build` through the docker SDK (DOCKER_HOST), then push.

The extra packages go into an intermediate image (base + /app/deps) tagged by the base and the
requirements' hash, so the engine makes that layer once; each revision's build then sends only
its bundle and adds one layer on top. The push skips every layer the registry already has."""

from __future__ import annotations

import hashlib
import io
import tarfile
import tempfile
from contextlib import contextmanager
from pathlib import Path

import docker
import requests

from images.builders.base import BUNDLE_PATH, DEPS_PATH, BuilderUnavailable, BuildFailed, BuildRequest
from images.oci import ImageRef

DEPS_REPOSITORY = "acumos-deps"


class DockerEngineBuilder:
    kind = "docker"

    def __init__(self, base_url: str | None = None, *, username: str = "", password: str = "", timeout: int = 900):
        self.base_url, self.timeout = base_url, timeout
        self.auth = {"username": username, "password": password} if username else None

    def build(self, request: BuildRequest) -> ImageRef:
        with _engine_errors():
            client = self._client()
            try:
                parent = self._ensure_base(client, request)
                if request.deps is not None:
                    parent = self._ensure_deps_image(client, parent, request)
                self._build(client, parent, {BUNDLE_PATH: request.bundle}, str(request.target),
                            labels=request.labels, log=request.log)
                return self._push(client, request.target, request.log)
            finally:
                client.close()

    def _client(self) -> docker.DockerClient:
        if self.base_url:
            return docker.DockerClient(base_url=self.base_url, timeout=self.timeout)
        return docker.from_env(timeout=self.timeout)

    def _ensure_base(self, client, request: BuildRequest) -> str:
        name = str(ImageRef(request.base.registry, request.base.repository, request.base.tag or "latest"))
        try:
            client.images.get(name)
        except docker.errors.ImageNotFound:
            request.log(f"pulling the base image {request.base}")
            try:
                client.images.pull(name, auth_config=self.auth)
            except docker.errors.NotFound as exc:
                raise BuildFailed(f"the base image {request.base} is not in its registry "
                                  "(ACUMOS_IMAGE_BASE; scripts/build-runner-base.sh --push makes it)") from exc
        return name

    def _ensure_deps_image(self, client, base: str, request: BuildRequest) -> str:
        tag = hashlib.sha256(f"{base}|{request.deps.key}".encode()).hexdigest()[:16]
        name = f"{DEPS_REPOSITORY}:{tag}"
        try:
            client.images.get(name)
            request.log(f"extra packages layer: cached image {name}")
        except docker.errors.ImageNotFound:
            request.log(f"extra packages layer: building {name}")
            self._build(client, base, {DEPS_PATH: request.deps.tree}, name, labels={}, log=request.log)
        return name

    def _build(self, client, parent: str, copies: dict[str, Path], tag: str, *, labels: dict, log) -> None:
        dockerfile = f"FROM {parent}\n" + "".join(f"COPY {Path(dest).name} /{dest}\n" for dest in copies)
        with tempfile.TemporaryFile() as context:
            _write_context(context, dockerfile, copies)
            context.seek(0)
            for entry in client.api.build(fileobj=context, custom_context=True, tag=tag, labels=labels, rm=True,
                                          forcerm=True, pull=False, decode=True):
                _log_entry(entry, log)

    def _push(self, client, target: ImageRef, log) -> ImageRef:
        log(f"pushing {target}")
        repository = f"{target.registry}/{target.repository}"
        digest = ""
        for entry in client.api.push(repository, tag=target.tag, stream=True, decode=True, auth_config=self.auth):
            if "error" in entry:
                raise BuilderUnavailable(f"pushing {target} failed: {entry['error']}")
            digest = (entry.get("aux") or {}).get("Digest", digest)
            if entry.get("status") and entry.get("id") is None:
                log(entry["status"])
        if not digest:
            raise BuilderUnavailable(f"pushing {target} gave no digest")
        return ImageRef(target.registry, target.repository, target.tag, digest)


def _write_context(out, dockerfile: str, copies: dict[str, Path]) -> None:
    with tarfile.open(fileobj=out, mode="w") as context:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        context.addfile(info, io.BytesIO(data))
        for dest, source in copies.items():
            context.add(str(source), arcname=Path(dest).name)


def _log_entry(entry: dict, log) -> None:
    if "error" in entry:
        raise BuildFailed(f"docker build failed: {entry['error'].strip()}")
    text = (entry.get("stream") or "").rstrip()
    if text:
        log(text)


@contextmanager
def _engine_errors():
    """An engine that is down or unreachable is worth a retry; say where it was looked for."""
    try:
        yield
    except (BuildFailed, BuilderUnavailable):
        raise
    except (requests.ConnectionError, docker.errors.DockerException) as exc:
        raise BuilderUnavailable(f"the Docker engine could not be used: {exc}") from exc
