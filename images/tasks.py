"""Celery tasks for images: thin, they take ids."""

from __future__ import annotations

from celery import shared_task

from images import services


@shared_task(name="images.build", acks_late=True, ignore_result=True)
def build_image(build_id: str) -> None:
    services.run_build(build_id)


@shared_task(name="images.reap_stale_builds", ignore_result=True)
def reap_stale_builds() -> list[str]:
    return services.reap_stale_builds()
