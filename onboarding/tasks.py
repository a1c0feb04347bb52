"""Celery tasks: one per pipeline step, named by onboarding.choices.step_task_name. Thin: each calls
the pipeline with the job id (the job's shape: acumos_portal.jobs)."""

from __future__ import annotations

from acumos_portal import jobs
from onboarding import pipeline
from onboarding.choices import MODEL_STEPS, STEPS, step_task_name


def _make_step_task(name: str):
    # runs_model: a step that runs the user's model gets workers of its own (acumos_portal.jobs).
    @jobs.job_task(step_task_name(name), runs_model=name in MODEL_STEPS, bind=True)
    def step(task, job_id: str) -> None:
        pipeline.run_step(job_id, name, retried=bool(task.request.retries))

    return step


STEP_TASKS = {name: _make_step_task(name) for name, _ in STEPS}


def step_task(name: str):
    return STEP_TASKS[name]


def first_step_task():
    return STEP_TASKS[STEPS[0][0]]
