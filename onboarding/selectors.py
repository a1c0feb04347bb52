"""Reads of onboarding jobs. The one answer to "who may see a job": its owner, and a portal admin
(everyone's jobs, where a page or the API asks for them). Pages, the API and My Models all ask here."""

from __future__ import annotations

from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet

from marketplace.models import Revision, Solution
from onboarding.choices import UNFINISHED_STEPS
from onboarding.models import OnboardingJob, StepResult


def visible_jobs(user, *, everyone: bool = False) -> QuerySet[OnboardingJob]:
    """The user's own jobs; with `everyone`, a portal admin's view of all jobs (others get their own)."""
    if not (user and user.is_authenticated):
        return OnboardingJob.objects.none()
    if everyone and user.is_portal_admin:
        return OnboardingJob.objects.all()
    return OnboardingJob.objects.filter(owner=user)


def visible_job_or_none(user, pk) -> OnboardingJob | None:
    """One job for its page: its owner's, and every job for a portal admin."""
    return visible_jobs(user, everyone=True).select_related("owner").filter(pk=pk).first()


def jobs_with_steps(queryset, *, logs: bool = True) -> QuerySet[OnboardingJob]:
    """Jobs with their steps in order (one query more), and whether their revision and solution exist."""
    steps = StepResult.objects.order_by("position")
    if not logs:
        steps = steps.defer("log")
    return queryset.select_related("owner").prefetch_related(Prefetch("steps", queryset=steps)).annotate(
        has_revision=Exists(Revision.objects.filter(pk=OuterRef("revision_uuid"))),
        has_solution=Exists(Solution.objects.filter(pk=OuterRef("solution_uuid"))),
    )


def jobs_with_progress(user) -> QuerySet[OnboardingJob]:
    """The user's uploads with how many of their steps are done (templates/includes/job_progress.html)."""
    return (OnboardingJob.objects.filter(owner=user)
            .annotate(steps_total=Count("steps"),
                      steps_done=Count("steps", filter=~Q(steps__status__in=UNFINISHED_STEPS)))
            .order_by("-created"))


def latest_job_of(revision) -> OnboardingJob | None:
    """The job that made (or is making) a revision: the newest, if it was uploaded again after a failure."""
    return OnboardingJob.objects.filter(revision_uuid=revision.pk).order_by("-created").first()


def latest_steps_of(revision) -> list[StepResult]:
    """The steps of the revision's latest job, in one query (a job has its steps from the start)."""
    steps = list(StepResult.objects.filter(job__revision_uuid=revision.pk).select_related("job")
                 .order_by("-job__created", "position"))
    return [step for step in steps if step.job_id == steps[0].job_id] if steps else []
