"""Federation's writes: peers (registered by admins, or asking to join), the catalogs granted to them,
subscriptions to their catalogs, and the runs that import them (a job of the portal's one shape)."""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from acumos_portal import jobs
from acumos_portal.api.refusals import Refused
from acumos_portal.choices import UNFINISHED, JobStatus
from federation import identity, notices, selectors, sync
from federation.authentication import PeerRefused
from federation.certificates import CertificateProblem, common_name, load_bundle, to_pem
from federation.choices import ItemOutcome, PeerStatus, Trigger, WithdrawalPolicy
from federation.client import PeerAnswer, PeerClient, PeerUnavailable
from federation.models import CatalogGrant, Peer, Subscription, SyncRun
from marketplace.models import Catalog

RUN_TASK = "federation.run_subscription"


class NotAllowed(Refused):
    code, status = "permission_denied", 403


def _require_admin(user) -> None:
    if not selectors.can_manage_federation(user):
        raise NotAllowed("only an admin of this site manages federation")


# ---------------------------------------------------------------- peers

def _clean_certificate(pem: str) -> str:
    try:
        return to_pem(*load_bundle(pem))
    except CertificateProblem as exc:
        raise Refused(str(exc), "certificate") from exc


def _clean_url(url: str) -> str:
    url = (url or "").strip().rstrip("/")
    if not url.startswith("https://"):
        raise Refused("a peer's API URL must start with https:// (peers talk over mutual TLS only)", "api_url")
    return url


def register_peer(user, *, name: str, api_url: str, certificate: str, subject: str = "", contact: str = "",
                  description: str = "", status: str = PeerStatus.ACTIVE) -> Peer:
    """A peer an admin registers: its name, API URL, certificate (or its CA's) and subject CN (the
    certificate's, when it is the peer's own and none is given)."""
    _require_admin(user)
    pem = _clean_certificate(certificate)
    subject = (subject or "").strip()
    if not subject:
        first = load_bundle(pem)[0]
        if first.extensions and _is_ca(first):
            raise Refused("the certificate is a CA's: give the subject CN of the peer's own certificate", "subject")
        subject = common_name(first)
    if status not in PeerStatus.values:
        raise Refused(f"status must be one of {', '.join(PeerStatus.values)}", "status")
    try:
        with transaction.atomic():
            return Peer.objects.create(name=name.strip(), api_url=_clean_url(api_url), certificate=pem,
                                       subject=subject, contact=contact, description=description, status=status)
    except IntegrityError as exc:
        raise Refused("a peer with this name or subject is registered already", "name") from exc


def _is_ca(certificate) -> bool:
    from cryptography import x509

    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def update_peer(user, peer: Peer, **fields) -> Peer:
    _require_admin(user)
    if "certificate" in fields:
        fields["certificate"] = _clean_certificate(fields["certificate"])
    if "api_url" in fields:
        fields["api_url"] = _clean_url(fields["api_url"])
    if "status" in fields and fields["status"] not in PeerStatus.values:
        raise Refused(f"status must be one of {', '.join(PeerStatus.values)}", "status")
    for name, value in fields.items():
        setattr(peer, name, value)
    try:
        with transaction.atomic():
            peer.save()
    except IntegrityError as exc:
        raise Refused("a peer with this name or subject is registered already", "name") from exc
    return peer


def set_status(user, peer: Peer, status: str) -> Peer:
    return update_peer(user, peer, status=status)


def delete_peer(user, peer: Peer) -> None:
    """Its subscriptions go with it; what they imported stays (with its origin recorded)."""
    _require_admin(user)
    peer.delete()


def ping(user, peer: Peer) -> dict:
    """Ask the peer who it is, over mutual TLS, and record how that went."""
    _require_admin(user)
    try:
        with PeerClient(peer) as client:
            answer = client.ping()
        ok, message = True, f"{answer.get('name')} answered"
    except (PeerUnavailable, PeerAnswer, identity.NoIdentity) as exc:
        answer, ok, message = None, False, str(exc)
    Peer.objects.filter(pk=peer.pk).update(last_ping_at=timezone.now(), last_ping_ok=ok,
                                           last_ping_message=message[:500])
    return {"ok": ok, "message": message, "answer": answer}


MAX_PENDING_REQUESTS = 20


def request_registration(caller, body: dict) -> str:
    """An unknown certificate asks to become a peer (POST /federation/peer/register): a requested
    peer pinned to exactly that certificate, for an admin to approve or decline. The answer says
    only that the request is taken: whether that subject is a peer here is not for a caller to learn."""
    if not settings.ACUMOS_FEDERATION_REGISTRATION:
        raise PeerRefused("registration_closed", "this site does not take requests to become a peer; "
                                                 "ask its admins to register you")
    if caller.peer is not None:
        return "received"
    if Peer.objects.filter(status=PeerStatus.REQUESTED, self_registered=True).count() >= MAX_PENDING_REQUESTS:
        raise PeerRefused("too_many_requests", "this site has many requests waiting for its admins; ask again "
                                               "later", status=429)
    try:
        api_url = _clean_url(str(body.get("apiUrl") or f"https://{caller.subject}"))
    except Refused as exc:
        raise PeerRefused("invalid", exc.message, status=400) from exc
    try:
        with transaction.atomic():
            peer = Peer.objects.create(
                name=caller.subject[:100], subject=caller.subject, api_url=api_url[:300],
                certificate=to_pem(caller.certificate), contact=str(body.get("contact", ""))[:254],
                status=PeerStatus.REQUESTED, self_registered=True)
    except IntegrityError:  # its name is another peer's: taken as received, an admin sees no new request
        return "received"
    notices.tell_admins_of_request(peer)
    return "received"


# ---------------------------------------------------------------- grants

def grant(user, peer: Peer, catalog: Catalog) -> CatalogGrant:
    _require_admin(user)
    found, _ = CatalogGrant.objects.get_or_create(peer=peer, catalog=catalog, defaults={"granted_by": user})
    return found


def revoke(user, peer: Peer, catalog: Catalog) -> None:
    _require_admin(user)
    CatalogGrant.objects.filter(peer=peer, catalog=catalog).delete()


# ---------------------------------------------------------------- subscriptions

def _check_settings(*, interval_seconds: int | None, on_withdrawal: str | None) -> None:
    if on_withdrawal is not None and on_withdrawal not in WithdrawalPolicy.values:
        raise Refused(f"on_withdrawal must be one of {', '.join(WithdrawalPolicy.values)}", "on_withdrawal")
    if interval_seconds and interval_seconds < 60:
        raise Refused("the interval is at least 60 seconds (or 0: on demand only)", "interval_seconds")


def subscribe(user, peer: Peer, *, catalog_id, owner=None, interval_seconds: int = 3600,
              on_withdrawal: str = WithdrawalPolicy.HIDE, catalog_name: str = "") -> Subscription:
    _require_admin(user)
    _check_settings(interval_seconds=interval_seconds, on_withdrawal=on_withdrawal)
    try:
        with transaction.atomic():
            return Subscription.objects.create(peer=peer, catalog_id=catalog_id, owner=owner or user,
                                               interval_seconds=interval_seconds, on_withdrawal=on_withdrawal,
                                               catalog_name=catalog_name[:100])
    except IntegrityError as exc:
        raise Refused("this site subscribes to that catalog of that peer already", "catalog_id") from exc


def update_subscription(user, subscription: Subscription, *, interval_seconds: int | None = None,
                        on_withdrawal: str | None = None, enabled: bool | None = None) -> Subscription:
    """Its own settings; where it imports from never changes (unsubscribe, and subscribe again)."""
    _require_admin(user)
    _check_settings(interval_seconds=interval_seconds, on_withdrawal=on_withdrawal)
    given = {name: value for name, value in (("interval_seconds", interval_seconds), ("on_withdrawal", on_withdrawal),
                                             ("enabled", enabled)) if value is not None}
    for name, value in given.items():
        setattr(subscription, name, value)
    subscription.save(update_fields=list(given))
    return subscription


def unsubscribe(user, subscription: Subscription) -> None:
    _require_admin(user)
    subscription.delete()


@transaction.atomic
def start_run(user, subscription: Subscription, *, dry_run: bool = False, trigger: str = Trigger.MANUAL) -> SyncRun:
    """A run of the subscription, sent once this transaction commits; the run in flight if there is one."""
    if user is not None:
        _require_admin(user)
    Subscription.objects.select_for_update().get(pk=subscription.pk)
    running = subscription.runs.filter(status__in=UNFINISHED, dry_run=dry_run).first()
    if running is not None:
        return running
    run = SyncRun.objects.create(subscription=subscription, dry_run=dry_run, trigger=trigger, requested_by=user)
    jobs.enqueue(RUN_TASK, str(run.pk))
    return run


def run_due() -> list[SyncRun]:
    """The schedule's call: a run for every enabled subscription whose interval has passed."""
    now = timezone.now()
    started = []
    for subscription in Subscription.objects.filter(enabled=True, interval_seconds__gt=0,
                                                    peer__status=PeerStatus.ACTIVE):
        last = subscription.last_run_at
        due = last is None or (now - last).total_seconds() >= subscription.interval_seconds
        if due and not subscription.runs.filter(status__in=UNFINISHED).exists():
            started.append(start_run(None, subscription, trigger=Trigger.SCHEDULE))
    return started


# ---------------------------------------------------------------- the job

def execute_run(run_id) -> None:
    rows = SyncRun.objects.filter(pk=run_id)
    if not jobs.claim(rows):
        return
    run = rows.get()
    summary = jobs.run_claimed(run, sync.run, fail=fail_run, permanent=(sync.RunRefused,), transient=(sync.TryLater,),
                               what=f"federation run {run.pk}", where=" in this run")
    if summary is not None:
        jobs.finish(rows, JobStatus.SUCCEEDED, log=_log_of(summary))


def summary_in_words(summary) -> list[tuple[str, int]]:
    """A run's summary (outcome -> count) as a reader says it: (label, count), in a steady order."""
    if not isinstance(summary, dict):
        return []
    labels = {value: str(label).lower() for value, label in ItemOutcome.choices}  # "1 imported, 2 refused"
    return sorted((labels.get(outcome, outcome), count) for outcome, count in summary.items())


def _log_of(summary: dict) -> str:
    return ", ".join(f"{count} {label}" for label, count in summary_in_words(summary)) or "nothing changed"


def fail_run(run: SyncRun, message: str) -> None:
    jobs.finish(SyncRun.objects.filter(pk=run.pk), JobStatus.FAILED, error=message[:4000])
    Subscription.objects.filter(pk=run.subscription_id).update(last_run_at=timezone.now())


JOBS = jobs.JobKind("federation run", SyncRun, RUN_TASK, fail=fail_run)
