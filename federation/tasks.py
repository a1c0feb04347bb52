"""Celery tasks for federation: thin, they take ids (the job's shape: acumos_portal.jobs)."""

from __future__ import annotations

from celery import shared_task

from acumos_portal import jobs
from federation import services


# runs_model: a run smoke-tests what it imports, so it gets the model workers (acumos_portal.jobs).
@jobs.job_task(services.RUN_TASK, runs_model=True)
def run_subscription(run_id: str) -> None:
    services.execute_run(run_id)


@shared_task(name="federation.run_due", ignore_result=True)
def run_due() -> None:
    services.run_due()
