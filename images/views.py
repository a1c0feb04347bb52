"""The revision page's image panel's actions: build on demand ("Create microservice") and download the
image as a `docker load` tarball (the panel itself, and its htmx refresh, are pages.views.revisions).
Visibility comes from marketplace.selectors."""

from __future__ import annotations

from dataclasses import replace

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpResponseForbidden, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from acumos_portal.api.errors import error_body
from images import oci, services
from images.selectors import image_artifact
from licensing.policy import LicenceDenied
from licensing.views import denied_page as licence_denied
from marketplace import services as marketplace_services
from marketplace.selectors import can_change_solution, visible_revisions


@require_POST
@login_required
def start_build(request, pk):
    revision = get_object_or_404(visible_revisions(request.user), pk=pk)
    if not can_change_solution(request.user, revision.solution):
        return HttpResponseForbidden("only the model's owner or an admin can build its image")
    try:
        build = services.request_build(revision, request.user)
    except services.BuildRefused as refused:
        messages.error(request, refused.message[:1].upper() + refused.message[1:] + ".")
    else:
        messages.success(request, f"Image build {str(build.pk)[:8]} started.")
    return redirect(reverse("marketplace:revision", args=[revision.pk]) + "#image")


@require_GET
@login_required
def archive(request, pk):
    """The image as a tarball for `docker load`, streamed from the registry layer by layer. A download like
    any other: the licence may refuse it, or take one download from the caller's agreement."""
    revision = get_object_or_404(visible_revisions(request.user), pk=pk)
    artifact = image_artifact(revision)
    if artifact is None:
        raise Http404("this version has no image yet")
    reference = oci.ImageRef.parse(artifact.uri)
    registry = services.registry(reference.registry)
    tag = str(replace(reference, digest=""))
    try:
        with transaction.atomic():  # a registry that cannot say the size: nothing sent, nothing counted
            marketplace_services.begin_download(request.user, revision, kind="image")
            size = oci.archive_size(registry, reference, repo_tag=tag)
    except LicenceDenied as denied:
        return _denied(request, denied, revision)
    response = StreamingHttpResponse(oci.docker_archive(registry, reference, repo_tag=tag),
                                     content_type="application/x-tar")
    response["Content-Disposition"] = f'attachment; filename="{services.archive_file_name(revision)}"'
    response["Content-Length"] = str(size)
    return response


def _denied(request, denied: LicenceDenied, revision):
    """A script (`Accept: application/json`) reads the API's error shape; a browser, the page that says
    what to do next. Both with the denial's status (403, or 402 when access is sold)."""
    if request.accepts("application/json") and not request.accepts("text/html"):
        return JsonResponse(error_body(denied.code, denied.message, denied.details), status=denied.status)
    return licence_denied(request, denied, revision)
