"""Deployment operations are jobs of the one shape (acumos_portal.jobs): a long one keeps its
heartbeat and is not reaped while it runs; one whose worker died is failed by the reaper, and the
deployment it was making is marked failed only when that is what really happened."""

from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from acumos_portal import jobs
from acumos_portal.choices import JobStatus
from deployment import services
from deployment.choices import OperationKind, TargetDeployers, TargetKind
from deployment.models import Operation
from tests.factories import DeploymentFactory, OperationFactory, RevisionFactory, TargetFactory

STALE_SECONDS = 2


@pytest.fixture
def deployment(owner):
    target = TargetFactory(name="this host", kind=TargetKind.LOCAL, deployers=TargetDeployers.OWNERS)
    return DeploymentFactory(name="long", target=target, revision__solution__owner=owner)


def test_an_operation_longer_than_the_stale_time_is_not_reaped_while_it_runs(
        deployment, owner, settings, monkeypatch, transactional_db):
    settings.ACUMOS_JOB_STALE_SECONDS = STALE_SECONDS
    working = threading.Event()

    def slow_deploy(operation):  # a slow image pull or rollout: three stale periods
        working.set()
        time.sleep(STALE_SECONDS * 3)
        return "deployed slowly\n"

    monkeypatch.setitem(services.ACTIONS, OperationKind.DEPLOY, slow_deploy)
    operation = OperationFactory(deployment=deployment, kind=OperationKind.DEPLOY, requested_by=owner)
    worker = threading.Thread(target=_run_and_close, args=(str(operation.pk),))
    worker.start()
    try:
        assert working.wait(10)
        reaped = []
        while worker.is_alive():
            reaped += [action for action in services.JOBS.reap() if str(operation.pk) in action]
            time.sleep(0.5)
    finally:
        worker.join(30)
    operation.refresh_from_db()
    assert reaped == []
    assert operation.status == JobStatus.SUCCEEDED and operation.log == "deployed slowly\n"
    assert operation.attempts == 1 and operation.heartbeat > operation.started + timedelta(seconds=STALE_SECONDS)


def _run_and_close(operation_id: str) -> None:
    try:
        services.run_operation(operation_id)
    finally:
        connection.close()


@pytest.mark.django_db
def test_the_operation_of_a_dead_worker_is_failed_by_the_reaper(deployment, owner, settings):
    settings.ACUMOS_JOB_STALE_SECONDS = STALE_SECONDS
    gone_here = f"{socket.gethostname()}:999999999:1"  # a process of this host that has ended: at once
    quiet = timezone.now() - timedelta(seconds=STALE_SECONDS * 5)  # another host's, silent too long
    dead = OperationFactory(deployment=deployment, kind=OperationKind.DEPLOY, requested_by=owner,
                            status=JobStatus.RUNNING, started=timezone.now(), heartbeat=timezone.now(),
                            claimed_by=gone_here, attempts=1)
    silent = OperationFactory(deployment=deployment, kind=OperationKind.STOP, requested_by=owner,
                              status=JobStatus.RUNNING, started=quiet, heartbeat=quiet,
                              claimed_by="elsewhere:42:7", attempts=1)
    alive = OperationFactory(deployment=deployment, kind=OperationKind.SWAP, requested_by=owner,
                             status=JobStatus.RUNNING, started=quiet, heartbeat=timezone.now(),
                             claimed_by=jobs.this_process(), attempts=1)

    actions = jobs.reap_all()

    for row in (dead, silent, alive):
        row.refresh_from_db()
    assert f"deployment operation {dead.pk}: failed (its worker stopped)" in actions
    assert f"deployment operation {silent.pk}: failed (its worker stopped)" in actions
    assert dead.status == silent.status == JobStatus.FAILED
    assert dead.error == "the worker running this operation stopped" and dead.finished is not None
    assert alive.status == JobStatus.RUNNING  # its heartbeat is fresh: long, not dead
    assert not [action for action in actions if str(alive.pk) in action]


@pytest.mark.django_db
def test_a_lost_operation_is_sent_again_and_failed_after_its_last_attempt(deployment, owner, settings, monkeypatch):
    settings.ACUMOS_JOB_STALE_SECONDS = STALE_SECONDS
    old = timezone.now() - timedelta(seconds=STALE_SECONDS * 5)
    lost = OperationFactory(deployment=deployment, kind=OperationKind.DEPLOY, requested_by=owner)
    tried_out = OperationFactory(deployment=deployment, kind=OperationKind.STOP, requested_by=owner,
                                 attempts=settings.ACUMOS_JOB_MAX_ATTEMPTS)
    Operation.objects.filter(pk__in=[lost.pk, tried_out.pk]).update(created=old)
    sent = []
    monkeypatch.setattr(jobs, "send", lambda task, *args, **options: sent.append((task.name, args)))

    actions = services.JOBS.reap()

    assert sent == [("deployment.run_operation", (str(lost.pk),))]
    assert f"deployment operation {lost.pk}: sent again" in actions
    tried_out.refresh_from_db()
    assert tried_out.status == JobStatus.FAILED and "did not finish after 3 attempts" in tried_out.error
    assert services.JOBS.reap() == []  # sent again: the reaper waits a full period before the next try


@pytest.mark.django_db
def test_a_change_while_another_operation_runs_answers_409_and_changes_nothing(owner, client_for):
    deployment = DeploymentFactory(revision=RevisionFactory(solution__owner=owner), created_by=owner,
                                   status="running")
    other = RevisionFactory(solution=deployment.revision.solution)
    OperationFactory(deployment=deployment, kind=OperationKind.SWAP, status=JobStatus.RUNNING)
    client = client_for(owner)

    swap = client.post(f"/api/v1/deployments/{deployment.pk}/swap", {"revision": str(other.pk)},
                       content_type="application/json")
    stop = client.post(f"/api/v1/deployments/{deployment.pk}/stop")

    for answer in (swap, stop):
        assert answer.status_code == 409, answer.content
        error = answer.json()["error"]
        assert error["code"] == "deployment_busy" and "still running; try again when it ends" in error["message"]
    assert deployment.operations.count() == 1
