"""The pages: your batch jobs, one job (its progress polls itself while it runs), cancelling it, and its outputs
to download. Who may: batch.selectors (a job you may not see is 404)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from acumos_portal.api.refusals import Refused
from batch import selectors, services
from batch.forms import StartForm


def _visible(request, pk):
    return get_object_or_404(selectors.visible_jobs(request.user), pk=pk)


@require_GET
@login_required
def job_list(request):
    deployment, revision = request.GET.get("deployment"), request.GET.get("revision")
    initial = {"runs_on": f"deployment:{deployment}" if deployment else f"revision:{revision}" if revision else None}
    return _list_page(request, StartForm(request.user, initial=initial, revision_id=revision))


def _list_page(request, form: StartForm, status: int = 200):
    return render(request, "batch/list.html", {"jobs": selectors.visible_jobs(request.user)[:200], "form": form},
                  status=status)


@require_POST
@login_required
def start(request):
    """A job on an uploaded file: the file is stored as an input, then the job starts; a refusal goes beside
    its field, and the file stored for a job that did not start is removed."""
    form = StartForm(request.user, request.POST, request.FILES)
    if not form.is_valid():
        return _list_page(request, form, status=400)
    upload = None
    try:
        upload = services.upload_input(user=request.user, uploaded=form.cleaned_data["file"])
        job = services.start_job(user=request.user, **form.chosen(), method=form.cleaned_data["method"],
                                 input={"kind": "upload", "upload": str(upload.pk)},
                                 id_column=form.cleaned_data["id_column"], shard_rows=form.cleaned_data["shard_rows"],
                                 output_format=form.cleaned_data["output_format"])
    except Refused as refused:
        if upload is not None:
            services.discard_upload(upload)
        form.place(refused.field, refused.message)
        return _list_page(request, form, status=400)
    messages.success(request, "Started: its progress is below, and you are told when it ends.")
    return redirect("batch:detail", pk=job.pk)


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
    found = selectors.output_download(_visible(request, pk), which)
    if found is None:
        raise Http404("no such output")
    handle, name, media = found
    return FileResponse(handle, as_attachment=True, filename=name, content_type=media)
