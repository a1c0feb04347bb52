"""View context for the revision page's image panel (drawn in the page, and alone for htmx by
images.views.panel): the image, the latest builds, and whether the user may start one."""

from __future__ import annotations

from acumos_portal.choices import UNFINISHED
from images import services
from images.models import ImageBuild
from images.selectors import image_artifact
from marketplace.models import Revision
from marketplace.selectors import can_change_solution

RECENT_BUILDS = 5


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
