"""The revision page's image panel's actions: build on demand ("Create microservice") and download the
image as a `docker load` tarball (the panel itself, and its htmx refresh, are pages.views.revisions).
Visibility comes from marketplace.selectors."""

from __future__ import annotations

from dataclasses import replace

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseForbidden, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from images import oci, services
from images.selectors import image_artifact
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
    """The image as a tarball for `docker load`, streamed from the registry layer by layer."""
    revision = get_object_or_404(visible_revisions(request.user), pk=pk)
    artifact = image_artifact(revision)
    if artifact is None:
        raise Http404("this version has no image yet")
    reference = oci.ImageRef.parse(artifact.uri)
    registry = services.registry(reference.registry)
    tag = str(replace(reference, digest=""))
    response = StreamingHttpResponse(oci.docker_archive(registry, reference, repo_tag=tag),
                                     content_type="application/x-tar")
    response["Content-Disposition"] = f'attachment; filename="{services.archive_file_name(revision)}"'
    response["Content-Length"] = str(oci.archive_size(registry, reference, repo_tag=tag))
    return response
