"""Celery tasks: one per pipeline step, named `onboarding.<step>`, plus the reaper and the
start-up resume. Thin: each calls the pipeline with the job id."""

from __future__ import annotations

from celery import shared_task

from onboarding import pipeline
from onboarding.choices import STEPS


def _make_step_task(name: str):
    # runs_model: a step that runs the user's model gets workers of its own (acumos_portal.jobs).
    @shared_task(name=f"onboarding.{name}", acks_late=True, autoretry_for=(pipeline.TransientError,),
                 max_retries=3, retry_backoff=2, ignore_result=True, runs_model=name in pipeline.MODEL_STEPS,
                 bind=True)
    def step(task, job_id: str) -> None:
        pipeline.run_step(job_id, name, retried=bool(task.request.retries))

    return step


STEP_TASKS = {name: _make_step_task(name) for name, _ in STEPS}


def step_task(name: str):
    return STEP_TASKS[name]


def first_step_task():
    return STEP_TASKS[STEPS[0][0]]


@shared_task(name="onboarding.reap_stale_jobs", ignore_result=True)
def reap_stale_jobs() -> list[str]:
    return pipeline.reap_stale_jobs()


@shared_task(name="onboarding.resume_interrupted_jobs", ignore_result=True)
def resume_interrupted_jobs() -> list[str]:
    return pipeline.resume_interrupted_jobs()
