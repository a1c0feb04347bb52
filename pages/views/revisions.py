"""A revision's technical page (artifacts, onboarding steps, image, deploy) and the downloads."""

from __future__ import annotations

from django.shortcuts import get_object_or_404, render
from django.urls import path
from django.views.decorators.http import require_GET
from django.views.generic import RedirectView

from batch.selectors import can_start_on_revision
from deployment.choices import TargetKind
from deployment.panels import deploy_panel
from deployment.selectors import can_deploy, targets_for
from images.panels import image_panel
from licensing.policy import LicenceDenied
from licensing.services import may_license
from licensing.views import denied_page as licence_denied
from marketplace import downloads, services
from marketplace.choices import RevisionStatus
from marketplace.selectors import visible_artifacts, visible_revisions
from onboarding.selectors import latest_job_of
from onboarding.validation import message_name, runtime_of
from pages.artifacts import in_kind_order


@require_GET
def revision(request, pk):
    found = get_object_or_404(visible_revisions(request.user), pk=pk)
    artifacts = in_kind_order(visible_artifacts(request.user).filter(revision=found))
    job = latest_job_of(found)
    return render(request, "marketplace/revision.html", {
        "revision": found, "solution": found.solution, "artifacts": artifacts,
        "summary": metadata_summary(found.metadata), "job": job,
        "steps": job.steps.all() if job else [],
        "may_license": found.is_ready and may_license(request.user, found.solution),  # the licence editor's link
        **image_panel(found, request.user, local_target=local_target_name(found, request.user)),
        **deploy_panel(found, request.user),
        "can_batch": found.is_ready and can_start_on_revision(request.user, found),  # run it over a file, no deploy
    })


@require_GET
def revision_image(request, pk):
    """The image panel alone, for htmx: it asks for itself while a build runs. Here, not in images,
    because it names the local target (images may not read deployment); seen by whoever sees the page."""
    found = get_object_or_404(visible_revisions(request.user), pk=pk)
    panel = image_panel(found, request.user, local_target=local_target_name(found, request.user))
    return render(request, "images/_panel.html", {"revision": found, **panel})


def local_target_name(revision, user) -> str:
    """The sandboxed target on this host ("This host") the user may deploy the revision to, or "": it runs
    the model bundle, so the image panel offers it when there is no image."""
    if not (revision.is_ready and can_deploy(user, revision, seen=True)):
        return ""
    return targets_for(user).filter(kind=TargetKind.LOCAL).values_list("name", flat=True).first() or ""


@require_GET
def artifact_download(request, pk):
    artifact = get_object_or_404(visible_artifacts(request.user), pk=pk)
    try:
        services.begin_download(request.user, artifact.revision, artifact, kind=artifact.name)
    except LicenceDenied as denied:
        return licence_denied(request, denied, artifact.revision)
    return downloads.artifact_response(artifact)


@require_GET
def bundle_download(request, pk):
    ready = visible_revisions(request.user).filter(status=RevisionStatus.READY)
    revision = get_object_or_404(ready, pk=pk)
    try:
        services.begin_download(request.user, revision, kind="bundle")
    except LicenceDenied as denied:
        return licence_denied(request, denied, revision)
    return downloads.bundle_response(revision)


urlpatterns = [
    path("solutions/<uuid:pk>/", RedirectView.as_view(pattern_name="marketplace:model", permanent=True)),
    path("revisions/<uuid:pk>/", revision, name="revision"),
    path("revisions/<uuid:pk>/image/", revision_image, name="revision-image"),
    path("revisions/<uuid:pk>/bundle/", bundle_download, name="bundle-download"),
    path("artifacts/<uuid:pk>/download/", artifact_download, name="artifact-download"),
]


def metadata_summary(metadata: dict) -> dict:
    """What the revision page shows of metadata.json (any of the accepted schema versions)."""
    runtime = runtime_of(metadata) if isinstance(metadata, dict) else {}
    pip = ((runtime.get("dependencies") or {}).get("pip") or {}) if isinstance(runtime, dict) else {}
    methods = metadata.get("methods") or {}
    return {
        "name": metadata.get("name", ""),
        "schema": metadata.get("schema", ""),
        "model_version": metadata.get("modelVersion", ""),
        "runtime": runtime if isinstance(runtime, dict) else {},
        "requirements": [_requirement(r) for r in pip.get("requirements") or []],
        "methods": [{"name": name,
                     "input": message_name((spec or {}).get("input")) or "",
                     "output": message_name((spec or {}).get("output")) or "",
                     "description": (spec or {}).get("description", "")}
                    for name, spec in methods.items()],
    }


def _requirement(requirement) -> str:
    if isinstance(requirement, dict):
        version = requirement.get("version")
        return f"{requirement.get('name', '')}=={version}" if version else str(requirement.get("name", ""))
    return str(requirement)
