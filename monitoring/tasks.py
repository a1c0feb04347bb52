"""Monitoring's scheduled work: thin wrappers around its services (beat entries in settings)."""

from __future__ import annotations

from celery import shared_task

from acumos_portal import jobs
from monitoring import hooks, services


@shared_task(name="monitoring.collect", ignore_result=True)
def collect() -> None:
    services.collect_all()


@shared_task(name="monitoring.prune", ignore_result=True)
def prune() -> None:
    services.prune()


@jobs.job_task(hooks.DELIVERY_TASK)
def deliver_hook(delivery_id: str) -> None:
    hooks.run_delivery(delivery_id)
