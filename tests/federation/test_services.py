"""Federation's services in-process: registering peers (what is refused and why), asking to join,
subscription settings, and the schedule's choice of which subscriptions are due."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from acumos_portal.api.refusals import Refused
from acumos_portal.choices import JobStatus
from federation import services
from federation.authentication import Caller, PeerRefused
from federation.choices import PeerStatus, Trigger
from federation.models import Peer, Subscription, SyncRun
from marketplace.models import Notification

pytestmark = pytest.mark.django_db


# ---------------------------------------------------------------- peers

def test_an_admin_registers_a_peer_by_its_certificate_and_the_subject_comes_from_it(admin_user, ca):
    own = ca.issue("models.gamma.test")
    made = services.register_peer(admin_user, name="Gamma", api_url="https://gamma.test:9443/", certificate=own.pem)
    assert made.subject == "models.gamma.test" and made.api_url == "https://gamma.test:9443"
    assert made.status == PeerStatus.ACTIVE


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"api_url": "http://gamma.test"}, "api_url", "https://"),
    ({"certificate": "not a certificate"}, "certificate", "PEM"),
    ({"certificate": "CA"}, "subject", "subject CN"),
    ({"status": "XX"}, "status", "one of"),
])
def test_what_a_peer_registration_refuses(admin_user, ca, fields, field, words):
    given = {"name": "Gamma", "api_url": "https://gamma.test", "certificate": ca.issue("gamma.test").pem, **fields}
    if given["certificate"] == "CA":
        given["certificate"] = ca.pem  # a CA's certificate names no peer: the subject must be given
    with pytest.raises(Refused) as refused:
        services.register_peer(admin_user, **given)
    assert refused.value.field == field and words in refused.value.message


def test_a_second_peer_with_the_same_subject_is_refused(admin_user, peer, ca):
    with pytest.raises(Refused, match="registered already"):
        services.register_peer(admin_user, name="Another", api_url="https://x.test", certificate=ca.pem,
                               subject=peer.subject)


@pytest.mark.parametrize("persona", ["owner", "publisher", "operator"])
def test_only_admins_manage_peers(request, persona, ca, peer):
    user = request.getfixturevalue(persona)
    with pytest.raises(services.NotAllowed):
        services.register_peer(user, name="X", api_url="https://x.test", certificate=ca.issue("x.test").pem)
    with pytest.raises(services.NotAllowed):
        services.set_status(user, peer, PeerStatus.INACTIVE)
    with pytest.raises(services.NotAllowed):
        services.subscribe(user, peer, catalog_id=uuid.uuid4())


def test_asking_to_join_makes_a_requested_peer_pinned_to_that_certificate_and_tells_admins(settings, ca,
                                                                                          admin_user):
    settings.ACUMOS_FEDERATION_REGISTRATION = True
    presented = ca.issue("newcomer.test")
    caller = Caller(certificate=presented.certificate, subject="newcomer.test", peer=None)
    assert services.request_registration(caller, {"apiUrl": "https://newcomer.test:9443",
                                                  "contact": "a@b.test"}) == "received"
    made = Peer.objects.get(subject="newcomer.test")
    assert made.status == PeerStatus.REQUESTED and made.self_registered
    assert made.certificate == presented.pem  # pinned: only this certificate, not its CA
    assert Notification.objects.filter(user=admin_user, title__contains="newcomer.test asks").exists()
    known = Caller(certificate=presented.certificate, subject="newcomer.test", peer=made)
    assert services.request_registration(known, {}) == "received"  # says nothing of what it is here
    assert Peer.objects.filter(subject="newcomer.test").count() == 1


@pytest.mark.parametrize("body", [{"apiUrl": "http://plain.test"}, {"apiUrl": "ftp://x"}])
def test_asking_to_join_with_a_bad_address_is_a_sentence(settings, ca, body):
    settings.ACUMOS_FEDERATION_REGISTRATION = True
    caller = Caller(certificate=ca.issue("x.test").certificate, subject="x.test", peer=None)
    with pytest.raises(PeerRefused) as refused:
        services.request_registration(caller, body)
    assert refused.value.status == 400 and "https://" in refused.value.message


def test_asking_to_join_under_another_peers_name_makes_nothing_and_says_nothing(settings, ca, peer):
    settings.ACUMOS_FEDERATION_REGISTRATION = True
    clash = Caller(certificate=ca.issue(peer.name).certificate, subject=peer.name, peer=None)  # CN = its name
    assert services.request_registration(clash, {}) == "received"
    assert Peer.objects.count() == 1


def test_requests_to_join_are_capped(settings, ca):
    settings.ACUMOS_FEDERATION_REGISTRATION = True
    for n in range(services.MAX_PENDING_REQUESTS):
        services.request_registration(Caller(certificate=ca.issue(f"n{n}.test").certificate, subject=f"n{n}.test",
                                             peer=None), {})
    with pytest.raises(PeerRefused) as refused:
        services.request_registration(Caller(certificate=ca.issue("late.test").certificate, subject="late.test",
                                             peer=None), {})
    assert refused.value.code == "too_many_requests" and refused.value.status == 429


def test_asking_to_join_is_refused_while_registration_is_closed(ca):
    caller = Caller(certificate=ca.issue("x.test").certificate, subject="x.test", peer=None)
    with pytest.raises(PeerRefused) as refused:
        services.request_registration(caller, {})
    assert refused.value.code == "registration_closed"
    assert not Peer.objects.exists()


# ---------------------------------------------------------------- subscriptions

@pytest.mark.parametrize(("fields", "field"), [({"interval_seconds": 30}, "interval_seconds"),
                                               ({"on_withdrawal": "burn"}, "on_withdrawal")])
def test_subscription_settings_are_checked_alike_when_made_and_changed(admin_user, peer, subscription, fields,
                                                                       field):
    with pytest.raises(Refused) as made:
        services.subscribe(admin_user, peer, catalog_id=uuid.uuid4(), **fields)
    with pytest.raises(Refused) as changed:
        services.update_subscription(admin_user, subscription, **fields)
    assert made.value.field == changed.value.field == field


def test_subscribing_twice_to_one_catalog_is_refused(admin_user, peer, subscription):
    with pytest.raises(Refused, match="already"):
        services.subscribe(admin_user, peer, catalog_id=subscription.catalog_id)


def test_deleting_a_peer_takes_its_subscriptions(admin_user, peer, subscription):
    services.delete_peer(admin_user, peer)
    assert not Subscription.objects.exists()


# ---------------------------------------------------------------- the schedule

def _due(peer, owner, **fields) -> Subscription:
    return Subscription.objects.create(peer=peer, catalog_id=uuid.uuid4(), owner=owner, **fields)


def test_the_schedule_runs_each_subscription_whose_interval_has_passed(admin_user, peer, ca, sent):
    now = timezone.now()
    never_run = _due(peer, admin_user, interval_seconds=600)
    overdue = _due(peer, admin_user, interval_seconds=600, last_run_at=now - timedelta(seconds=601))
    recent = _due(peer, admin_user, interval_seconds=600, last_run_at=now - timedelta(seconds=60))
    on_demand = _due(peer, admin_user, interval_seconds=0)
    disabled = _due(peer, admin_user, interval_seconds=600, enabled=False)
    busy = _due(peer, admin_user, interval_seconds=600)
    SyncRun.objects.create(subscription=busy, status=JobStatus.RUNNING)
    asleep = Peer.objects.create(name="Asleep", subject="asleep.test", api_url="https://a.test", certificate=ca.pem,
                                 status=PeerStatus.INACTIVE)
    of_inactive_peer = _due(asleep, admin_user, interval_seconds=600)

    started = sent(services.run_due)

    assert {run.subscription_id for run in started} == {never_run.pk, overdue.pk}
    assert all(run.trigger == Trigger.SCHEDULE for run in started)
    assert sorted(args[0] for _, args in sent.tasks) == sorted(str(run.pk) for run in started)
    for left in (recent, on_demand, disabled, of_inactive_peer):
        assert not left.runs.exists()
    assert busy.runs.count() == 1


def test_a_second_run_while_one_is_going_is_the_same_run(admin_user, subscription, sent):
    first = sent(lambda: services.start_run(admin_user, subscription))
    second = sent(lambda: services.start_run(admin_user, subscription))
    assert first.pk == second.pk and len(sent.tasks) == 1
    dry = sent(lambda: services.start_run(admin_user, subscription, dry_run=True))
    assert dry.pk != first.pk and dry.dry_run
