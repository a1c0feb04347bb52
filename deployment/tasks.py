"""Celery tasks for deployments: thin, they take ids."""

from __future__ import annotations

from celery import shared_task

from deployment import services


@shared_task(name="deployment.run_operation", acks_late=True, ignore_result=True)
def run_operation(operation_id: str) -> None:
    services.run_operation(operation_id)
