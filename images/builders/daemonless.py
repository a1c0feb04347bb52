"""The daemonless builder: no Docker engine, no socket. The bundle (and the shared layer with the
extra packages) become deterministic layer tarballs on this host, and the new image is the base
image's manifest with those layers appended, written through the registry's HTTP API; the base
layers are mounted from the base repository, never downloaded."""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path

import requests

from images import oci
from images.builders.base import BUNDLE_PATH, DEPS_PATH, BuilderUnavailable, BuildFailed, BuildRequest
from images.oci import ImageRef, Layer, Registry, RegistryError

# A layer's entries for /app replace the base's: keep it the runner user's, as the base made it.
RUNNER_OWNER = {"uid": 10001, "gid": 10001}


class DaemonlessBuilder:
    kind = "daemonless"

    def __init__(self, registry: Registry, cache: Path):
        self.registry, self.cache = registry, cache

    def build(self, request: BuildRequest) -> ImageRef:
        with tempfile.TemporaryDirectory(prefix="acumos-layer-") as tmp:
            layers = []
            if request.deps is not None:
                layers.append(self._deps_layer(request))
            bundle = oci.layer_from_tree({BUNDLE_PATH: request.bundle}, Path(tmp, "bundle.tar.gz"), **RUNNER_OWNER)
            layers.append(bundle)
            request.log(f"bundle layer {layers[-1].digest} ({layers[-1].size} bytes)")
            request.log(f"appending {len(layers)} layer(s) to {request.base} as {request.target}")
            try:
                digest = oci.append_layers(self.registry, request.base, request.target, layers,
                                           labels=request.labels, comment="model bundle")
            except RegistryError as exc:
                raise _classify(exc) from exc
            except requests.RequestException as exc:
                raise BuilderUnavailable(f"the registry {request.target.registry} could not be reached: {exc}") from exc
        return ImageRef(request.target.registry, request.target.repository, request.target.tag, digest)

    def _deps_layer(self, request: BuildRequest) -> Layer:
        """Made once per requirement set and kept beside the installed tree."""
        folder = self.cache / f"deps-{request.deps.key}"
        record = folder / "layer.json"
        if record.exists():
            saved = json.loads(record.read_text())
            layer = Layer(Path(saved["path"]), saved["digest"], saved["diff_id"], saved["size"])
            if layer.path.exists():
                request.log(f"extra packages layer: cached {layer.digest}")
                return layer
        request.log("extra packages layer: packing")
        # Written under a name of its own, then renamed: a concurrent build never reads half a layer.
        packed = oci.layer_from_tree({DEPS_PATH: request.deps.tree}, folder / f".layer-{uuid.uuid4().hex}.tar.gz",
                                     **RUNNER_OWNER)
        layer = replace(packed, path=folder / "layer.tar.gz")
        os.replace(packed.path, layer.path)
        partial = folder / f".layer-{uuid.uuid4().hex}.json"
        partial.write_text(json.dumps({"path": str(layer.path), "digest": layer.digest, "diff_id": layer.diff_id,
                                       "size": layer.size}))
        os.replace(partial, record)
        request.log(f"extra packages layer {layer.digest} ({layer.size} bytes)")
        return layer


def _classify(exc: RegistryError) -> Exception:
    if exc.status in (None, 429) or (exc.status or 0) >= 500:
        return BuilderUnavailable(str(exc))
    return BuildFailed(str(exc))
