"""Reads about a revision's image. Visibility itself is marketplace.selectors'; the revision page's
image panel is images.panels."""

from __future__ import annotations

from marketplace.choices import ArtifactKind
from marketplace.models import Artifact, Revision


def image_artifact(revision: Revision) -> Artifact | None:
    return revision.artifacts.filter(kind=ArtifactKind.IMAGE).first()

