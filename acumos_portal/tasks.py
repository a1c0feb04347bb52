"""The portal's own periodic tasks: one reaper for every kind of job, and the start-up resume."""

from __future__ import annotations

from celery import shared_task

from acumos_portal import jobs


@shared_task(name="acumos_portal.reap_jobs", ignore_result=True)
def reap_jobs() -> list[str]:
    return jobs.reap_all()


@shared_task(name="acumos_portal.resume_jobs", ignore_result=True)
def resume_jobs() -> list[str]:
    return jobs.resume_all()
