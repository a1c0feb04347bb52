"""What the revision page shows about its image. Visibility itself is marketplace.selectors'."""

from __future__ import annotations

from images import services
from images.choices import UNFINISHED
from images.models import ImageBuild
from marketplace.choices import ArtifactKind
from marketplace.models import Artifact, Revision
from marketplace.selectors import can_change_solution

RECENT_BUILDS = 5


def image_artifact(revision: Revision) -> Artifact | None:
    return revision.artifacts.filter(kind=ArtifactKind.IMAGE).first()


def image_panel(revision: Revision, user) -> dict:
    builds = list(ImageBuild.objects.filter(revision=revision).select_related("requested_by")[:RECENT_BUILDS])
    problem = services.configuration_problem()
    return {
        "image": image_artifact(revision),
        "builds": builds,
        "building": any(build.status in UNFINISHED for build in builds),
        "build_problem": problem,
        "can_build": revision.is_ready and not problem and can_change_solution(user, revision.solution),
    }
