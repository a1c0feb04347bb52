"""Marketplace pages and downloads. What a user may see comes from marketplace.selectors only;
anything else is a 404, so a page never tells a stranger that a model exists."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Prefetch, Q
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from deployment.selectors import deploy_panel
from images.selectors import image_panel
from marketplace import downloads
from marketplace.choices import ArtifactKind, RevisionStatus
from marketplace.models import Revision
from marketplace.selectors import visible_artifacts, visible_revisions, visible_solutions
from onboarding.choices import StepStatus
from onboarding.models import OnboardingJob
from onboarding.validation import message_name, runtime_of

RECENT_JOBS = 10
_KIND_ORDER = {kind: i for i, kind in enumerate(ArtifactKind.values)}
_UNFINISHED_STEPS = [StepStatus.PENDING, StepStatus.RUNNING]


@require_GET
@login_required
def my_models(request):
    revisions = Revision.objects.annotate(artifact_count=Count("artifacts")).order_by("-created")
    solutions = (visible_solutions(request.user).filter(owner=request.user)
                 .prefetch_related(Prefetch("revisions", queryset=revisions)))
    jobs = (OnboardingJob.objects.filter(owner=request.user)
            .annotate(steps_total=Count("steps"),
                      steps_done=Count("steps", filter=~Q(steps__status__in=_UNFINISHED_STEPS)))
            .order_by("-created")[:RECENT_JOBS])
    return render(request, "marketplace/my_models.html", {"solutions": solutions, "jobs": jobs})


@require_GET
@login_required
def solution(request, pk):
    found = get_object_or_404(visible_solutions(request.user), pk=pk)
    revisions = (visible_revisions(request.user).filter(solution=found)
                 .annotate(artifact_count=Count("artifacts")).order_by("-created"))
    return render(request, "marketplace/solution.html", {"solution": found, "revisions": revisions})


@require_GET
@login_required
def revision(request, pk):
    found = get_object_or_404(visible_revisions(request.user), pk=pk)
    artifacts = sorted(visible_artifacts(request.user).filter(revision=found), key=lambda a: _KIND_ORDER[a.kind])
    job = OnboardingJob.objects.filter(revision_uuid=found.pk).first()
    return render(request, "marketplace/revision.html", {
        "revision": found, "solution": found.solution, "artifacts": artifacts,
        "summary": metadata_summary(found.metadata), "job": job,
        "steps": job.steps.all() if job else [],
        **image_panel(found, request.user),
        **deploy_panel(found, request.user),
    })


@require_GET
@login_required
def artifact_download(request, pk):
    return downloads.artifact_response(get_object_or_404(visible_artifacts(request.user), pk=pk))


@require_GET
@login_required
def bundle_download(request, pk):
    ready = visible_revisions(request.user).filter(status=RevisionStatus.READY)
    return downloads.bundle_response(get_object_or_404(ready, pk=pk))


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
