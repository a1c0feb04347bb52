"""View context for the revision page's image panel (drawn in the page, and alone for htmx by
pages.views.revisions): the image, the latest builds, whether the user may start one and, when there is
no image, why in one plain sentence. The settings that make images are shown to admins only: a data
scientist reads what they can do without an image, not how a site is configured."""

from __future__ import annotations

import re

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from acumos_portal.choices import UNFINISHED, JobStatus
from images import services
from images.models import ImageBuild
from images.selectors import image_artifact
from licensing import policy
from licensing.choices import Action
from marketplace.models import Revision
from marketplace.selectors import can_change_solution, is_admin

RECENT_BUILDS = 5
BACKTICKED = re.compile(r"`([^`\n]+)`")


def image_panel(revision: Revision, user, *, local_target: str = "") -> dict:
    """`local_target`: the name of the sandboxed target on this host that the user may deploy the revision
    to (the page decides it: images may not read deployment); it runs the bundle, so needs no image."""
    builds = list(ImageBuild.objects.filter(revision=revision).select_related("requested_by")[:RECENT_BUILDS])
    problem = services.configuration_problem()
    image = image_artifact(revision)
    building = any(build.status in UNFINISHED for build in builds)
    return {
        "image": image,
        "builds": [(build, code_spans(build.error)) for build in builds],
        "building": building,
        "no_image": "" if image else why_no_image(revision, builds, building, problem),
        "builder_problem": problem,
        "shows_builder_settings": bool(problem) and is_admin(user),
        "local_target": local_target,
        "can_build": revision.is_ready and not problem and can_change_solution(user, revision.solution),
        # Where the image lives (and how to pull it) is for those who may download it: a licence that needs
        # an agreement would otherwise be passed by pulling from the registry instead of the tarball.
        "image_denied": _image_denied(revision, user) if image else "",
    }


def _image_denied(revision: Revision, user) -> str:
    decision = policy.decide(policy.Who.of(user), revision, Action.DOWNLOAD)
    return "" if decision.allowed else decision.message


def why_no_image(revision: Revision, builds: list[ImageBuild], building: bool, problem: str) -> SafeString:
    """One sentence for anyone who may see the revision; `builds` newest first."""
    if not revision.is_ready:
        return mark_safe("No image yet: this version is still being onboarded.")
    if building:
        return mark_safe("An image is being built for this version; this panel follows it.")
    if problem == services.NOT_CONFIGURED:
        return mark_safe(f"No image exists for this version: {escape(problem)}.")
    if problem:  # a setting is wrong: its name and value are for admins (builder_problem)
        return mark_safe("No image exists for this version: this site's image builder is not set up correctly.")
    if builds and builds[0].status == JobStatus.FAILED:
        reason = code_spans(last_line(builds[0].error))
        return mark_safe(f"No image exists for this version because its last build failed: {reason}")
    return mark_safe("No image has been built for this version yet.")


def last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no reason was recorded"


def code_spans(text: str) -> SafeString:
    """Escaped text whose `quoted` parts become <code>: a message written for a terminal reads as
    prose on the page, with no backtick shown."""
    return mark_safe(BACKTICKED.sub(r"<code>\1</code>", escape(text or "")).replace("`", "'"))
