"""Reads about revisions' images. Who may see an image build: whoever may see its revision
(marketplace.selectors.visible_revisions); the revision page's image panel is images.panels."""

from __future__ import annotations

from django.db.models import QuerySet

from images.models import ImageBuild
from marketplace.choices import ArtifactKind
from marketplace.models import Artifact, Revision
from marketplace.selectors import visible_revisions


def image_artifact(revision: Revision) -> Artifact | None:
    return revision.artifacts.filter(kind=ArtifactKind.IMAGE).first()


def visible_builds(user) -> QuerySet[ImageBuild]:
    """The image builds of the revisions the user may see, newest first."""
    return (ImageBuild.objects.filter(revision__in=visible_revisions(user)).select_related("requested_by")
            .order_by("-created"))
