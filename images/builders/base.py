"""What every image builder takes and gives. A builder makes the image
base + [shared layer with the extra packages] + [one layer with the bundle], with the labels,
pushes it to the registry and says where it is; the builders differ only in how."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from images.dependencies import Dependencies
from images.oci import ImageRef

BUNDLE_PATH = "app/bundle"  # the base image's CMD serves /app/bundle
DEPS_PATH = "app/deps"  # on the base image's PYTHONPATH


class BuildFailed(Exception):
    """The build cannot succeed as asked (missing packages, a base image that does not exist)."""


class BuilderUnavailable(Exception):
    """The engine or the registry cannot be reached: worth another try later."""


@dataclass
class BuildRequest:
    base: ImageRef
    target: ImageRef  # registry/repository:tag to push
    bundle: Path  # a directory: metadata.json, model.proto, modelpackage.zip (license.json)
    deps: Dependencies | None
    labels: dict[str, str] = field(default_factory=dict)
    log: Callable[[str], None] = print


class ImageBuilder(Protocol):
    kind: str

    def build(self, request: BuildRequest) -> ImageRef:
        """Build and push; returns the target with the pushed manifest's digest."""
