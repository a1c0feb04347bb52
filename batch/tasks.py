"""Batch's task: a thin wrapper around batch.services.run_job (the job shape: acumos_portal.jobs)."""

from __future__ import annotations

from acumos_portal import jobs
from batch import services


# runs_model: it keeps a deployment busy for as long as the input lasts, so it takes the model lane (its own
# threads, or ACUMOS_MODEL_QUEUE) and never holds the quick jobs.
@jobs.job_task(services.TASK, runs_model=True)
def run_job(job_id: str) -> None:
    services.run_job(job_id)
