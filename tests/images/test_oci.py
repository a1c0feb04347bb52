"""images.oci against the real test registry and Docker engine: references, deterministic layers,
blobs, the daemonless build (pulled and run), `docker load` archives, auth challenges and errors."""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import json
import os
import tarfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from images import oci
from images.oci import ImageRef, Layer, Registry, RegistryError

from .conftest import free_port

HELLO = "hello from the appended layer\n"
RUNNER_UID = 10001  # the base image's user, which owns /app
DIGEST = "sha256:" + "ab" * 32


def _sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


@pytest.fixture
def registry(registry_host) -> Iterator[Registry]:
    with Registry(registry_host) as client:
        yield client


@pytest.fixture(scope="module")
def appended(registry_host, base_image, tmp_path_factory) -> Iterator[dict]:
    """The base image plus one layer with /app/hello.txt, pushed once for the tests that pull,
    export and inspect it; its manifest is deleted from the registry afterwards."""
    source = tmp_path_factory.mktemp("tree")
    (source / "hello.txt").write_text(HELLO)
    layer = oci.layer_from_tree({"app/hello.txt": source / "hello.txt"},
                                tmp_path_factory.mktemp("layer") / "layer.tar.gz", uid=RUNNER_UID, gid=RUNNER_UID)
    base = ImageRef.parse(base_image)
    target = ImageRef(registry_host, f"acumos-test/{uuid.uuid4().hex[:12]}", "v1")
    with Registry(registry_host) as client:
        digest = oci.append_layers(client, base, target, [layer], labels={"org.acumos.test": "yes"},
                                   env={"RUNNER_PORT": "4321", "ACUMOS_GREETING": "hi"},
                                   created="2026-01-02T03:04:05Z", comment="test layer")
        yield {"registry": client, "base": base, "target": target, "digest": digest, "layer": layer}
        client.delete_image(target.repository, digest)


# ---------------------------------------------------------------- references

@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:5000/acumos/runner-base:9921b2341f75",
     ImageRef("127.0.0.1:5000", "acumos/runner-base", "9921b2341f75")),
    (f"localhost/acumos/model@{DIGEST}", ImageRef("localhost", "acumos/model", "", DIGEST)),
    (f"registry.example.com/a/b-c/d__e:1.0_rc-1@{DIGEST}",
     ImageRef("registry.example.com", "a/b-c/d__e", "1.0_rc-1", DIGEST)),
    ("localhost:5000/model", ImageRef("localhost:5000", "model", "latest")),
    ("[::1]:5000/model:v2", ImageRef("[::1]:5000", "model", "v2")),
    ("ubuntu", ImageRef("docker.io", "library/ubuntu", "latest")),
    ("acumos/runner:v1", ImageRef("docker.io", "acumos/runner", "v1")),
    ("docker.io/python:3.11-slim", ImageRef("docker.io", "library/python", "3.11-slim")),
])
def test_parse_accepts_the_usual_forms(text, expected):
    assert ImageRef.parse(text) == expected


@pytest.mark.parametrize(("text", "complaint"), [
    ("", "empty"),
    ("127.0.0.1:5000/Acumos/Model:1", "lowercase"),
    ("127.0.0.1:5000/acumos//model:1", "repository"),
    ("127.0.0.1:5000/acumos/model:", "nothing follows ':'"),
    ("127.0.0.1:5000/acumos/model:-v1", "tag"),
    ("127.0.0.1:5000/acumos/model:" + "v" * 129, "tag"),
    ("127.0.0.1:5000/acumos/model@sha256:abc", "digest"),
    ("127.0.0.1:5000/acumos/model@", "nothing follows '@'"),
    ("127.0.0.1:5000/../model:1", "repository"),
    ("host_name:5000/model:1", "registry"),
])
def test_parse_rejects_bad_references_with_a_clear_message(text, complaint):
    with pytest.raises(ValueError, match="invalid image reference") as raised:
        ImageRef.parse(text)
    assert complaint in str(raised.value)
    assert repr(text) in str(raised.value)


def test_a_reference_prints_back_and_prefers_the_digest():
    text = f"127.0.0.1:5000/acumos/model:v1@{DIGEST}"
    ref = ImageRef.parse(text)
    assert str(ref) == text
    assert ref.reference == DIGEST
    assert replace(ref, digest="").reference == "v1"
    assert str(replace(ref, tag="")) == f"127.0.0.1:5000/acumos/model@{DIGEST}"


# ---------------------------------------------------------------- layers

def _tree(root: Path, outside: Path) -> Path:
    """model.bin, run.sh (executable), sub/data.txt, a link to model.bin, and a link out of the tree."""
    (root / "sub").mkdir(parents=True)
    (root / "model.bin").write_bytes(b"\x00model" * 1000)
    (root / "run.sh").write_text("#!/bin/sh\necho run\n")
    (root / "run.sh").chmod(0o700)
    (root / "sub" / "data.txt").write_text("data\n")
    (root / "sub" / "data.txt").chmod(0o600)
    (root / "link").symlink_to("model.bin")
    outside.write_text("secret outside the tree")
    (root / "escape").symlink_to(outside)
    (root / "linked-dir").symlink_to(root / "sub")
    return root


def _members(layer: Layer) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(layer.path) as tar:
        return {member.name: member for member in tar.getmembers()}


def test_layer_is_deterministic_whatever_the_mtimes(tmp_path):
    tree = _tree(tmp_path / "bundle", tmp_path / "outside.txt")
    first = oci.layer_from_tree({"app/bundle": tree}, tmp_path / "first.tar.gz")
    for path in [tree, *tree.rglob("*")]:
        os.utime(path, (1_000_000, 1_000_000), follow_symlinks=False)
    second = oci.layer_from_tree({"app/bundle": tree}, tmp_path / "second.tar.gz")
    assert (second.digest, second.diff_id, second.size) == (first.digest, first.diff_id, first.size)
    assert second.path.read_bytes() == first.path.read_bytes()

    (tree / "sub" / "data.txt").write_text("datA\n")
    changed = oci.layer_from_tree({"app/bundle": tree}, tmp_path / "changed.tar.gz")
    assert changed.digest != first.digest
    assert changed.diff_id != first.diff_id


def test_layer_digests_describe_the_file(tmp_path):
    tree = _tree(tmp_path / "bundle", tmp_path / "outside.txt")
    layer = oci.layer_from_tree({"app/bundle": tree}, tmp_path / "layer.tar.gz")
    compressed = layer.path.read_bytes()
    assert layer.size == len(compressed)
    assert layer.digest == _sha256(compressed)
    assert layer.diff_id == _sha256(gzip.decompress(compressed))
    assert compressed[3] == 0, "no file name (or other optional field) in the gzip header"
    assert compressed[4:8] == b"\0\0\0\0", "gzip mtime 0"


def test_layer_members_are_normalised_and_parents_come_first(tmp_path):
    tree = _tree(tmp_path / "bundle", tmp_path / "outside.txt")
    layer = oci.layer_from_tree({"app/bundle": tree}, tmp_path / "layer.tar.gz", uid=RUNNER_UID, gid=RUNNER_UID)
    members = _members(layer)
    assert list(members) == ["app", "app/bundle", "app/bundle/escape", "app/bundle/link", "app/bundle/linked-dir",
                             "app/bundle/model.bin", "app/bundle/run.sh", "app/bundle/sub", "app/bundle/sub/data.txt"]
    modes = {name: (member.type, oct(member.mode)) for name, member in members.items()}
    assert modes["app"] == modes["app/bundle"] == modes["app/bundle/sub"] == (tarfile.DIRTYPE, "0o755")
    assert modes["app/bundle/run.sh"] == (tarfile.REGTYPE, "0o755")
    assert modes["app/bundle/model.bin"] == modes["app/bundle/sub/data.txt"] == (tarfile.REGTYPE, "0o644")
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members.values()} == {(RUNNER_UID, RUNNER_UID,
                                                                                       "", "", 0)}


def test_layer_stores_symlinks_without_following_them(tmp_path):
    tree = _tree(tmp_path / "bundle", tmp_path / "outside.txt")
    layer = oci.layer_from_tree({"app/bundle": tree}, tmp_path / "layer.tar.gz")
    members = _members(layer)
    assert (members["app/bundle/link"].type, members["app/bundle/link"].linkname) == (tarfile.SYMTYPE, "model.bin")
    assert members["app/bundle/escape"].linkname == str(tmp_path / "outside.txt")
    assert members["app/bundle/linked-dir"].type == tarfile.SYMTYPE
    assert not any(name.startswith("app/bundle/linked-dir/") for name in members)
    assert b"secret outside the tree" not in gzip.decompress(layer.path.read_bytes())


def test_layer_of_several_entries_writes_each_parent_once(tmp_path):
    (tmp_path / "deps").mkdir()
    (tmp_path / "deps" / "pkg.py").write_text("x = 1\n")
    (tmp_path / "tool").write_text("tool\n")
    layer = oci.layer_from_tree({"app/deps": tmp_path / "deps", "/opt/acumos/tool": tmp_path / "tool",
                                 "app/deps-note.txt": tmp_path / "tool"}, tmp_path / "layer.tar.gz")
    assert list(_members(layer)) == ["app", "app/deps", "app/deps/pkg.py", "app/deps-note.txt", "opt", "opt/acumos",
                                     "opt/acumos/tool"]


def test_layer_refuses_paths_outside_the_image_and_missing_sources(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="without '..'"):
        oci.layer_from_tree({"app/../../etc/passwd": tmp_path / "file"}, tmp_path / "layer.tar.gz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        oci.layer_from_tree({"app/missing": tmp_path / "missing"}, tmp_path / "layer.tar.gz")


# ---------------------------------------------------------------- blobs and manifests

def test_blobs_upload_and_read_back(registry, unique_repository, tmp_path):
    small = b'{"hello": "registry"}'
    assert not registry.blob_exists(unique_repository, _sha256(small))
    registry.upload_blob(unique_repository, small, _sha256(small))
    registry.upload_blob(unique_repository, small, _sha256(small))  # already there: nothing to do
    assert registry.blob_exists(unique_repository, _sha256(small))
    assert registry.read_blob(unique_repository, _sha256(small)) == small

    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * oci.CHUNK + 17))  # over the in-memory threshold: streamed from the file
    digest = _sha256(big.read_bytes())
    registry.upload_blob(unique_repository, big, digest)
    with contextlib.closing(registry.open_blob(unique_repository, digest)) as response:
        assert _sha256(response.raw.read()) == digest


def test_a_blob_with_the_wrong_digest_is_refused(registry, unique_repository):
    with pytest.raises(RegistryError, match=f"uploading blob {DIGEST} to {unique_repository}") as raised:
        registry.upload_blob(unique_repository, b"not what the digest says", DIGEST)
    assert raised.value.status == 400
    assert "DIGEST_INVALID" in str(raised.value)


def test_blobs_mount_from_the_base_repository_or_copy(registry, unique_repository, base_image):
    base = ImageRef.parse(base_image)
    manifest, _, _ = registry.manifest(base.repository, base.reference)
    smallest = min(manifest["layers"], key=lambda layer: layer["size"])["digest"]
    assert registry.mount_blob(unique_repository, smallest, base.repository)
    assert registry.blob_exists(unique_repository, smallest)

    config = manifest["config"]["digest"]
    assert not registry.mount_blob(unique_repository, config, "acumos-test/nowhere")
    registry.copy_blob(unique_repository, config, base.repository)
    assert registry.read_blob(unique_repository, config) == registry.read_blob(base.repository, config)


def _tiny_oci_manifest(registry: Registry, repository: str, folder: Path) -> bytes:
    """A one-file OCI image, its blobs uploaded; the manifest is for the caller to push."""
    (folder / "file").write_text("x")
    layer = oci.layer_from_tree({"file": folder / "file"}, folder / "layer.tar.gz")
    registry.upload_blob(repository, layer.path, layer.digest)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": None,
                         "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]}}).encode()
    registry.upload_blob(repository, config, _sha256(config))
    return json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
                       "config": {"mediaType": oci.OCI_CONFIG, "size": len(config), "digest": _sha256(config)},
                       "layers": [{"mediaType": oci.OCI_LAYER, "size": layer.size, "digest": layer.digest}]}).encode()


def test_manifests_push_and_delete(registry, unique_repository, tmp_path):
    body = _tiny_oci_manifest(registry, unique_repository, tmp_path)
    assert registry.put_manifest(unique_repository, "t1", body, oci.OCI_MANIFEST) == _sha256(body)
    assert registry.manifest(unique_repository, "t1") == (json.loads(body), oci.OCI_MANIFEST, _sha256(body))
    registry.delete_image(unique_repository, "t1")
    with pytest.raises(RegistryError, match="not found"):
        registry.manifest(unique_repository, _sha256(body))
    registry.delete_image(unique_repository, "t1")  # already gone: fine


# ---------------------------------------------------------------- the daemonless build

def test_appended_manifest_and_config(appended):
    registry, base, target, layer = appended["registry"], appended["base"], appended["target"], appended["layer"]
    base_manifest, _, _ = registry.manifest(base.repository, base.reference)
    manifest, media_type, digest = registry.manifest(target.repository, target.tag)
    assert (media_type, digest) == (oci.DOCKER_MANIFEST, appended["digest"])
    assert manifest["layers"] == [*base_manifest["layers"], {"mediaType": oci.DOCKER_LAYER, "size": layer.size,
                                                            "digest": layer.digest}]
    assert manifest["config"]["mediaType"] == oci.DOCKER_CONFIG

    base_config = json.loads(registry.read_blob(base.repository, base_manifest["config"]["digest"]))
    config = json.loads(registry.read_blob(target.repository, manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == [*base_config["rootfs"]["diff_ids"], layer.diff_id]
    assert config["history"][-1] == {"created": "2026-01-02T03:04:05Z", "created_by": "acumos: test layer"}
    assert config["created"] == "2026-01-02T03:04:05Z"
    assert config["config"]["Labels"]["org.acumos.test"] == "yes"
    env = config["config"]["Env"]
    assert env[0] == base_config["config"]["Env"][0]  # PATH is kept, in place
    assert "RUNNER_PORT=4321" in env and "RUNNER_PORT=3330" not in env
    assert env[-1] == "ACUMOS_GREETING=hi"
    assert config["config"]["Entrypoint"] == base_config["config"]["Entrypoint"]


def test_append_layers_to_an_oci_image_stays_oci_and_an_index_resolves_to_amd64(registry, registry_host,
                                                                              unique_repository, tmp_path):
    base_body = _tiny_oci_manifest(registry, unique_repository, tmp_path)
    base_digest = registry.put_manifest(unique_repository, "base", base_body, oci.OCI_MANIFEST)
    (tmp_path / "more.txt").write_text("more")
    layer = oci.layer_from_tree({"more.txt": tmp_path / "more.txt"}, tmp_path / "more.tar.gz")
    base, target = ImageRef(registry_host, unique_repository, "base"), ImageRef(registry_host, unique_repository, "new")
    digest = oci.append_layers(registry, base, target, [layer])
    manifest, media_type, _ = registry.manifest(unique_repository, "new")
    assert media_type == oci.OCI_MANIFEST and manifest["config"]["mediaType"] == oci.OCI_CONFIG
    assert [entry["mediaType"] for entry in manifest["layers"]] == [oci.OCI_LAYER, oci.OCI_LAYER]
    config = json.loads(registry.read_blob(unique_repository, manifest["config"]["digest"]))
    assert config["config"] == {"Env": [], "Labels": {}}  # a null config becomes an object
    assert config["history"] == [{"created": config["created"], "created_by": "acumos: append layer"}]

    index = json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [
        {"mediaType": oci.OCI_MANIFEST, "digest": digest, "size": len(registry.manifest_bytes(
            unique_repository, digest)[0]), "platform": {"os": "linux", "architecture": "arm64"}},
        {"mediaType": oci.OCI_MANIFEST, "digest": base_digest, "size": len(base_body),
         "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    index_digest = registry.put_manifest(unique_repository, "multi", index, oci.OCI_INDEX)
    assert registry.manifest_bytes(unique_repository, "multi") == (base_body, oci.OCI_MANIFEST, base_digest)
    registry.delete_image(unique_repository, "multi")  # the index, not the platform image it resolves to
    assert registry.manifest(unique_repository, base_digest)[2] == base_digest
    with pytest.raises(RegistryError, match="not found"):
        registry.manifest(unique_repository, index_digest)
    for reference in ("new", "base"):
        registry.delete_image(unique_repository, reference)


def test_append_layers_keeps_to_one_registry(registry, registry_host):
    base = ImageRef("registry.example.com", "acumos/runner-base", "x")
    with pytest.raises(RegistryError, match="another registry"):
        oci.append_layers(registry, base, ImageRef(registry_host, "acumos-test/x", "y"), [])


SHOW = ("import os; print(open('/app/hello.txt').read(), end=''); "
        "print(os.stat('/app').st_uid, os.environ['RUNNER_PORT'], os.environ['ACUMOS_GREETING'])")


def _run(docker_client, image: str) -> str:
    return docker_client.containers.run(image, ["-c", SHOW], entrypoint="python3", remove=True,
                                        network_mode="host").decode()


def test_appended_image_pulls_and_runs(appended, docker_client, cleanup_images):
    target = appended["target"]
    cleanup_images(str(target))
    docker_client.images.pull(f"{target.registry}/{target.repository}", tag=target.tag)
    assert _run(docker_client, str(target)) == f"{HELLO}{RUNNER_UID} 4321 hi\n"


def test_docker_archive_loads_and_runs(appended, docker_client, cleanup_images, tmp_path):
    registry, target = appended["registry"], appended["target"]
    repo_tag = f"acumos-test/loaded-{uuid.uuid4().hex[:12]}:v1"
    archive = tmp_path / "image.tar"
    chunks = []
    with archive.open("wb") as out:
        for chunk in oci.docker_archive(registry, target, repo_tag=repo_tag):
            chunks.append(out.write(chunk))
    assert archive.stat().st_size == sum(chunks) == oci.archive_size(registry, target, repo_tag=repo_tag)
    assert max(chunks) >= oci.CHUNK > chunks[-1]

    with tarfile.open(archive) as tar:
        legacy = json.load(tar.extractfile("manifest.json"))
        index = json.load(tar.extractfile("index.json"))
        assert json.load(tar.extractfile("oci-layout")) == {"imageLayoutVersion": "1.0.0"}
        assert tar.getmember(f"blobs/sha256/{appended['digest'].split(':')[1]}").size > 0
    assert legacy[0]["RepoTags"] == [repo_tag] and len(legacy[0]["Layers"]) == 4
    assert index["manifests"][0]["digest"] == appended["digest"]
    assert index["manifests"][0]["annotations"] == {"io.containerd.image.name": f"docker.io/{repo_tag}",
                                                    "org.opencontainers.image.ref.name": "v1"}

    cleanup_images(repo_tag)
    with archive.open("rb") as data:
        loaded = docker_client.images.load(data)
    assert repo_tag in [tag for image in loaded for tag in image.tags]
    assert _run(docker_client, repo_tag) == f"{HELLO}{RUNNER_UID} 4321 hi\n"


def test_docker_archive_of_an_image_the_engine_lacks_loads_every_layer(registry, registry_host, unique_repository,
                                                                       docker_client, cleanup_images, tmp_path):
    """The appended image shares its base layers with the engine; this one has none to skip."""
    body = _tiny_oci_manifest(registry, unique_repository, tmp_path)
    digest = registry.put_manifest(unique_repository, "tiny", body, oci.OCI_MANIFEST)
    ref = ImageRef(registry_host, unique_repository, "tiny")
    archive = b"".join(oci.docker_archive(registry, ref))
    assert len(archive) == oci.archive_size(registry, ref)
    cleanup_images(str(ref))
    (image,) = docker_client.images.load(archive)
    assert image.tags == [str(ref)]
    config = json.loads(registry.read_blob(unique_repository, json.loads(body)["config"]["digest"]))
    assert image.attrs["RootFS"]["Layers"] == config["rootfs"]["diff_ids"]
    assert image.id == json.loads(body)["config"]["digest"]
    registry.delete_image(unique_repository, digest)


# ---------------------------------------------------------------- errors

def test_a_missing_image_is_not_found_naming_repository_and_tag(registry, base_image):
    with pytest.raises(RegistryError) as raised:
        registry.manifest("acumos-test/no-such-repository", "no-such-tag")
    message = str(raised.value)
    assert "acumos-test/no-such-repository:no-such-tag" in message and "not found" in message
    assert raised.value.status == 404

    base = ImageRef.parse(base_image)
    with pytest.raises(RegistryError, match=f"{base.repository}:no-such-tag not found"):
        oci.docker_archive(registry, replace(base, tag="no-such-tag"))  # before the first byte


def test_an_unreachable_registry_is_a_registry_error():
    address = f"127.0.0.1:{free_port()}"
    with Registry(address, timeout=5) as registry, pytest.raises(RegistryError, match=address) as raised:
        registry.manifest("acumos/runner-base", "latest")
    assert raised.value.status is None
    assert "cannot reach" in str(raised.value)


# ---------------------------------------------------------------- auth challenges

USER, PASSWORD, TOKEN = "builder", "s3cret", "test-token"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class _AuthFrontDoor(BaseHTTPRequestHandler):
    """In front of the real registry: demands Basic auth, or a Bearer token from its own /token."""

    server: _AuthServer

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def _handle(self) -> None:
        if self.path.startswith("/token"):
            self._token()
        elif self.headers.get("Authorization") != self.server.expected:
            self._reply(401, b'{"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}',
                        {"WWW-Authenticate": self.server.challenge(self.path)})
        else:
            self._forward()

    def _token(self) -> None:
        self.server.token_requests.append(urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query))
        if self.headers.get("Authorization") != _basic(USER, PASSWORD):
            self._reply(401, b'{"details": "bad credentials"}')
        else:
            self._reply(200, json.dumps({"token": TOKEN}).encode())

    def _forward(self) -> None:
        request = urllib.request.Request(self.server.upstream + self.path, method=self.command,
                                         headers={"Accept": self.headers.get("Accept", "*/*")})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, headers, body = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, headers, body = error.code, error.headers, error.read()
        self._reply(status, body, {name: headers[name] for name in ("Content-Type", "Docker-Content-Digest")
                                   if name in headers})

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {}),
                            "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class _AuthServer(ThreadingHTTPServer):
    def __init__(self, scheme: str, upstream: str):
        super().__init__(("127.0.0.1", 0), _AuthFrontDoor)
        self.scheme, self.upstream = scheme, upstream
        self.host = f"127.0.0.1:{self.server_address[1]}"
        self.expected = _basic(USER, PASSWORD) if scheme == "basic" else f"Bearer {TOKEN}"
        self.token_requests: list[dict] = []

    def challenge(self, path: str) -> str:
        if self.scheme == "basic":
            return 'Basic realm="test registry"'
        repository = path.removeprefix("/v2/").rsplit("/", 2)[0]
        return (f'Bearer realm="http://{self.host}/token",service="test-registry",'
                f'scope="repository:{repository}:pull"')


@contextlib.contextmanager
def _front_door(scheme: str, registry_host: str) -> Iterator[_AuthServer]:
    server = _AuthServer(scheme, f"http://{registry_host}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("scheme", ["basic", "bearer"])
def test_auth_challenges_are_answered(scheme, registry, registry_host, base_image):
    base = ImageRef.parse(base_image)
    expected = registry.manifest(base.repository, base.reference)
    with _front_door(scheme, registry_host) as door, Registry(door.host, username=USER, password=PASSWORD) as client:
        assert client.manifest(base.repository, base.reference) == expected
        assert client.manifest(base.repository, base.reference) == expected
        assert client.blob_exists(base.repository, expected[0]["config"]["digest"])
    if scheme == "bearer":  # one token, cached for the scope
        assert door.token_requests == [{"service": ["test-registry"], "scope": [f"repository:{base.repository}:pull"]}]


@pytest.mark.parametrize("scheme", ["basic", "bearer"])
def test_bad_credentials_are_a_401_registry_error(scheme, registry_host, base_image):
    base = ImageRef.parse(base_image)
    with (_front_door(scheme, registry_host) as door, Registry(door.host, username=USER, password="wrong") as client,
          pytest.raises(RegistryError, match=door.host) as raised):
        client.manifest(base.repository, base.reference)
    assert raised.value.status == 401
    if scheme == "bearer":
        assert "token" in str(raised.value)
