"""Fair scheduling on real Celery workers: the same rule as on threads (tests/onboarding/test_fairness.py),
with real models. A user's second slow model waits for the first without holding a worker, so the
other worker serves another user's upload; and ACUMOS_MODEL_QUEUE gives model steps workers of their own."""

from __future__ import annotations

import pytest
from django.utils import timezone

from onboarding import pipeline
from onboarding.choices import STEPS, JobStatus, StepStatus
from onboarding.models import OnboardingJob, StepResult
from onboarding.services import onboarding_start
from runner_image.pack import pack_bundle

from ..bundles import builders, parts_of
from ..factories import UserFactory
from .conftest import wait_for
from .test_celery_worker import received, steps_report, wait_for_job

pytestmark = pytest.mark.django_db(transaction=True)
SLOW_SECONDS = 6  # how long a slow model takes to answer its sample
MODEL_QUEUE = "acumos-models"


def slow_model(seconds: float):
    """y = x, after `seconds` (a nested function: cloudpickle stores it by value for the runner)."""

    def scale(x: float):
        import time

        time.sleep(seconds)
        return {"tag": "slow", "y": x}

    return scale


def slow_bundle(out, name: str):
    return parts_of(pack_bundle(model=slow_model(SLOW_SECONDS), flavour="python", name=name, method="scale",
                                inputs="x:double", outputs="tag:string,y:double", out=out, sample={"x": 2.0},
                                check=False))


def smoke_step(job) -> StepResult:
    return StepResult.objects.get(job=job, name="smoke_test")


def test_it_serves_another_user_while_one_users_second_slow_model_waits(tmp_path, start_worker):
    env = {"ACUMOS_MODEL_RETRY_SECONDS": "1"}
    workers = [start_worker(**env), start_worker(**env)]
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    slow = [onboarding_start(user=alice, parts=slow_bundle(tmp_path / f"slow{n}", f"Slow{n}")) for n in (1, 2)]
    diagnose = lambda: "\n".join([steps_report(job) for job in slow] + [w.tail() for w in workers])  # noqa: E731
    wait_for(lambda: any(pipeline.WAITING_NOTE in smoke_step(job).log for job in slow), 60,
             "alice's second smoke test to wait for her first", diagnose=diagnose)

    uploaded = timezone.now()
    mine = onboarding_start(user=bob, parts=parts_of(builders.scale_bundle(tmp_path / "fast", 2.0, "fast")))
    wait_for_job(mine, workers[0], timeout=60)
    assert mine.status == JobStatus.SUCCEEDED, f"{mine.error}\n{steps_report(mine)}"
    bobs_wait = (mine.finished - uploaded).total_seconds()
    assert bobs_wait < SLOW_SECONDS - 1, f"bob waited {bobs_wait:.1f}s\n{diagnose()}"

    for job in slow:
        wait_for_job(job, workers[0], timeout=60)
        assert job.status == JobStatus.SUCCEEDED, f"{job.error}\n{steps_report(job)}"
    ran = sorted((smoke_step(job) for job in slow), key=lambda step: step.started)
    assert mine.finished < ran[0].finished  # bob was ready before alice's first slow model was
    assert ran[1].started >= ran[0].finished  # alice's models ran one after the other
    # The second was put off (sent again by the workers) without using an attempt or a retry.
    assert sum(received(w, "smoke_test") for w in workers) > len(slow) + 1
    assert set(StepResult.objects.values_list("attempts", flat=True)) == {1}


def test_it_sends_model_steps_to_their_own_queue_when_one_is_set(owner, bundle_parts, start_worker, settings):
    settings.ACUMOS_MODEL_QUEUE = MODEL_QUEUE
    env = {"ACUMOS_MODEL_QUEUE": MODEL_QUEUE}
    quick, models = start_worker(**env), start_worker(queues=MODEL_QUEUE, **env)
    job = onboarding_start(user=owner, parts=bundle_parts)
    wait_for_job(job, quick)
    assert job.status == JobStatus.SUCCEEDED, f"{job.error}\n{steps_report(job)}"
    assert received(models, "smoke_test") == 1 and received(quick, "smoke_test") == 0
    for name, _ in STEPS:
        if name != "smoke_test":
            assert (received(quick, name), received(models, name)) == (1, 0), name
    assert OnboardingJob.objects.get().steps.get(name="smoke_test").status == StepStatus.SUCCEEDED
