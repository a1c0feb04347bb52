"""Deployments: start one, change what it serves (hot swap, rollback), stop, start and destroy it.
Every change is an Operation row run by a task after commit; a failed swap leaves the old model
serving (the runner only activates a model that answered its sample) and records why."""

from __future__ import annotations

import logging
import secrets as token_source
import tempfile
import uuid
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from acumos_portal import jobs
from acumos_portal.choices import JobStatus
from deployment import runner_client
from deployment import secrets as secret_store
from deployment.backends import BackendError, backend_for
from deployment.choices import DeploymentStatus, OperationKind
from deployment.models import Deployment, Operation, Target
from deployment.runner_client import RunnerError
from marketplace import downloads
from marketplace.models import Revision

log = logging.getLogger(__name__)


class DeploymentRefused(Exception):
    """What was asked cannot be done (a revision not ready, a destroyed deployment)."""


# ---------------------------------------------------------------- asking

def deploy(*, revision: Revision, target: Target, user, name: str = "", replicas: int = 1,
           follow: bool = False) -> Deployment:
    if not revision.is_ready:
        raise DeploymentRefused("only a ready revision can be deployed")
    if not target.enabled:
        raise DeploymentRefused(f"the target {target.name} is disabled")
    with transaction.atomic():
        deployment = Deployment.objects.create(
            name=name or f"{revision.solution.name} {revision.version}", target=target, revision=revision,
            follows=revision.solution if follow else None, replicas=replicas, created_by=user,
            admin_token_encrypted=secret_store.encrypt(token_source.token_urlsafe(32)))
        _ask(deployment, OperationKind.DEPLOY, user, revision=revision)
    return deployment


def swap(deployment: Deployment, revision: Revision, user) -> Operation:
    if not revision.is_ready:
        raise DeploymentRefused("only a ready revision can be swapped in")
    return _ask(deployment, OperationKind.SWAP, user, revision=revision)


def rollback(deployment: Deployment, user, generation: int | None = None) -> Operation:
    return _ask(deployment, OperationKind.ROLLBACK, user, target_generation=generation)


def stop(deployment: Deployment, user) -> Operation:
    return _ask(deployment, OperationKind.STOP, user)


def start(deployment: Deployment, user) -> Operation:
    return _ask(deployment, OperationKind.START, user)


def destroy(deployment: Deployment, user) -> Operation:
    """The second step of decommissioning: only a stopped deployment is destroyed."""
    if deployment.status not in (DeploymentStatus.STOPPED, DeploymentStatus.FAILED):
        raise DeploymentRefused("stop the deployment first; destroying removes it for good")
    return _ask(deployment, OperationKind.DESTROY, user)


def _ask(deployment: Deployment, kind: str, user, **fields) -> Operation:
    if deployment.status == DeploymentStatus.DESTROYED:
        raise DeploymentRefused("this deployment has been destroyed")
    operation = Operation.objects.create(deployment=deployment, kind=kind, requested_by=user,
                                         previous_revision=deployment.revision, **fields)
    from deployment.tasks import run_operation

    jobs.enqueue(run_operation, str(operation.pk))
    return operation


# ---------------------------------------------------------------- doing

def run_operation(operation_id: str) -> None:
    """The task body: claim the row (a duplicate delivery does nothing), do it, record it."""
    if not Operation.objects.filter(pk=operation_id, status=JobStatus.PENDING).update(
            status=JobStatus.RUNNING, started=timezone.now()):
        return
    operation = Operation.objects.select_related("deployment__target", "revision__solution").get(pk=operation_id)
    try:
        text = ACTIONS[operation.kind](operation)
    except (BackendError, RunnerError, DeploymentRefused) as exc:
        _finish(operation, JobStatus.FAILED, error=str(exc))
        _after_failure(operation)
    except Exception as exc:  # a bug must end the row visibly, not leave it running
        error_id = uuid.uuid4().hex[:12]
        log.exception("deployment operation %s failed [%s]", operation_id, error_id)
        _finish(operation, JobStatus.FAILED, error=f"internal error (error id {error_id}): {exc}")
    else:
        _finish(operation, JobStatus.SUCCEEDED, log_text=text)


def _finish(operation: Operation, status: str, *, error: str = "", log_text: str = "") -> None:
    Operation.objects.filter(pk=operation.pk).update(status=status, error=error, log=log_text,
                                                     finished=timezone.now())


def _after_failure(operation: Operation) -> None:
    """A deploy that failed leaves a failed deployment; a failed swap leaves it running as it was."""
    if operation.kind in (OperationKind.DEPLOY, OperationKind.START):
        Deployment.objects.filter(pk=operation.deployment_id).update(status=DeploymentStatus.FAILED)


def _deploy(operation: Operation) -> str:
    deployment = operation.deployment
    with tempfile.TemporaryDirectory(prefix="acumos-deploy-") as tmp:
        bundle = downloads.write_bundle(list(operation.revision.artifacts.select_related("blob")), Path(tmp, "bundle"))
        placement = backend_for(deployment.target).start(deployment, bundle, deployment.admin_token())
    _placed(deployment, placement)
    active = runner_client.active(placement.endpoint_url)["active"]
    Operation.objects.filter(pk=operation.pk).update(generation=active["generation"])
    return f"serving {operation.revision} at {placement.endpoint_url} (generation {active['generation']})\n"


def _placed(deployment: Deployment, placement) -> None:
    Deployment.objects.filter(pk=deployment.pk).update(
        status=DeploymentStatus.RUNNING, endpoint_url=placement.endpoint_url, handle=placement.handle,
        stopped_at=None, modified=timezone.now())


def _swap(operation: Operation) -> str:
    deployment = _running(operation)
    with tempfile.TemporaryDirectory(prefix="acumos-swap-") as tmp:
        bundle = downloads.write_bundle(list(operation.revision.artifacts.select_related("blob")), Path(tmp, "bundle"))
        answer = runner_client.swap(deployment.endpoint_url, deployment.admin_token(), bundle)
    return _serving(operation, operation.revision, answer)


def _rollback(operation: Operation) -> str:
    deployment = _running(operation)
    answer = runner_client.rollback(deployment.endpoint_url, deployment.admin_token(), operation.target_generation)
    revision = _revision_of_generation(deployment, answer["generation"])
    return _serving(operation, revision, answer)


def _serving(operation: Operation, revision: Revision | None, answer: dict) -> str:
    """Record what the runner now serves: on the operation (history) and on the deployment."""
    Operation.objects.filter(pk=operation.pk).update(revision=revision, generation=answer["generation"],
                                                     swap_ms=answer.get("duration_ms"))
    if revision is not None:
        Deployment.objects.filter(pk=operation.deployment_id).update(revision=revision, modified=timezone.now())
    return (f"generation {answer['generation']} ({answer.get('action')}) serving "
            f"{revision or answer.get('name')} after {answer.get('duration_ms')} ms\n")


def _revision_of_generation(deployment: Deployment, generation: int) -> Revision | None:
    """The runner numbers what it served; the history says which revision each number was."""
    earlier = (Operation.objects.filter(deployment=deployment, generation=generation, status=JobStatus.SUCCEEDED)
               .exclude(revision=None).select_related("revision").order_by("-finished").first())
    return earlier.revision if earlier else None


def _running(operation: Operation) -> Deployment:
    deployment = Deployment.objects.select_related("target").get(pk=operation.deployment_id)
    if deployment.status != DeploymentStatus.RUNNING:
        raise DeploymentRefused(f"the deployment is {deployment.status}, not running")
    return deployment


def _stop(operation: Operation) -> str:
    deployment = operation.deployment
    backend_for(deployment.target).stop(deployment)
    Deployment.objects.filter(pk=deployment.pk).update(status=DeploymentStatus.STOPPED, stopped_at=timezone.now())
    return "stopped; it can be started again, or destroyed\n"


def _start(operation: Operation) -> str:
    deployment = operation.deployment
    placement = backend_for(deployment.target).restart(deployment, deployment.admin_token())
    _placed(deployment, placement)
    return f"started again at {placement.endpoint_url}, serving what it served when it stopped\n"


def _destroy(operation: Operation) -> str:
    deployment = operation.deployment
    backend_for(deployment.target).destroy(deployment)
    Deployment.objects.filter(pk=deployment.pk).update(status=DeploymentStatus.DESTROYED, endpoint_url="",
                                                       handle={})
    return "destroyed\n"


ACTIONS = {OperationKind.DEPLOY: _deploy, OperationKind.SWAP: _swap, OperationKind.ROLLBACK: _rollback,
           OperationKind.STOP: _stop, OperationKind.START: _start, OperationKind.DESTROY: _destroy}
