"""Celery tasks for deployments: thin, they take ids."""

from __future__ import annotations

from celery import shared_task

from deployment import services


@shared_task(name="deployment.run_operation", acks_late=True, ignore_result=True)
def run_operation(operation_id: str) -> None:
    services.run_operation(operation_id)


@shared_task(name="deployment.check_deployments", ignore_result=True)
def check_deployments() -> None:
    services.check_deployments()


@shared_task(name="deployment.decommission_due", ignore_result=True)
def decommission_due() -> None:
    services.decommission_due()


@shared_task(name="deployment.reap_stale_operations", ignore_result=True)
def reap_stale_operations() -> None:
    services.reap_stale_operations()


@shared_task(name="deployment.sweep_sandboxes", ignore_result=True)
def sweep_sandboxes() -> None:
    services.sweep_sandboxes()
