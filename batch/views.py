"""The pages: your batch jobs, one job (its progress polls itself while it runs), cancelling it, and its outputs
to download. Who may: batch.selectors (a job you may not see is 404)."""

from __future__ import annotations

from pathlib import PurePosixPath

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from acumos_portal.api.refusals import Refused
from batch import selectors, services


def _visible(request, pk):
    return get_object_or_404(selectors.visible_jobs(request.user), pk=pk)


@require_GET
@login_required
def job_list(request):
    return render(request, "batch/list.html", {"jobs": selectors.visible_jobs(request.user)[:200]})


@require_GET
@login_required
def detail(request, pk):
    job = _visible(request, pk)
    return render(request, "batch/detail.html", {"job": job, "can_cancel": selectors.can_cancel(request.user, job)})


@require_GET
@login_required
def progress(request, pk):
    """The progress part alone, for htmx: it asks for itself while the job is unfinished."""
    job = _visible(request, pk)
    return render(request, "batch/_progress.html", {"job": job, "can_cancel": selectors.can_cancel(request.user, job)})


@require_POST
@login_required
def cancel(request, pk):
    job = _visible(request, pk)
    try:
        services.cancel(job, request.user)
        messages.success(request, "Cancelled: it stops after the shard it is on, and keeps no output.")
    except Refused as refused:
        messages.error(request, refused.message)
    return redirect("batch:detail", pk=job.pk)


@require_GET
@login_required
def download(request, pk, which):
    job = _visible(request, pk)
    key = {"predictions": job.predictions_key, "errors": job.errors_key}.get(which)
    if not key:
        raise Http404("no such output")
    return FileResponse(default_storage.open(key, "rb"), as_attachment=True,
                        filename=f"{job.pk}-{PurePosixPath(key).name}", content_type="text/csv")
