"""The order the pages list a revision's artifacts in: that of ArtifactKind (metadata first, then the
model, its protobuf, ...), the same on the model page and the revision page."""

from __future__ import annotations

from collections.abc import Iterable

from marketplace.choices import ArtifactKind
from marketplace.models import Artifact

KIND_ORDER = {kind: i for i, kind in enumerate(ArtifactKind.values)}


def in_kind_order(artifacts: Iterable[Artifact]) -> list[Artifact]:
    """A kind ArtifactKind no longer lists (an old row) goes last rather than failing the page."""
    return sorted(artifacts, key=lambda artifact: KIND_ORDER.get(artifact.kind, len(KIND_ORDER)))
