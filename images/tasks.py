"""Celery tasks for images: thin, they take ids (the job's shape: acumos_portal.jobs)."""

from __future__ import annotations

from acumos_portal import jobs
from images import services


@jobs.job_task(services.BUILD_TASK)
def build_image(build_id: str) -> None:
    services.run_build(build_id)
