"""The onboarding page and the job page. An upload goes through onboarding.http and
onboarding.services exactly as an API upload does; a job is seen by its owner and portal admins."""

from __future__ import annotations

import functools

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.uploadhandler import StopUpload
from django.db import OperationalError
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from acumos_portal import capacity
from acumos_portal.uploads import UploadTooLarge, check_upload_size
from marketplace.selectors import visible_revisions
from onboarding import http
from onboarding.choices import STEPS, UNFINISHED_STEPS, Source, StepStatus
from onboarding.forms import OnboardForm
from onboarding.models import OnboardingJob
from onboarding.selectors import visible_job_or_none
from onboarding.services import OnboardingClosed, OnboardingQuotaReached, check_quota, onboarding_open, onboarding_start
from onboarding.validation import Invalid


def _is_xhr(request) -> bool:
    return request.headers.get("X-Requested-With") == "XMLHttpRequest"


def _page(request, form: OnboardForm, status: int = 200, headers: dict | None = None):
    template = "onboarding/_upload_form.html" if _is_xhr(request) else "onboarding/new.html"
    context = {"form": form, "steps": STEPS, "max_bytes": settings.ACUMOS_MAX_UPLOAD_BYTES}
    response = render(request, template, context, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _closed(request, status: int = 200):
    """No form: the site does not take models now. Refused uploads get OnboardingClosed's status (503,
    as from the APIs; the class says why). The card keeps data-onboard-panel so upload.js can show it."""
    return render(request, "onboarding/new.html", {"closed": True, "steps": STEPS}, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def new(request):
    if not onboarding_open():  # before the body is read: nothing of a refused upload is kept
        return _closed(request, status=200 if request.method == "GET" else OnboardingClosed.status)
    try:
        check_quota(request.user)  # before the body is read too
    except OnboardingQuotaReached as exc:
        if request.method == "GET":  # the form stays: a job may finish before the files are chosen
            messages.warning(request, exc.message)
        else:
            return _over_quota(request, exc)
    if request.method == "GET":
        return _page(request, OnboardForm())
    return _upload(request)


def _over_quota(request, refused: OnboardingQuotaReached):
    """The refusal's status (429, as from the APIs), with the message on the form."""
    return _page(request, OnboardForm(data={}, refusal=refused.message), status=refused.status)


def _shortage_on_the_form(view):
    """The disk full (507) or the database busy (503) while an upload is taken: said on the form, as
    the APIs say it in their envelopes (acumos_portal.capacity)."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except (OSError, OperationalError) as exc:
            shortage = capacity.shortage_of(exc)
            if shortage is None:
                raise
            return _page(request, OnboardForm(data={}, refusal=shortage.message), status=shortage.status,
                         headers=shortage.headers)

    return wrapped


@_shortage_on_the_form
def _upload(request):
    try:
        form = OnboardForm(request.POST, request.FILES)  # reading the body streams the files to disk
        check_upload_size(request)
        if not form.is_valid():
            return _page(request, form, status=400)
        with http.workdir() as tmp:
            job = onboarding_start(user=request.user, parts=http.parts_from_request(request, tmp),
                                   source=Source.WEB)
    except (UploadTooLarge, StopUpload):  # StopUpload: the size handler stopped before parsing began
        limit = filesizeformat(settings.ACUMOS_MAX_UPLOAD_BYTES)
        refused = OnboardForm(data={}, refusal=f"The upload is too large: the limit is {limit} in all.")
        return _page(request, refused, status=413)
    except Invalid as exc:
        form.add_invalid(exc)
        return _page(request, form, status=400)
    except OnboardingClosed:  # closed while the body was arriving
        return _closed(request, status=503)
    except OnboardingQuotaReached as exc:  # another upload of this user's took the last slot meanwhile
        return _over_quota(request, exc)
    location = reverse("onboarding:job", args=[job.pk])
    return JsonResponse({"job": str(job.pk), "location": location}, status=201) if _is_xhr(request) \
        else redirect(location)


def _visible_job(request, pk) -> OnboardingJob:
    """Its owner's and a portal admin's (onboarding.selectors); a 404 to anyone else."""
    found = visible_job_or_none(request.user, pk)
    if found is None:
        raise Http404("no such job")
    return found


def _job_context(request, job: OnboardingJob) -> dict:
    now = timezone.now()
    steps = list(job.steps.all())
    for step in steps:  # a running step shows how long it has been running
        step.elapsed = (now - step.started).total_seconds() if step.status == StepStatus.RUNNING and step.started \
            else None
    finished = sum(step.status not in UNFINISHED_STEPS for step in steps)
    failed_at = next((step for step in steps if step.status == StepStatus.FAILED), None)
    revision = visible_revisions(request.user).filter(pk=job.revision_uuid).first() if job.finished_ok else None
    return {"job": job, "steps": steps, "steps_finished": finished, "failed_at": failed_at, "revision": revision}


@require_GET
@login_required
def job(request, pk):
    found = _visible_job(request, pk)
    return render(request, "onboarding/job.html", _job_context(request, found))


@require_GET
@login_required
def job_steps(request, pk):
    found = _visible_job(request, pk)
    return render(request, "onboarding/_job_live.html", _job_context(request, found))
