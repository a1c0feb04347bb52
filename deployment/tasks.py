"""Celery tasks for deployments: thin, they take ids (the job's shape: acumos_portal.jobs)."""

from __future__ import annotations

from celery import shared_task

from acumos_portal import jobs
from deployment import services


@jobs.job_task(services.OPERATION_TASK)
def run_operation(operation_id: str) -> None:
    services.run_operation(operation_id)


@shared_task(name="deployment.check_deployments", ignore_result=True)
def check_deployments() -> None:
    services.check_deployments()


@shared_task(name="deployment.decommission_due", ignore_result=True)
def decommission_due() -> None:
    services.decommission_due()


@shared_task(name="deployment.sweep_sandboxes", ignore_result=True)
def sweep_sandboxes() -> None:
    services.sweep_sandboxes()
