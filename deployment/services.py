"""Deployments: start one, change what it serves (hot swap, rollback), stop, start and destroy it.
Every change is an Operation row run by a task after commit; a failed swap leaves the old model
serving (the runner only activates a model that answered its sample) and records why."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import secrets
import tempfile
import threading
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from acumos_portal import jobs, sandbox
from acumos_portal.accounts.services import lock_for_quota
from acumos_portal.api.refusals import Refused
from acumos_portal.choices import UNFINISHED, JobStatus
from deployment import runner_client, secretbox, selectors
from deployment.backends import BackendError, backend_for
from deployment.backends.local import deployment_id_of
from deployment.choices import (
    LIVE,
    SHADOW_WEIGHT,
    DeploymentStatus,
    OperationKind,
    RolloutMode,
    RolloutState,
    TargetDeployers,
    TargetKind,
    Trigger,
)
from deployment.models import Deployment, Operation, Rollout, Target, validate_deployment_name
from deployment.runner_client import RunnerError
from licensing import deployments as licence
from licensing.policy import LicenceDenied
from marketplace import downloads
from marketplace import services as marketplace_services
from marketplace.choices import ArtifactKind, NotificationKind, RevisionStatus
from marketplace.models import Notification, Revision

log = logging.getLogger(__name__)


class DeploymentRefused(Refused):
    """What was asked cannot be done (a revision not ready, a destroyed deployment)."""


class DeploymentBusy(DeploymentRefused):
    """Another operation on the deployment has not ended: 409 Conflict, the deployment's state (not the
    request) is in the way, and the same request succeeds once that operation ends."""

    status = 409
    code = "deployment_busy"


class QuotaReached(DeploymentRefused):
    """The user has as many live deployments as ACUMOS_QUOTA_LIVE_DEPLOYMENTS allows. The message
    says so and how to free one; `details` (the quota, the live deployments' ids) is for the API."""

    # 429 Too Many Requests: the request is fine, there are too many of them live. No Retry-After:
    # a slot frees when the user stops a deployment, not after a time.
    status = 429
    code = "quota_exceeded"

    def __init__(self, message: str, details: dict):
        super().__init__(message, details=details)


class GracePeriodNotOver(DeploymentRefused):
    """A stopped deployment is kept until its grace period ends: not an error, an explanation with the
    date (the page shows it as information). 409: its state, not the request, is in the way."""

    status = 409
    code = "grace_period_not_over"

    def __init__(self, deployment: Deployment, *, may_end: bool):
        due = deployment.destroy_after
        if may_end:
            sooner = "To destroy it now, ask with force (Destroy now on its page)."
        elif selectors.owners_may_end_grace_early():
            sooner = "Only whoever created it, or an admin, may destroy it sooner."
        else:
            sooner = "Only an admin may destroy it sooner (or allow owners to, in Manage → Site settings)."
        super().__init__(f"{deployment.display_name} is kept, restartable, until {due:%Y-%m-%d %H:%M} UTC (its grace "
                         f"period) and is destroyed then by itself; start it again to keep it. {sooner}",
                         details={"destroy_after": due.isoformat()})


class IdempotencyKeyReused(DeploymentRefused):
    """The key came with another request before: 409, the same key cannot mean two requests.
    `deployment` is what the first request made."""

    status = 409
    code = "idempotency_key_reused"

    def __init__(self, message: str, deployment: Deployment):
        super().__init__(message, details={"deployment": str(deployment.pk)})
        self.deployment = deployment


# How long a request's key finds what it made (Stripe keeps keys 24 hours); after that it is free again.
IDEMPOTENCY_WINDOW = timedelta(hours=24)
# Printable ASCII without spaces, as Stripe's keys and the IETF draft's examples (UUIDs) are.
_KEY = re.compile(r"[\x21-\x7e]{1,255}")


# ---------------------------------------------------------------- asking

def deploy(*, revision: Revision, target: Target, user, name: str = "", replicas: int = 1,
           follow: bool = False) -> Deployment:
    """Who may deploy what where is the caller's question (deployment.selectors: can_deploy, targets_for);
    this checks what holds for anyone: a ready revision, an enabled target, the user's quota. `name`
    is the user's own name for it, optional (Deployment.display_name says what it serves)."""
    return deploy_once(revision=revision, target=target, user=user, name=name, replicas=replicas, follow=follow,
                       idempotency_key=None)[0]


def deploy_once(*, revision: Revision, target: Target, user, idempotency_key: str | None, name: str = "",
                replicas: int = 1, follow: bool = False) -> tuple[Deployment, bool]:
    """deploy(), once per key: the same user sending the same key again within IDEMPOTENCY_WINDOW gets
    the deployment the first request made, (deployment, False), whatever happened since; the same
    key with another request is refused (IdempotencyKeyReused). (deployment, True): made now.

    Two requests with one key at once make one deployment: the unique (user, key) constraint lets one
    row in, and the other finds it. The user's row lock (the quota's) comes before the look-up, so a
    request that waited for it sees what the first committed, never "quota reached" for its own copy."""
    key = valid_idempotency_key(idempotency_key)
    name = _valid_name(name)
    fingerprint = _fingerprint(revision=str(revision.pk), target=str(target.pk), name=name, replicas=replicas,
                               follow=follow)
    with transaction.atomic():
        _lock_for_quota(user)
        earlier = _made_with_key(user, key, fingerprint) if key else None
        if earlier is not None:
            return earlier, False
        if not revision.is_ready:
            raise DeploymentRefused("only a ready revision can be deployed")
        if not target.enabled:
            raise DeploymentRefused(f"the target {target.name} is disabled")
        _within_quota(user)
        try:
            with transaction.atomic():  # a savepoint: the other request's row wins, this one reads it
                deployment = Deployment.objects.create(
                    name=name, target=target, revision=revision,
                    follows=revision.solution if follow else None, replicas=replicas, created_by=user,
                    admin_token_encrypted=secretbox.encrypt(secrets.token_urlsafe(32)),
                    idempotency_key=key, request_fingerprint=fingerprint if key else "")
                # The licence, once the row has its id: a deploy from the agreement's count and a live
                # slot for this deployment. A denial raises and takes the row back with it.
                licence.authorize_deploy(user, revision, deployment.pk)
                _request_operation(deployment, OperationKind.DEPLOY, user, revision=revision)
        except IntegrityError:
            earlier = _made_with_key(user, key, fingerprint) if key else None
            if earlier is None:
                raise
            return earlier, False
    return deployment, True


def valid_idempotency_key(key: str | None) -> str | None:
    """The key as stored: None for none; surrounding double quotes (a structured-header string, as the
    IETF draft writes it) are taken off. A key that is not 1-255 printable ASCII characters is refused."""
    if key is None or key == "":
        return None
    key = key[1:-1] if len(key) > 1 and key[0] == key[-1] == '"' else key
    if not _KEY.fullmatch(key):
        raise DeploymentRefused("an Idempotency-Key is 1 to 255 printable ASCII characters without spaces, e.g. a "
                                "UUID; send a new one for each new deployment", field="Idempotency-Key")
    return key


def _fingerprint(**request) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


def _made_with_key(user, key: str, fingerprint: str) -> Deployment | None:
    """The deployment this user's `key` made within the window; a key older than that is let go."""
    keyed = Deployment.objects.filter(created_by=user, idempotency_key=key)
    keyed.filter(created__lt=timezone.now() - IDEMPOTENCY_WINDOW).update(idempotency_key=None)
    earlier = keyed.first()
    if earlier is not None and earlier.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            f"this Idempotency-Key came with another request in the last 24 hours, which made the deployment "
            f"{earlier.display_name} ({earlier.pk}); send a new key for a new deployment, or the first request "
            f"unchanged to get that one", earlier)
    return earlier


def rename(deployment: Deployment, name: str) -> Deployment:
    """The user's own name for it; "" takes it away (the pages then name it by what it serves). Who may
    is the caller's question (deployment.selectors.can_manage)."""
    deployment.name = _valid_name(name)
    Deployment.objects.filter(pk=deployment.pk).update(name=deployment.name, modified=timezone.now())
    return deployment


def set_shared(deployment: Deployment, shared: bool) -> Deployment:
    """Open it (or close it) to signed-in users' Try it on the model page (selectors.can_try_shared
    says who may then call it). Who may change it is the caller's question (selectors.can_share)."""
    deployment.shared = bool(shared)
    Deployment.objects.filter(pk=deployment.pk).update(shared=deployment.shared, modified=timezone.now())
    return deployment


def _valid_name(name: str) -> str:
    name = (name or "").strip()
    try:
        validate_deployment_name(name)
    except ValidationError as exc:
        raise DeploymentRefused(exc.messages[0], field="name") from None
    return name


def swap(deployment: Deployment, revision: Revision, user) -> Operation:
    """Swapping in needs the swapping user's right to deploy `revision` (its agreement covers it, in its
    dates, not revoked or prohibited); the deployment keeps its live slot, so nothing is counted."""
    if not revision.is_ready:
        raise DeploymentRefused("only a ready revision can be swapped in")
    licence.authorize_swap_in(user, revision, deployment.pk)
    return _request_operation(deployment, OperationKind.SWAP, user, revision=revision)


def rollback(deployment: Deployment, user, generation: int | None = None) -> Operation:
    return _request_operation(deployment, OperationKind.ROLLBACK, user, target_generation=generation)


def stop(deployment: Deployment, user) -> Operation:
    return _request_operation(deployment, OperationKind.STOP, user)


def start(deployment: Deployment, user) -> Operation:
    """Starting a stopped or failed deployment makes it live again: it counts against the quota, and
    under a licence that needs an agreement it takes a live slot again (stopping gave it back)."""
    with transaction.atomic():
        _within_quota(user, starting=deployment)
        licence.authorize_start(user, deployment.revision, deployment.pk)
        return _request_operation(deployment, OperationKind.START, user)


def _within_quota(user, *, starting: Deployment | None = None) -> None:
    """Refuse one live deployment past the user's quota. Runs inside the transaction that makes the
    row that counts (the deployment, or the start operation) and locks the user's row first, so two
    requests at once take turns: the second counts after the first has committed (PostgreSQL, READ
    COMMITTED). SQLite ignores the lock but lets one transaction write at a time, and one that read
    before another wrote cannot write after it ("database is locked"), so there too the last slot is
    taken once; the other request fails instead of hearing about the quota."""
    if not _lock_for_quota(user):
        return
    message, details = selectors.deployment_quota_reached(user, starting=starting)
    if message:
        raise QuotaReached(message, details)


def _lock_for_quota(user) -> bool:
    """Lock the user's row if a quota applies to them (see _within_quota); whether it does."""
    if selectors.deployment_quota(user) is None:
        return False
    lock_for_quota(user)
    return True


def destroy(deployment: Deployment, user, *, force: bool = False) -> Operation:
    """The second step of decommissioning: a stopped deployment is destroyed once its grace period
    is over (the schedule does it then). `force` asks not to wait: granted to whom
    selectors.can_end_grace_early allows (admins; its creator if the site allows)."""
    if deployment.status not in (DeploymentStatus.STOPPED, DeploymentStatus.FAILED):
        raise DeploymentRefused("stop the deployment first; destroying removes it for good")
    if selectors.in_grace_period(deployment):
        may_end = selectors.can_end_grace_early(user, deployment)
        if not (force and may_end):
            raise GracePeriodNotOver(deployment, may_end=may_end)
    return _request_operation(deployment, OperationKind.DESTROY, user)


def busy(deployment: Deployment) -> bool:
    """One operation at a time: a swap during a deploy, or two stops, would race on the runner."""
    return deployment.operations.filter(status__in=UNFINISHED).exists()


def _request_operation(deployment: Deployment, kind: str, user, trigger: str = Trigger.USER, **fields) -> Operation:
    if deployment.status == DeploymentStatus.DESTROYED:
        raise DeploymentRefused("this deployment has been destroyed")
    if busy(deployment):
        raise DeploymentBusy("another operation on this deployment is still running; try again when it ends")
    operation = Operation.objects.create(deployment=deployment, kind=kind, requested_by=user, trigger=trigger,
                                         previous_revision=deployment.revision, **fields)
    jobs.enqueue(OPERATION_TASK, str(operation.pk))
    return operation


# ---------------------------------------------------------------- doing

def run_operation(operation_id: str) -> None:
    """The task body: claim the row (a duplicate delivery does nothing), do it with a heartbeat (a
    slow image pull or rollout is long, not dead), record it (acumos_portal.jobs)."""
    rows = Operation.objects.filter(pk=operation_id)
    if not jobs.claim(rows):
        return
    operation = rows.select_related("deployment__target", "revision__solution").get()
    text = jobs.run_claimed(operation, lambda claimed: ACTIONS[claimed.kind](claimed), fail=_failed,
                            permanent=(BackendError, RunnerError, DeploymentRefused),
                            what=f"deployment operation {operation_id}")
    if text is not None:
        _finish(operation, JobStatus.SUCCEEDED, log_text=text)


def _failed(operation: Operation, message: str) -> None:
    """A deploy that failed leaves a failed deployment, whose live slot goes back; a failed swap leaves
    it running as it was."""
    _finish(operation, JobStatus.FAILED, error=message)
    if operation.rollout_id is not None:
        _rollout_failed(operation, message)
    if operation.kind in (OperationKind.DEPLOY, OperationKind.START):
        Deployment.objects.filter(pk=operation.deployment_id).update(status=DeploymentStatus.FAILED)
        licence.release(operation.deployment_id)


def _finish(operation: Operation, status: str, *, error: str = "", log_text: str = "") -> None:
    jobs.finish(Operation.objects.filter(pk=operation.pk), status, error=error, log=log_text)
    succeeded = status == JobStatus.SUCCEEDED
    actor = operation.requested_by
    # Read again: a swap or rollback has just changed what it serves, which its name says.
    deployment = Deployment.objects.select_related("target", "revision__solution").get(pk=operation.deployment_id)
    for user in _told_of_end(operation, succeeded):
        by = f" by {actor.username}" if actor is not None and user != actor else ""
        _notify(user, deployment, f"{operation.get_kind_display()} {'done' if succeeded else 'failed'}{by}", error)


def _told_of_end(operation: Operation, succeeded: bool) -> list:
    """Who hears that an operation ended: the deployment's creator when someone else (or the schedule)
    acted; the one who acted only of a failure (they may have left the page). Nobody is told of their
    own success: they asked for it and saw it happen."""
    actor, creator = operation.requested_by, operation.deployment.created_by
    if succeeded and operation.trigger == Trigger.GATES:
        return []  # the rollout's own notice said what its gates decided and why (monitoring.rollouts)
    told = [creator] if creator != actor else []
    if actor is not None and not succeeded:
        told.append(actor)
    return told


def _notify(user, deployment: Deployment, what: str, message: str = "") -> None:
    """A notification about a deployment's status for the person who acted (or created it), naming it
    by what it serves now (Deployment.__str__: its display name and target)."""
    marketplace_services.notify(user, NotificationKind.DEPLOYMENT, f"{deployment}: {what}",
                                url=f"/deployments/{deployment.pk}/", message=message)


def _deploy(operation: Operation) -> str:
    deployment = operation.deployment
    with tempfile.TemporaryDirectory(prefix="acumos-deploy-") as tmp:
        bundle = downloads.write_bundle(list(operation.revision.artifacts.select_related("blob")), Path(tmp, "bundle"))
        placement = backend_for(deployment.target).start(deployment, bundle, deployment.admin_token())
    metering = _install_entitlements(_placed(deployment, placement))
    _record_placement(deployment, placement)
    active = runner_client.active(placement.endpoint_url)["active"]
    Operation.objects.filter(pk=operation.pk).update(generation=active["generation"])
    return f"serving {operation.revision} at {placement.endpoint_url} (generation {active['generation']})\n{metering}"


def _placed(deployment: Deployment, placement) -> Deployment:
    """The deployment as the backend just placed it (not saved yet: it is marked running once its
    runners hold what they need), so that its admin URLs can be asked for."""
    deployment.endpoint_url, deployment.handle = placement.endpoint_url, placement.handle
    return deployment


def _record_placement(deployment: Deployment, placement) -> None:
    Deployment.objects.filter(pk=deployment.pk).update(
        status=DeploymentStatus.RUNNING, endpoint_url=placement.endpoint_url, handle=placement.handle,
        stopped_at=None, destroy_after=None, health="", modified=timezone.now())


def _swap(operation: Operation) -> str:
    deployment = _running(operation)
    token = deployment.admin_token()
    with tempfile.TemporaryDirectory(prefix="acumos-swap-") as tmp:
        bundle = downloads.write_bundle(list(operation.revision.artifacts.select_related("blob")), Path(tmp, "bundle"))
        answers = _on_every_replica(deployment, lambda url: runner_client.swap(url, token, bundle))
    _candidate_dropped(deployment, operation)
    # A new document: the one the runners hold may not list the new model (it became ready after).
    return _serving(operation, operation.revision, answers) + _install_entitlements(deployment)


def _rollback(operation: Operation) -> str:
    deployment = _running(operation)
    token = deployment.admin_token()
    answers = _on_every_replica(
        deployment, lambda url: runner_client.rollback(url, token, operation.target_generation))
    _candidate_dropped(deployment, operation)
    revision = _revision_of_generation(deployment, answers[0]["generation"])
    return _serving(operation, revision, answers) + _install_entitlements(deployment)


def _on_every_replica(deployment: Deployment, change, undo=None) -> list[dict]:
    """Each replica's runner swaps for itself (checking the candidate with its sample). If one
    refuses, those already changed go back to what they served (`undo`: by default a rollback),
    so replicas never disagree."""
    urls = backend_for(deployment.target).admin_urls(deployment)
    answers = []
    for url in urls:
        try:
            answers.append(change(url))
        except RunnerError:
            (undo or _undo)(deployment, urls[:len(answers)], answers)
            raise
    return answers


def _undo(deployment: Deployment, urls: list[str], answers: list[dict]) -> None:
    token = deployment.admin_token()
    for url, answer in zip(urls, answers, strict=True):
        with contextlib.suppress(RunnerError):
            runner_client.rollback(url, token, answer.get("previous_generation") or answer["generation"] - 1)


def _serving(operation: Operation, revision: Revision | None, answers: list[dict]) -> str:
    """Record what the runners now serve: on the operation (history) and on the deployment. The
    swap time is the slowest replica's."""
    first = answers[0]
    slowest = max((answer.get("duration_ms") or 0 for answer in answers), default=None)
    Operation.objects.filter(pk=operation.pk).update(revision=revision, generation=first["generation"],
                                                     swap_ms=slowest)
    if revision is not None:
        Deployment.objects.filter(pk=operation.deployment_id).update(revision=revision, modified=timezone.now())
    return "".join(f"replica {number}: generation {answer['generation']} ({answer.get('action')}) serving "
                   f"{revision or answer.get('name')} after {answer.get('duration_ms')} ms\n"
                   for number, answer in enumerate(answers, start=1))


def _revision_of_generation(deployment: Deployment, generation: int) -> Revision | None:
    """The runner numbers what it served; the history says which revision each number was."""
    earlier = (Operation.objects.filter(deployment=deployment, generation=generation, status=JobStatus.SUCCEEDED)
               .exclude(revision=None).select_related("revision").order_by("-finished").first())
    return earlier.revision if earlier else None


def _running(operation: Operation) -> Deployment:
    deployment = Deployment.objects.select_related("target").get(pk=operation.deployment_id)
    if deployment.status not in LIVE:
        raise DeploymentRefused(f"the deployment is {deployment.status}, not running")
    return deployment


def _stop(operation: Operation) -> str:
    deployment = operation.deployment
    _meter(deployment, renew=False)  # the use since the last status check, while the runner can say it
    backend_for(deployment.target).stop(deployment)
    now = timezone.now()
    due = now + timedelta(seconds=settings.ACUMOS_DEPLOYMENT_GRACE_SECONDS)
    Deployment.objects.filter(pk=deployment.pk).update(status=DeploymentStatus.STOPPED, stopped_at=now,
                                                       destroy_after=due, health="")
    licence.release(deployment.pk)
    return f"stopped; kept, restartable, until {due:%Y-%m-%d %H:%M} UTC, then destroyed\n"


def _start(operation: Operation) -> str:
    deployment = operation.deployment
    placement = backend_for(deployment.target).restart(deployment, deployment.admin_token())
    metering = _install_entitlements(_placed(deployment, placement))
    _record_placement(deployment, placement)
    return f"started again at {placement.endpoint_url}, serving what it served when it stopped\n{metering}"


def _destroy(operation: Operation) -> str:
    deployment = operation.deployment
    backend_for(deployment.target).destroy(deployment)
    Deployment.objects.filter(pk=deployment.pk).update(status=DeploymentStatus.DESTROYED, endpoint_url="",
                                                       handle={})
    licence.release(deployment.pk)  # a failed deployment destroyed without a stop still held it
    for rollout in deployment.rollouts.filter(state=RolloutState.RUNNING):  # its runners are gone
        _end_rollout(rollout, RolloutState.ABORTED, "the deployment was destroyed", operation.requested_by)
    return "destroyed\n"


# ---------------------------------------------------------------- metering (a licensee's deployment)

def _install_entitlements(deployment: Deployment) -> str:
    """A new signed entitlement on every replica of a metered deployment (licensing.entitlements): after
    its runners start, and after they change what they serve. What happened goes into the operation's
    log; nothing here fails the operation: a runner left without a document refuses predictions with
    its own reason, and the status check tries again."""
    if not licence.is_metered(deployment.pk):
        return ""
    try:
        urls = backend_for(deployment.target).admin_urls(deployment)
    except BackendError as exc:
        log.warning("deployment %s: no entitlement installed: %s", deployment.pk, exc)
        return f"entitlement: not installed ({exc}); the status check tries again\n"
    token = deployment.admin_token()
    return "".join(_install_entitlement(deployment, url, token, replica, len(urls))
                   for replica, url in enumerate(urls))


def _install_entitlement(deployment: Deployment, url: str, token: str, replica: int, replicas: int) -> str:
    where = f"replica {replica + 1}: " if replicas > 1 else ""
    issued = licence.issue_entitlement(deployment.pk, replica, replicas)
    if issued is None:
        return (f"{where}entitlement: none issued ({licence.why_no_entitlement(deployment.pk)}); the runner keeps "
                "what it holds, and one that holds none refuses every prediction (agreement_not_found)\n")
    try:
        runner_client.put_entitlement(url, token, issued.document)
    except RunnerError as exc:
        log.warning("deployment %s: the runner at %s refused entitlement %s: %s", deployment.pk, url,
                    issued.entitlement.pk, exc)
        licence.entitlement_not_delivered(issued)
        return f"{where}entitlement: the runner refused {issued.entitlement.pk}: {exc}\n"
    allowed = "unlimited predictions" if issued.entitlement.predictions is None else \
        f"{issued.entitlement.predictions} predictions"
    return (f"{where}entitlement {issued.entitlement.pk}: {allowed} until "
            f"{issued.entitlement.not_after:%Y-%m-%d %H:%M} UTC\n")


def _meter(deployment: Deployment, *, renew: bool = True) -> None:
    """Best effort, in the status check (and before a stop): each runner's use into usage records, and a
    new document where it holds none or has mostly used or outlived its own. A runner that cannot be
    read is logged and read again at the next check; the check itself never fails for it."""
    if not licence.is_metered(deployment.pk):
        return
    try:
        urls = backend_for(deployment.target).admin_urls(deployment)
    except BackendError as exc:
        log.warning("deployment %s: its runners' use was not read: %s", deployment.pk, exc)
        return
    token = deployment.admin_token()
    for position, url in enumerate(urls):
        try:
            _meter_runner(deployment, url, token, position, len(urls), renew=renew)
        except (RunnerError, ValueError, TypeError) as exc:  # the latter two: an answer of the wrong shape
            log.warning("deployment %s: the use of the runner at %s was not read: %s", deployment.pk, url, exc)


def _meter_runner(deployment: Deployment, url: str, token: str, position: int, replicas: int, *,
                  renew: bool) -> None:
    answer = runner_client.usage(url, token)
    if not isinstance(answer, dict) or answer.get("metered") is False:
        log.warning("deployment %s: the runner at %s does not meter (it was started before its licence was "
                    "metered): stop and start it", deployment.pk, url)
        return
    report = licence.record_runner_usage(deployment.pk, answer)
    replica = licence.replica_of(deployment.pk, report, position)
    if renew and licence.needs_entitlement(deployment.pk, replica, report):
        said = _install_entitlement(deployment, url, token, replica, replicas)
        log.info("deployment %s: %s", deployment.pk, said.strip())


# ---------------------------------------------------------------- a rollout's runner changes

def _set_candidate(operation: Operation) -> str:
    """The rollout's first step puts the candidate beside the live model on every replica (checked with its
    sample; a proto that is not the live one is refused, 409); a later step changes its weight."""
    deployment, rollout = _running(operation), _running_rollout_of(operation)
    token = deployment.admin_token()

    def undo(deployment, urls, answers):  # never a rollback: the live model did not change
        _drop_candidates(deployment, urls)

    if rollout.candidate_generation is not None:
        answers = _on_every_replica(deployment, lambda url: runner_client.change_candidate(
            url, token, weight=rollout.weight), undo=undo)
        metering = ""
    else:
        if rollout.replaces_id is not None:  # the candidate of the rollout this one replaced goes first
            _drop_candidates(deployment)
        with tempfile.TemporaryDirectory(prefix="acumos-candidate-") as tmp:
            bundle = downloads.write_bundle(list(rollout.revision.artifacts.select_related("blob")), Path(tmp, "b"))
            answers = _on_every_replica(deployment, lambda url: runner_client.set_candidate(
                url, token, bundle=bundle, mode=rollout.mode, weight=rollout.weight, sticky=True), undo=undo)
        metering = _install_entitlements(deployment)  # a document that lists the candidate's model too
    generation = answers[0]["candidate"]["generation"]
    Rollout.objects.filter(pk=rollout.pk).update(
        candidate_generation=generation, step_started_at=timezone.now(), updated=timezone.now(),
        progress=f"step {rollout.step + 1} of {len(rollout.weights)}: {rollout.mode} at {rollout.weight} %")
    return "".join(f"replica {number}: {rollout.mode} {rollout.revision} (generation {generation}) at "
                   f"{rollout.weight} % beside generation {answer['live']['generation']}\n"
                   for number, answer in enumerate(answers, start=1)) + metering


def _promote_candidate(operation: Operation) -> str:
    """The candidate every replica holds becomes the live model (no second load); a replica that refuses
    puts those already promoted back (a rollback to the generation they served)."""
    deployment, rollout = _running(operation), _running_rollout_of(operation)
    token = deployment.admin_token()
    answers = _on_every_replica(deployment, lambda url: runner_client.promote_candidate(url, token))
    text = _serving(operation, rollout.revision, answers) + _install_entitlements(deployment)
    _end_rollout(rollout, RolloutState.PROMOTED)
    return text


def _abort_candidate(operation: Operation) -> str:
    """Every replica drops the candidate; the live model never stopped answering."""
    return _drop_candidates(_running(operation)) or "no replica held a candidate\n"


def _drop_candidates(deployment: Deployment, urls: list[str] | None = None) -> str:
    """DELETE the candidate on each replica (all of them by default); one that holds none is fine."""
    token = deployment.admin_token()
    said = []
    for url in urls if urls is not None else backend_for(deployment.target).admin_urls(deployment):
        try:
            runner_client.abort_candidate(url, token)
        except RunnerError as exc:
            if exc.status != 404:
                raise
        else:
            said.append(f"{url}: candidate dropped\n")
    return "".join(said)


def _running_rollout_of(operation: Operation) -> Rollout:
    rollout = Rollout.objects.select_related("revision__solution").filter(pk=operation.rollout_id).first()
    if rollout is None or rollout.state != RolloutState.RUNNING:
        raise DeploymentRefused("its rollout ended before this step ran")
    return rollout


def _rollout_failed(operation: Operation, message: str) -> None:
    """A rollout's runner change failed: the rollout fails with the runner's reason, and whatever candidate
    the replicas still hold is dropped (best effort), so that only the live model answers."""
    Rollout.objects.filter(pk=operation.rollout_id, state=RolloutState.RUNNING).update(
        state=RolloutState.FAILED, finished=timezone.now(), updated=timezone.now(), progress="",
        reason=f"{operation.get_kind_display()} failed: {message}"[:2000])
    if operation.kind in (OperationKind.CANDIDATE, OperationKind.PROMOTE):
        try:
            _drop_candidates(Deployment.objects.select_related("target").get(pk=operation.deployment_id))
        except (BackendError, RunnerError) as exc:
            log.warning("deployment %s: its candidate was not dropped after a failed %s: %s",
                        operation.deployment_id, operation.kind, exc)


def _candidate_dropped(deployment: Deployment, operation: Operation) -> None:
    """A swap or rollback of the live model makes every runner drop its candidate: its rollout ends."""
    who = operation.requested_by.username if operation.requested_by else "the portal"
    for rollout in deployment.rollouts.filter(state=RolloutState.RUNNING):
        _end_rollout(rollout, RolloutState.ABORTED, f"{operation.get_kind_display().lower()} by {who} replaced the "
                     "live model; the runners dropped the candidate", operation.requested_by)


def _end_rollout(rollout: Rollout, state: str, reason: str | None = None, user=None) -> None:
    fields = {"state": state, "finished": timezone.now(), "updated": timezone.now(), "progress": ""}
    if reason is not None:
        fields.update(reason=reason, decided_by=user)
    Rollout.objects.filter(pk=rollout.pk).update(**fields)


ACTIONS = {OperationKind.DEPLOY: _deploy, OperationKind.SWAP: _swap, OperationKind.ROLLBACK: _rollback,
           OperationKind.STOP: _stop, OperationKind.START: _start, OperationKind.DESTROY: _destroy,
           OperationKind.CANDIDATE: _set_candidate, OperationKind.PROMOTE: _promote_candidate,
           OperationKind.ABORT: _abort_candidate}


# ---------------------------------------------------------------- on their own

def follow_new_revision(revision: Revision) -> list[Operation]:
    """The zero-touch retraining loop: a revision that became ready (it passed its smoke test) is
    swapped into every live deployment that follows its solution, if its creator may deploy that
    revision (the licence); one who may not keeps serving what it serves, and its creator is told why."""
    followers = (Deployment.objects.filter(follows_id=revision.solution_id, status__in=LIVE)
                 .exclude(revision=revision).select_related("created_by", "target", "revision__solution"))
    operations = []
    for deployment in followers:
        guarded = deployment.rollout_mode != RolloutMode.SWAP
        if guarded and deployment.rollouts.filter(revision=revision).exists():
            continue  # rolling out, or it ended (a revision rolled back is not tried again by itself)
        decision = licence.decide_swap_in(deployment.created_by, revision, deployment.pk)
        if not decision.allowed:
            _tell_not_followed(deployment, revision, decision.message)
            continue
        try:
            operations.append(start_rollout(deployment, revision) if guarded else _request_operation(
                deployment, OperationKind.SWAP, None, trigger=Trigger.FOLLOW, revision=revision))
        except DeploymentRefused as exc:  # busy: the next check takes it (see check_deployment)
            log.info("deployment %s does not follow %s yet: %s", deployment.pk, revision, exc)
    return operations


# ---------------------------------------------------------------- guarded rollouts (canary, shadow)

class RolloutRefused(DeploymentRefused):
    """A rollout that has ended, or whose candidate is not held yet: 409, its state is in the way."""

    status = 409
    code = "rollout_not_running"


def start_rollout(deployment: Deployment, revision: Revision, user=None, trigger: str = Trigger.FOLLOW) -> Operation:
    """A new revision as a canary or shadow beside the live model (deployment.rollout_mode), judged step by
    step by its gates (monitoring.rollouts). The caller asked the licence (as for a swap: follow_new_revision
    asks decide_swap_in). One rollout at a time: a running one for an older revision is aborted, recorded."""
    with transaction.atomic():
        if busy(deployment):  # before ending the running one: a busy deployment keeps it
            raise DeploymentBusy("another operation on this deployment is still running; try again when it ends")
        running = deployment.rollouts.filter(state=RolloutState.RUNNING).first()
        if running is not None:
            _end_rollout(running, RolloutState.ABORTED, f"{revision.solution.name} {revision.version} came and is "
                         "rolled out in its place", user)
        shadow = deployment.rollout_mode == RolloutMode.SHADOW
        rollout = Rollout.objects.create(
            deployment=deployment, revision=revision, previous_revision=deployment.revision,
            mode=RolloutMode.SHADOW if shadow else RolloutMode.CANARY,
            weights=[SHADOW_WEIGHT] if shadow else list(deployment.rollout_steps), gates=deployment.gates,
            replaces=running, progress="setting the candidate on the runners")
        return _request_operation(deployment, OperationKind.CANDIDATE, user, trigger=trigger, revision=revision,
                                  rollout=rollout)


def next_rollout_step(rollout: Rollout, reason: str) -> Operation:
    """The gates held at this step: the candidate's weight goes up to the next one."""
    with transaction.atomic():
        rollout = _still_running(rollout)
        if rollout.last_step:
            raise RolloutRefused("this rollout is at its last step: promote it or abort it")
        weight = rollout.weights[rollout.step + 1]
        Rollout.objects.filter(pk=rollout.pk).update(step=rollout.step + 1, reason=reason, updated=timezone.now(),
                                                     progress=f"raising the weight to {weight} %")
        return _request_operation(rollout.deployment, OperationKind.CANDIDATE, None, trigger=Trigger.GATES,
                                  revision=rollout.revision, rollout=rollout)


def promote_rollout(rollout: Rollout, user=None, *, reason: str = "") -> Operation:
    """The candidate becomes the live model: the gates held through the last step (user None), or someone
    who may manage the deployment says so (the caller asked deployment.selectors.can_manage)."""
    with transaction.atomic():
        rollout = _still_running(rollout)
        if rollout.candidate_generation is None:
            raise RolloutRefused("the runners do not hold the candidate yet; promote it once they do")
        if user is not None:
            reason = reason or f"promoted by {user.username} at {rollout.weight} % (step {rollout.step + 1} of " \
                               f"{len(rollout.weights)})"
        Rollout.objects.filter(pk=rollout.pk).update(reason=reason, decided_by=user, progress="promoting",
                                                     updated=timezone.now())
        return _request_operation(rollout.deployment, OperationKind.PROMOTE, user,
                                  trigger=Trigger.USER if user else Trigger.GATES, revision=rollout.revision,
                                  rollout=rollout)


def abort_rollout(rollout: Rollout, user=None, *, reason: str = "",
                  state: str = RolloutState.ABORTED) -> Operation:
    """The candidate is dropped from every replica; the live model, which never stopped answering, stays.
    By hand (state aborted), or a gate failed (user None, state rolled_back, the reason names the figure)."""
    with transaction.atomic():
        rollout = _still_running(rollout)
        if user is not None:
            reason = reason or f"aborted by {user.username} at {rollout.weight} % (step {rollout.step + 1} of " \
                               f"{len(rollout.weights)})"
        _end_rollout(rollout, state, reason, user)
        return _request_operation(rollout.deployment, OperationKind.ABORT, user,
                                  trigger=Trigger.USER if user else Trigger.GATES, revision=rollout.revision,
                                  rollout=rollout)


# Each gate's allowed values: (lowest, highest, whole numbers only, may be null).
GATE_BOUNDS = {"max_error_rate": (0, 1, False, False), "max_p99_ms": (0.001, 600_000, False, False),
               "min_agreement": (0, 1, False, False), "min_quality": (0, 1, False, True),
               "min_feedback": (1, 1_000_000, True, False), "min_requests": (1, 10_000_000, True, False),
               "step_rounds": (1, 1000, True, False)}
MAX_STEPS = 10


def set_rollout_settings(deployment: Deployment, *, mode: str, steps=None, gates=None) -> Deployment:
    """How new revisions of the followed solution reach it: `mode` swap, canary or shadow; a canary's `steps`
    (weights in %, rising; None: kept); `gates` that differ from the defaults (a gate left out takes its
    default; None: kept). Who may is the caller's question (selectors.can_manage). A running rollout keeps
    what it began with."""
    if mode not in RolloutMode.values:
        raise DeploymentRefused(f"'mode' is one of {', '.join(RolloutMode.values)}; got {mode!r:.40}", field="mode")
    deployment.rollout_mode = mode
    if steps is not None:
        deployment.rollout_steps = _valid_steps(steps)
    if gates is not None:
        deployment.rollout_gates = _valid_gates(gates)
    Deployment.objects.filter(pk=deployment.pk).update(
        rollout_mode=deployment.rollout_mode, rollout_steps=deployment.rollout_steps,
        rollout_gates=deployment.rollout_gates, modified=timezone.now())
    return deployment


def _valid_steps(steps) -> list:
    wrong = DeploymentRefused(f"'steps' is a list of 1 to {MAX_STEPS} rising weights, each a number above 0 and at "
                              "most 100 (the candidate's share of the requests, in %), e.g. [10, 50]", field="steps")
    if not isinstance(steps, list) or not 1 <= len(steps) <= MAX_STEPS:
        raise wrong
    for weight in steps:
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight <= 100:
            raise wrong
    if any(later <= earlier for earlier, later in zip(steps, steps[1:], strict=False)):
        raise wrong
    return [int(w) if float(w).is_integer() else float(w) for w in steps]


def _valid_gates(gates) -> dict:
    if not isinstance(gates, dict):
        raise DeploymentRefused(f"'gates' is an object of some of {', '.join(GATE_BOUNDS)}", field="gates")
    valid = {}
    for name, value in gates.items():
        if name not in GATE_BOUNDS:
            raise DeploymentRefused(f"unknown gate {name!r:.40}; the gates are {', '.join(GATE_BOUNDS)}",
                                    field=f"gates.{name}"[:60])
        low, high, whole, nullable = GATE_BOUNDS[name]
        if value is None and nullable:
            valid[name] = None
            continue
        number_type = int if whole else int | float
        if isinstance(value, bool) or not isinstance(value, number_type) or not low <= value <= high:
            kind = "a whole number" if whole else "a number"
            null = " or null (not judged)" if nullable else ""
            raise DeploymentRefused(f"'{name}' is {kind} from {low:g} to {high:g}{null}; got {value!r:.40}",
                                    field=f"gates.{name}")
        valid[name] = value
    return valid


def note_rollout_progress(rollout: Rollout, progress: str) -> None:
    """What a running step waits for (no traffic yet, fewer requests than its gate), for its page."""
    Rollout.objects.filter(pk=rollout.pk, state=RolloutState.RUNNING).update(progress=progress[:300])


def _still_running(rollout: Rollout) -> Rollout:
    """The rollout as it is now, locked against a second decision at the same time."""
    found = (Rollout.objects.select_for_update(of=("self",)).select_related("deployment__target", "revision")
             .get(pk=rollout.pk))
    if found.state != RolloutState.RUNNING:
        raise RolloutRefused(f"this rollout has ended ({found.get_state_display().lower()})")
    return found


def _tell_not_followed(deployment: Deployment, revision: Revision, reason: str) -> None:
    """Once per deployment and revision: the status check asks again every 30 s (the agreement may come),
    and a creator told each time would learn nothing more."""
    title = f"{deployment}: does not follow {revision.solution.name} {revision.version}"[:200]
    if Notification.objects.filter(user=deployment.created_by, kind=NotificationKind.LICENSING, title=title).exists():
        return
    marketplace_services.notify(deployment.created_by, NotificationKind.LICENSING, title,
                                url=f"/deployments/{deployment.pk}/",
                                message=f"It keeps serving {deployment.revision.version}. {reason}")


def check_deployments() -> list[str]:
    """The periodic status check of every live deployment."""
    return [check_deployment(deployment) for deployment in Deployment.objects.filter(status__in=LIVE)
            .select_related("target", "revision__solution", "follows")]


def check_deployment(deployment: Deployment) -> str:
    """Is it running, and what does its runner serve? A deployment that stopped answering is marked
    down (and running again when it answers); a metered one's use is read back and its entitlements
    renewed (_meter); a follower that missed a revision catches up."""
    if busy(deployment):
        return f"{deployment.pk}: an operation is running; not checked"
    status, health = _observe(deployment)
    changed = Deployment.objects.filter(pk=deployment.pk, status__in=LIVE).exclude(status=status).exists()
    drifted = DRIFT in health and DRIFT not in deployment.health
    Deployment.objects.filter(pk=deployment.pk, status__in=LIVE).update(status=status, health=health,
                                                                     checked_at=timezone.now())
    if changed or drifted:
        _notify(deployment.created_by, deployment, DeploymentStatus(status).label.lower(), health)
    if status == DeploymentStatus.RUNNING:
        _meter(deployment)
        _catch_up_with_latest(deployment)
    return f"{deployment.pk}: {status} ({health})"


def _observe(deployment: Deployment) -> tuple[str, str]:
    try:
        if not backend_for(deployment.target).is_running(deployment):
            return DeploymentStatus.DOWN, "the runner is not running on the target"
        active = runner_client.active(deployment.endpoint_url, timeout=10)["active"]
    except (BackendError, RunnerError) as exc:
        return DeploymentStatus.DOWN, str(exc)[:500]
    serving = f"serving {active.get('name')} (generation {active.get('generation')})"
    return DeploymentStatus.RUNNING, (serving + _drift(deployment, active))[:500]


DRIFT = "NOT what the portal deployed"


def _drift(deployment: Deployment, active: dict) -> str:
    """Does the runner serve the files of the revision the portal says it serves? A swap made past
    the portal (with the runner's token) shows here. The runner reports its own hashes, so this
    catches a change from outside, not a model that lies about itself."""
    expected = dict(deployment.revision.artifacts.filter(
        kind__in=(ArtifactKind.MODEL, ArtifactKind.PROTO)).values_list("kind", "blob__sha256"))
    reported = active.get("sha256") if isinstance(active.get("sha256"), dict) else {}
    differ = [part for part, kind in (("model", ArtifactKind.MODEL), ("proto", ArtifactKind.PROTO))
              if kind in expected and reported.get(part) != expected[kind]]
    if not differ:
        return ""
    return (f"; {DRIFT}: its {' and '.join(differ)} differ from {deployment.revision}'s "
            "(changed past the portal: swap or roll back from here to serve a known revision)")


def _catch_up_with_latest(deployment: Deployment) -> None:
    if deployment.follows_id is None:
        return
    latest = deployment.follows.revisions.filter(status=RevisionStatus.READY).order_by("-ready_at").first()
    if latest and latest.pk != deployment.revision_id and latest.ready_at > deployment.revision.ready_at:
        follow_new_revision(latest)


def decommission_due() -> list[str]:
    """The end of the grace period: stopped deployments that nobody started again are destroyed."""
    due = Deployment.objects.filter(status=DeploymentStatus.STOPPED, destroy_after__lte=timezone.now())
    done = []
    for deployment in due:
        with contextlib.suppress(DeploymentRefused):
            _request_operation(deployment, OperationKind.DESTROY, None, trigger=Trigger.SCHEDULE)
            done.append(f"{deployment.pk}: grace period over, destroying")
    return done


def _reaped(operation: Operation, message: str) -> None:
    """The worker stopped: the operation failed, and the next status check says what the deployment does."""
    _finish(operation, JobStatus.FAILED, error=message)


OPERATION_TASK = "deployment.run_operation"
JOBS = jobs.JobKind("deployment operation", Operation, OPERATION_TASK, fail=_reaped,
                    stopped_message="the worker running this operation stopped")


def on_bootstrap(sender, **kwargs) -> str:
    """A new site's first target: this host. Model owners may deploy here (the README's first walk):
    each runner is sandboxed."""
    if Target.objects.exists():
        return ""
    Target.objects.create(name="This host", kind=TargetKind.LOCAL, deployers=TargetDeployers.OWNERS)
    return "deployment target: 'This host' (sandboxed runner processes on this machine)"


def on_solution_deleted(sender, solution, by, **kwargs) -> list:
    """A deleted model's deployments are not stopped: a deployment is its creator's running service,
    and deleting a model only hides it from catalogs (it can be restored). They keep serving until
    someone stops them, so each creator who did not delete it is told, once per deployment."""
    told = []
    for deployment in selectors.deployments_serving(solution):
        if deployment.created_by_id == getattr(by, "pk", None):
            continue
        who = f" by {by.username}" if by is not None else ""
        _notify(deployment.created_by, deployment, f"its model {solution.name} was deleted{who}",
                "The deployment keeps serving it until you stop it (Stop, on its page). Its owner can restore "
                "the model; then nothing changes for the deployment.")
        told.append(deployment.created_by)
    return told


def on_revision_ready(sender, revision: Revision, **kwargs) -> None:
    transaction.on_commit(lambda: follow_new_revision(revision))


def on_agreement_revoked(sender, agreement, **kwargs) -> list[str]:
    """An agreement was revoked (after commit): the runners of the deployments live under it are told to
    drop their entitlement, so predictions are refused now rather than when the entitlement expires.
    Best effort: a runner that cannot be reached (or predates the route) is logged and the
    entitlement's expiry does the rest."""
    live = (Deployment.objects.filter(pk__in=licence.live_deployment_ids(agreement), status__in=LIVE)
            .exclude(endpoint_url="").select_related("target"))
    return [told for deployment in live for told in _drop_entitlements(deployment)]


def _drop_entitlements(deployment: Deployment) -> list[str]:
    token = deployment.admin_token()
    try:
        urls = backend_for(deployment.target).admin_urls(deployment)
    except BackendError as exc:
        log.warning("deployment %s: its runners were not told of a revocation: %s", deployment.pk, exc)
        return []
    told = []
    for url in urls:
        try:
            runner_client.delete_entitlement(url, token)
        except RunnerError as exc:
            log.warning("deployment %s: the runner at %s was not told of a revocation: %s", deployment.pk, url, exc)
        else:
            told.append(url)
    return told


def sweep_sandboxes() -> list[str]:
    """What dead processes left on this host (acumos_portal.sandbox.sweep): a local runner whose
    deployment is not live any more (stopped, destroyed, failed, deleted) and not being worked on,
    and a smoke test whose worker died. `make run` calls it at start; the schedule every minute."""
    busy_ids = Operation.objects.filter(status__in=UNFINISHED).values("deployment_id")
    wanted = {pk.hex for pk in Deployment.objects.filter(
        Q(status__in=(*LIVE, DeploymentStatus.PENDING)) | Q(pk__in=busy_ids)).values_list("pk", flat=True)}

    def keep(record: sandbox.Record) -> bool:
        deployment_id = deployment_id_of(record)
        return deployment_id is None or deployment_id in wanted

    return sandbox.sweep(sandbox.records_dir(), keep, workspaces=(sandbox.workspaces_dir(),))


# ---------------------------------------------------------------- Try it through a shared deployment

class TryRefused(DeploymentRefused):
    """A request from a model page's Try it that was not sent (the user's limit, a body too large), or
    that the shared deployment did not answer."""

    status = 429
    code = "try_refused"


class TryDenied(TryRefused):
    """A try by a user whose agreement does not let them run predictions with the model: the licence's
    sentence, status (403, or 402) and code, shown where Try it shows its refusals."""

    def __init__(self, denied: LicenceDenied):
        super().__init__(denied.message, details=denied.details)
        self.status, self.code = denied.status, denied.code


TRY_BODY_LIMIT = 64 * 1024  # a try is one row or a few: a larger body is someone using it as a free endpoint
TRY_TIMEOUT = 15


def try_shared(user, deployment: Deployment, method: str, body: dict) -> str:
    """Send one request to a deployment its owner shared for trying (the caller asked
    selectors.can_try_shared), as the portal, and give back the answer as indented JSON. Each user has
    ACUMOS_SHARED_TRY_PER_MINUTE tries a minute over every shared deployment: the owner's runner is not
    a free endpoint. The endpoint is never said: a runner that does not answer is "did not answer"."""
    if len(json.dumps(body)) > TRY_BODY_LIMIT:
        raise TryRefused(f"The request is larger than {TRY_BODY_LIMIT // 1024} KiB, the most Try it sends: "
                         "try a few rows here, and deploy the model (or run its bundle) for more.")
    try:  # before the try is counted: a denied one is not a try
        licence.authorize_predict(user, deployment.revision)
    except LicenceDenied as denied:
        raise TryDenied(denied) from denied
    _count_try(user)
    try:
        with _try_slot():
            answer = runner_client.call_method(deployment.endpoint_url, method, body, timeout=TRY_TIMEOUT)
    except RunnerError as exc:
        if exc.status is None:  # not reached, or no answer in time: where it runs is not the user's business
            raise TryRefused("The shared deployment did not answer: try again in a moment, or ask the "
                             "model's owner whether it is still running.") from exc
        raise TryRefused(str(exc).replace("the runner refused", "The model refused the request", 1)) from exc
    return json.dumps(answer, indent=2)


class _TriesWaiting:
    """How many tries wait for a runner in this web process (its threads share it)."""

    lock = threading.Lock()
    count = 0


@contextlib.contextmanager
def _try_slot():
    """At most ACUMOS_SHARED_TRY_CONCURRENT tries wait for a runner at once in this web process: a slow
    shared model (or many consumers of one) leaves the other threads to the rest of the site."""
    with _TriesWaiting.lock:
        if _TriesWaiting.count >= settings.ACUMOS_SHARED_TRY_CONCURRENT:
            raise TryRefused("Try it is busy on this site right now: send again in a moment.")
        _TriesWaiting.count += 1
    try:
        yield
    finally:
        with _TriesWaiting.lock:
            _TriesWaiting.count -= 1


def _count_try(user) -> None:
    """A fixed one-minute window per user in the cache (shared by the web processes when a shared cache
    is configured; per process otherwise, which only makes the limit more generous)."""
    limit = settings.ACUMOS_SHARED_TRY_PER_MINUTE
    key = f"shared-try:{user.pk}:{int(timezone.now().timestamp() // 60)}"
    cache.add(key, 0, timeout=120)
    try:
        tries = cache.incr(key)
    except ValueError:  # expired between the two calls
        cache.set(key, 1, timeout=120)
        tries = 1
    if tries > limit:
        raise TryRefused(f"You have used your {limit} tries a minute on shared deployments: send again in a "
                         "minute (the limit keeps one model's runner from serving everyone's traffic).")
