"""The admins' federation pages (/site/federation/): who may open them (admins; everyone else 404,
anonymous visitors the sign-in page), this instance's identity and never its key, peers registered,
edited, approved, deactivated, declined, pinged and deleted, catalogs granted and revoked, the
subscribe form's sentence when the peer cannot be reached, subscription settings, Run now and Dry
run (a SyncRun row, its task sent once the request commits), the run page that follows a run, and
the model page of an imported model (where it came from, read-only)."""

from __future__ import annotations

import json
import uuid

import pytest
from django.urls import reverse
from django.utils import timezone

from federation import identity
from federation.choices import ItemOutcome, ItemStatus, PeerStatus, SignatureStatus, Trigger, WithdrawalPolicy
from federation.models import CatalogGrant, Peer, RevisionOrigin, Subscription, SyncItem, SyncResult, SyncRun
from tests.factories import RevisionFactory, SolutionFactory

from .pki import ThrowawayCA

pytestmark = pytest.mark.django_db

PERSONAS = ("anonymous", "owner", "other_user", "publisher", "operator", "admin_user")
KEY_MARK = "PRIVATE KEY"
RUN_TASK = "federation.run_subscription"


# ---------------------------------------------------------------- fixtures and helpers

def persona(request, name):
    return None if name == "anonymous" else request.getfixturevalue(name)


def page(response) -> str:
    return response.content.decode()


def toasts_of(response) -> list[dict]:
    toast = json.loads(response["HX-Trigger"])["toast"]
    return toast if isinstance(toast, list) else [toast]


def peer_form(ca, **fields) -> dict:
    leaf = ca.issue("portal-c.test")
    return {"name": "Gamma", "api_url": "https://gamma.test:9443", "certificate": leaf.pem, "subject": "",
            "contact": "", "description": "", **fields}


# ---------------------------------------------------------------- who may open what

def page_urls(peer, subscription, run) -> list[str]:
    return [reverse("federation:overview"), reverse("federation:certificate"),
            reverse("federation:peer", args=[peer.pk]), reverse("federation:subscribe", args=[peer.pk]),
            reverse("federation:subscription", args=[subscription.pk]), reverse("federation:run", args=[run.pk]),
            reverse("federation:run-live", args=[run.pk])]


@pytest.mark.parametrize("name", PERSONAS)
def test_every_page_is_for_admins_only(request, client_for, name, me, peer, subscription, run):
    client = client_for(persona(request, name))
    for url in page_urls(peer, subscription, run):
        response = client.get(url)
        if name == "anonymous":
            assert response.status_code == 302 and response.url.startswith(reverse("accounts:login")), url
        elif name == "admin_user":
            assert response.status_code == 200, url
        else:
            assert response.status_code == 404, url


@pytest.mark.parametrize("name", ["anonymous", "owner", "other_user", "publisher", "operator"])
def test_no_change_is_open_to_anyone_but_admins(request, client_for, name, me, peer, subscription, restricted,
                                                sent):
    CatalogGrant.objects.create(peer=peer, catalog=restricted)
    client = client_for(persona(request, name))
    posts = {
        reverse("federation:register"): peer_form(ThrowawayCA()),
        reverse("federation:peer-edit", args=[peer.pk]): {"name": "Renamed", "api_url": peer.api_url,
                                                          "certificate": peer.certificate, "subject": peer.subject},
        reverse("federation:peer-ping", args=[peer.pk]): {},
        reverse("federation:peer-status", args=[peer.pk]): {"status": PeerStatus.DECLINED},
        reverse("federation:grant", args=[peer.pk]): {"catalog": restricted.pk},
        reverse("federation:revoke", args=[peer.pk, restricted.pk]): {},
        reverse("federation:subscribe", args=[peer.pk]): {"catalog": str(uuid.uuid4())},
        reverse("federation:subscription-edit", args=[subscription.pk]): {"interval_seconds": 0},
        reverse("federation:run-now", args=[subscription.pk]): {},
        reverse("federation:unsubscribe", args=[subscription.pk]): {},
        reverse("federation:peer-delete", args=[peer.pk]): {},
    }
    for url, data in posts.items():
        response = sent(lambda url=url, data=data: client.post(url, data))
        if name == "anonymous":
            assert response.status_code == 302 and response.url.startswith(reverse("accounts:login")), url
        else:
            assert response.status_code == 404, url
    peer.refresh_from_db()
    subscription.refresh_from_db()
    assert (peer.name, peer.status, peer.last_ping_at) == ("Beta", PeerStatus.ACTIVE, None)
    assert subscription.interval_seconds == 3600 and not subscription.runs.exists()
    assert Peer.objects.count() == 1 and CatalogGrant.objects.filter(peer=peer).count() == 1
    assert sent.tasks == []


def test_admins_find_the_pages_in_their_menu_and_no_one_else_does(client_for, admin_user, owner, publisher):
    link = f'href="{reverse("federation:overview")}"'
    assert link in page(client_for(admin_user).get(reverse("marketplace:browse")))
    for user in (owner, publisher):
        assert link not in page(client_for(user).get(reverse("marketplace:browse")))


# ---------------------------------------------------------------- this instance's identity

def test_the_overview_shows_the_identity_to_give_peers_and_never_its_key(client_for, admin_user, me, settings):
    settings.ACUMOS_FEDERATION_URL = "https://portal-a.test:9443"
    html = page(client_for(admin_user).get(reverse("federation:overview")))
    assert "portal-a.test" in html and str(me.instance_id) in html and me.fingerprint in html
    assert f"{me.certificate.not_valid_after_utc:%Y-%m-%d}" in html
    assert me.public_pem().strip() in html and "https://portal-a.test:9443" in html
    assert 'data-copy="#public-pem"' in html and reverse("federation:certificate") in html
    key = (settings.ACUMOS_FEDERATION_DIR / identity.KEY_FILE).read_text()
    assert KEY_MARK not in html and key.splitlines()[1] not in html


def test_the_certificate_downloads_as_a_pem_file_without_the_key(client_for, admin_user, me):
    response = client_for(admin_user).get(reverse("federation:certificate"))
    assert response.status_code == 200 and response["Content-Type"] == "application/x-pem-file"
    assert response["Content-Disposition"] == 'attachment; filename="portal-atest-federation.pem"'
    body = response.content.decode()
    assert body == me.public_pem() and "BEGIN CERTIFICATE" in body and KEY_MARK not in body


def test_without_an_identity_the_overview_says_how_to_make_one(client_for, admin_user, no_identity):
    client = client_for(admin_user)
    html = page(client.get(reverse("federation:overview")))
    assert "has no federation identity yet" in html
    assert "manage.py federation_identity --create --name &lt;this site's host name&gt;" in html
    assert client.get(reverse("federation:certificate")).status_code == 404


# ---------------------------------------------------------------- peers

def test_an_admin_registers_a_peer_and_its_subject_is_read_from_its_certificate(client_for, admin_user, me, ca):
    client = client_for(admin_user)
    response = client.post(reverse("federation:register"), peer_form(ca, contact="ops@gamma.test"))
    peer = Peer.objects.get(name="Gamma")
    assert response.status_code == 302 and response.url == reverse("federation:peer", args=[peer.pk])
    assert (peer.subject, peer.status, peer.api_url, peer.contact) == (
        "portal-c.test", PeerStatus.ACTIVE, "https://gamma.test:9443", "ops@gamma.test")
    html = page(client.get(response.url))
    assert "Gamma is registered and active" in html and "portal-c.test" in html


@pytest.mark.parametrize(("fields", "sentence"), [
    ({"api_url": "http://gamma.test"}, "must start with https://"),
    ({"certificate": "not a certificate"}, "Not a PEM certificate"),
    ({"certificate": "-----BEGIN PRIVATE KEY-----\nMIGHAgEA\n-----END PRIVATE KEY-----"}, "This is a private key"),
])
def test_a_peer_the_services_refuse_is_not_registered_and_the_form_says_why(client_for, admin_user, me, ca,
                                                                           fields, sentence):
    response = client_for(admin_user).post(reverse("federation:register"), peer_form(ca, **fields))
    assert response.status_code == 400 and sentence in page(response)
    assert not Peer.objects.filter(name="Gamma").exists()
    assert KEY_MARK not in page(response).replace("BEGIN CERTIFICATE", "")


def test_a_ca_needs_the_subject_of_the_peers_own_certificate(client_for, admin_user, me, ca):
    client = client_for(admin_user)
    response = client.post(reverse("federation:register"), peer_form(ca, certificate=ca.pem))
    assert response.status_code == 400 and "give the subject CN" in page(response)
    response = client.post(reverse("federation:register"), peer_form(ca, certificate=ca.pem, subject="gamma.test"))
    assert response.status_code == 302 and Peer.objects.get(name="Gamma").subject == "gamma.test"


def test_peers_asking_to_join_come_first_and_are_approved_or_declined(client_for, admin_user, me, peer, ca):
    asking = Peer.objects.create(name="Zeta", subject="zeta.test", api_url="https://zeta.test", certificate=ca.pem,
                                 status=PeerStatus.REQUESTED, self_registered=True)
    other = Peer.objects.create(name="Eta", subject="eta.test", api_url="https://eta.test", certificate=ca.pem,
                                status=PeerStatus.REQUESTED, self_registered=True)
    client = client_for(admin_user)
    html = page(client.get(reverse("federation:overview")))
    assert html.index("Asking to join") < html.index("Zeta") < html.index('id="peers"') < html.index(">Beta<")
    assert f'aria-label="Approve {asking.name}"' in html and f'aria-label="Decline {asking.name}"' in html

    status = reverse("federation:peer-status", args=[asking.pk])
    assert client.post(status, {"status": PeerStatus.ACTIVE}).status_code == 302
    assert client.post(reverse("federation:peer-status", args=[other.pk]), {"status": PeerStatus.DECLINED}).url == \
        reverse("federation:peer", args=[other.pk])
    asking.refresh_from_db()
    other.refresh_from_db()
    assert (asking.status, other.status) == (PeerStatus.ACTIVE, PeerStatus.DECLINED)
    assert "Asking to join" not in page(client.get(reverse("federation:overview")))


def test_the_peer_page_edits_deactivates_activates_and_deletes_it(client_for, admin_user, me, peer, subscription):
    client = client_for(admin_user)
    url = reverse("federation:peer", args=[peer.pk])
    html = page(client.get(url))
    assert ">Deactivate<" in html and ">Decline<" in html and "Delete Beta" in html and "data-confirm" in html

    edit = {"name": "Beta One", "api_url": "https://beta.test:9443/", "certificate": peer.certificate,
            "subject": "portal-b.test", "contact": "", "description": "Our partner"}
    assert client.post(reverse("federation:peer-edit", args=[peer.pk]), edit).url == url
    peer.refresh_from_db()
    assert (peer.name, peer.api_url, peer.description) == ("Beta One", "https://beta.test:9443", "Our partner")
    refused = client.post(reverse("federation:peer-edit", args=[peer.pk]), {**edit, "api_url": "ftp://beta.test"})
    assert refused.status_code == 400 and "must start with https://" in page(refused)

    client.post(reverse("federation:peer-status", args=[peer.pk]), {"status": PeerStatus.INACTIVE})
    peer.refresh_from_db()
    assert peer.status == PeerStatus.INACTIVE
    html = page(client.get(url))
    assert "is inactive" in html and ">Activate<" in html and "activate Beta One first" in html
    client.post(reverse("federation:peer-status", args=[peer.pk]), {"status": PeerStatus.ACTIVE})
    peer.refresh_from_db()
    assert peer.status == PeerStatus.ACTIVE

    response = client.post(reverse("federation:peer-delete", args=[peer.pk]))
    assert response.url == reverse("federation:overview")
    assert not Peer.objects.exists() and not Subscription.objects.exists()
    assert "Beta One is deleted" in page(client.get(response.url))


def test_ping_says_why_a_peer_does_not_answer_in_place(client_for, admin_user, me, peer):
    response = client_for(admin_user).post(reverse("federation:peer-ping", args=[peer.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = page(response)
    assert html.lstrip().startswith('<div id="ping-answer"') and "Beta cannot be reached at https://127.0.0.1:" in html
    [toast] = toasts_of(response)
    assert toast["level"] == "error" and toast["text"].startswith("Beta did not answer: Beta cannot be reached")
    peer.refresh_from_db()
    assert peer.last_ping_ok is False and peer.last_ping_at and "cannot be reached" in peer.last_ping_message


def test_ping_without_an_identity_says_how_to_make_one(client_for, admin_user, no_identity, peer):
    client = client_for(admin_user)
    response = client.post(reverse("federation:peer-ping", args=[peer.pk]))
    assert response.status_code == 302
    html = page(client.get(response.url))
    assert "no federation identity yet" in html and "federation_identity --create" in html


# ---------------------------------------------------------------- grants

def test_an_admin_grants_and_revokes_a_restricted_catalog(client_for, admin_user, me, peer, restricted, catalogs):
    client = client_for(admin_user)
    url = reverse("federation:peer", args=[peer.pk])
    html = page(client.get(url))
    assert "Public Models" in html and "every active peer reads them" in html
    assert f'<option value="{restricted.pk}">Partners</option>' in html
    assert f'<option value="{catalogs["public"].pk}"' not in html  # public ones need no grant

    assert client.post(reverse("federation:grant", args=[peer.pk]), {"catalog": restricted.pk}).status_code == 302
    grant = CatalogGrant.objects.get(peer=peer)
    assert grant.catalog == restricted and grant.granted_by == admin_user
    html = page(client.get(url))
    assert "Beta may now read Partners" in html and 'aria-label="Revoke Partners"' in html

    refused = client.post(reverse("federation:grant", args=[peer.pk]), {"catalog": catalogs["public"].pk})
    assert refused.status_code == 400 and CatalogGrant.objects.filter(peer=peer).count() == 1

    assert client.post(reverse("federation:revoke", args=[peer.pk, restricted.pk])).status_code == 302
    assert not CatalogGrant.objects.exists()
    assert "Beta may no longer read Partners" in page(client.get(url))


# ---------------------------------------------------------------- subscribing

def test_the_peer_page_asks_for_the_subscribe_form_of_an_active_peer_only(client_for, admin_user, me, peer):
    client = client_for(admin_user)
    subscribe = reverse("federation:subscribe", args=[peer.pk])
    assert f'hx-get="{subscribe}" hx-trigger="load"' in page(client.get(reverse("federation:peer", args=[peer.pk])))
    Peer.objects.filter(pk=peer.pk).update(status=PeerStatus.INACTIVE)
    assert f'hx-get="{subscribe}"' not in page(client.get(reverse("federation:peer", args=[peer.pk])))


def test_the_subscribe_form_says_so_when_the_peer_cannot_be_reached(client_for, admin_user, me, peer):
    client = client_for(admin_user)
    url = reverse("federation:subscribe", args=[peer.pk])
    part = client.get(url, HTTP_HX_REQUEST="true")
    assert part.status_code == 200 and page(part).lstrip().startswith('<div id="subscribe-slot">')
    assert "Beta&#x27;s catalogs could not be read: Beta cannot be reached at https://127.0.0.1:" in page(part)
    assert "<select" not in page(part)
    whole = client.get(url)
    assert "<h1>Subscribe to a catalog of Beta</h1>" in page(whole) and "cannot be reached" in page(whole)
    posted = client.post(url, {"catalog": str(uuid.uuid4()), "interval_seconds": 3600, "on_withdrawal": "hide",
                               "owner": admin_user.username})
    assert posted.status_code == 400 and "cannot be reached" in page(posted)
    assert not Subscription.objects.exists()


def test_the_subscribe_form_without_an_identity_says_how_to_make_one(client_for, admin_user, no_identity, peer):
    html = page(client_for(admin_user).get(reverse("federation:subscribe", args=[peer.pk]), HTTP_HX_REQUEST="true"))
    assert "catalogs could not be read" in html and "federation_identity --create" in html


def test_the_subscribe_form_lists_the_peers_catalogs_and_subscribes(client_for, admin_user, owner, me, peer,
                                                                   monkeypatch):
    """The peer's answer is replaced here (no peer answers in these tests): what the form does with it."""
    taken, offered = uuid.uuid4(), uuid.uuid4()
    Subscription.objects.create(peer=peer, catalog_id=taken, catalog_name="Old", owner=admin_user)
    listed = [{"catalogId": str(taken), "name": "Old", "accessTypeCode": "PB"},
              {"catalogId": str(offered), "name": "Shared models", "accessTypeCode": "RS"}]
    monkeypatch.setattr("federation.client.PeerClient.catalogs", lambda self: listed)
    client = client_for(admin_user)
    url = reverse("federation:subscribe", args=[peer.pk])
    html = page(client.get(url, HTTP_HX_REQUEST="true"))
    assert f'<option value="{offered}">Shared models (restricted)</option>' in html and str(taken) not in html
    assert f'value="{admin_user.username}"' in html  # the owner defaults to the admin

    refused = client.post(url, {"catalog": str(offered), "interval_seconds": 30, "on_withdrawal": "keep",
                                "owner": "nobody"})
    assert refused.status_code == 400 and "At least 60 seconds" in page(refused) and "No active user" in page(refused)
    response = client.post(url, {"catalog": str(offered), "interval_seconds": 600, "on_withdrawal": "keep",
                                 "owner": owner.username})
    made = Subscription.objects.get(catalog_id=offered)
    assert response.url == reverse("federation:subscription", args=[made.pk])
    assert (made.catalog_name, made.owner, made.interval_seconds, made.on_withdrawal) == (
        "Shared models", owner, 600, WithdrawalPolicy.KEEP)


# ---------------------------------------------------------------- a subscription and its runs

def test_the_subscription_page_shows_runs_and_what_still_fails(client_for, admin_user, me, subscription, run):
    SyncRun.objects.filter(pk=run.pk).update(status="succeeded", started=timezone.now(), finished=timezone.now(),
                                             summary={"imported": 2, "failed": 1}, bytes_fetched=2048,
                                             bytes_reused=1024)
    SyncItem.objects.create(subscription=subscription, solution_id=uuid.uuid4(), revision_id=uuid.uuid4(),
                            change="published", name="Iris", version="1.0", status=ItemStatus.FAILED, attempts=2,
                            error="the peer's bytes do not match the signed manifest")
    SyncItem.objects.create(subscription=subscription, solution_id=uuid.uuid4(), revision_id=uuid.uuid4(),
                            change="published", name="Done", version="2.0", status=ItemStatus.DONE)
    html = page(client_for(admin_user).get(reverse("federation:subscription", args=[subscription.pk])))
    assert "2 imported" in html and "1 failed" in html and "2.0\xa0KB / 1.0\xa0KB" in html
    assert reverse("federation:run", args=[run.pk]) in html
    assert "Iris" in html and "the peer&#x27;s bytes do not match the signed manifest" in html and ">2<" in html
    assert ">Done<" not in html
    assert ">Run now<" in html and ">Dry run<" in html and ">Unsubscribe<" in html


def test_run_now_and_dry_run_make_a_run_and_send_it(client_for, admin_user, me, subscription, sent):
    client = client_for(admin_user)
    url = reverse("federation:run-now", args=[subscription.pk])
    response = sent(lambda: client.post(url))
    run = SyncRun.objects.get(subscription=subscription)
    assert response.url == reverse("federation:run", args=[run.pk])
    assert (run.status, run.dry_run, run.trigger, run.requested_by) == ("pending", False, Trigger.MANUAL, admin_user)
    assert sent.tasks == [(RUN_TASK, (str(run.pk),))]
    assert "Run started." in page(client.get(response.url))

    again = sent(lambda: client.post(url))
    assert again.url == response.url and SyncRun.objects.count() == 1 and len(sent.tasks) == 1
    assert "already going" in page(client.get(again.url))

    dry = sent(lambda: client.post(url, {"dry_run": "1"}))
    dry_run = SyncRun.objects.get(dry_run=True)
    assert dry.url == reverse("federation:run", args=[dry_run.pk])
    assert sent.tasks[-1] == (RUN_TASK, (str(dry_run.pk),))
    assert "changes nothing" in page(client.get(dry.url))


def test_subscription_settings_are_checked_and_saved(client_for, admin_user, me, subscription):
    client = client_for(admin_user)
    url = reverse("federation:subscription-edit", args=[subscription.pk])
    refused = client.post(url, {"interval_seconds": 59, "on_withdrawal": "hide", "enabled": "on"})
    assert refused.status_code == 400 and "At least 60 seconds, or 0 to run only on demand." in page(refused)
    assert client.post(url, {"interval_seconds": 0, "on_withdrawal": "keep"}).status_code == 302
    subscription.refresh_from_db()
    assert (subscription.interval_seconds, subscription.on_withdrawal, subscription.enabled) == (0, "keep", False)


def test_unsubscribing_keeps_the_peer(client_for, admin_user, me, peer, subscription):
    response = client_for(admin_user).post(reverse("federation:unsubscribe", args=[subscription.pk]))
    assert response.url == reverse("federation:peer", args=[peer.pk])
    assert not Subscription.objects.exists() and Peer.objects.filter(pk=peer.pk).exists()


def test_the_run_page_follows_a_run_until_it_is_done(client_for, admin_user, me, run):
    client = client_for(admin_user)
    live = reverse("federation:run-live", args=[run.pk])
    html = page(client.get(reverse("federation:run", args=[run.pk])))
    assert f'hx-get="{live}" hx-trigger="every 2s"' in html and "waiting for a worker" in html

    SyncResult.objects.create(run=run, revision_id=uuid.uuid4(), name="Iris", version="1.0",
                              outcome=ItemOutcome.IMPORTED, bytes_fetched=4096, seconds=1.5)
    SyncResult.objects.create(run=run, revision_id=uuid.uuid4(), name="Bad", version="0.1",
                              outcome=ItemOutcome.REFUSED, message="the signature does not verify")
    SyncRun.objects.filter(pk=run.pk).update(status="failed", error="Beta cannot be reached", log="2 items",
                                             started=timezone.now(), finished=timezone.now())
    part = page(client.get(live, HTTP_HX_REQUEST="true"))
    assert part.lstrip().startswith('<div id="run-live"') and "hx-trigger" not in part
    assert "Beta cannot be reached" in part and "2 items" in part
    assert "Iris" in part and ">Imported<" in part and "4.0\xa0KB" in part and "1.5" in part
    assert "the signature does not verify" in part and ">Refused<" in part


# ---------------------------------------------------------------- no key, anywhere

def test_no_page_ever_shows_a_private_key(client_for, admin_user, me, peer, subscription, run, restricted):
    CatalogGrant.objects.create(peer=peer, catalog=restricted)
    client = client_for(admin_user)
    for url in page_urls(peer, subscription, run):
        assert KEY_MARK not in page(client.get(url)), url
    ping = client.post(reverse("federation:peer-ping", args=[peer.pk]), HTTP_HX_REQUEST="true")
    assert KEY_MARK not in page(ping) and KEY_MARK not in ping["HX-Trigger"]


# ---------------------------------------------------------------- the model page of an imported model

def imported_revision(owner, peer, **origin):
    revision = RevisionFactory(solution=SolutionFactory(owner=owner, name="Iris from Beta", imported_from=peer.name))
    RevisionOrigin.objects.create(
        revision=revision, manifest={}, signature={}, origin_name="gamma.test", origin_instance=uuid.uuid4(),
        signer_sha256="0" * 64, signature_status=SignatureStatus.VERIFIED, peer=peer, **origin)
    return revision


def test_the_model_page_says_where_an_imported_model_comes_from(client_for, owner, peer):
    revision = imported_revision(owner, peer)
    html = page(client_for(owner).get(reverse("marketplace:model", args=[revision.solution.pk])))
    assert "From <strong>Beta</strong>" in html and "origin gamma.test" in html and "signature verified" in html
    assert "withdrawn at its origin" not in html

    RevisionOrigin.objects.filter(revision=revision).update(withdrawn_at=timezone.now(),
                                                            signature_status=SignatureStatus.UNKNOWN_SIGNER)
    html = page(client_for(owner).get(reverse("marketplace:model", args=[revision.solution.pk])))
    assert "withdrawn at its origin" in html and "signature valid, signer not known here" in html


def test_an_imported_model_offers_no_edit_of_its_details(client_for, owner, peer):
    revision = imported_revision(owner, peer)
    html = page(client_for(owner).get(reverse("marketplace:model", args=[revision.solution.pk])))
    assert "Read-only: imported from Beta" in html
    assert reverse("marketplace:model-edit", args=[revision.solution.pk]) not in html and "Save details" not in html
    assert ">Write one<" not in html


def test_a_model_made_here_has_no_origin_line_and_keeps_its_details_form(client_for, owner):
    revision = RevisionFactory(solution=SolutionFactory(owner=owner))
    RevisionOrigin.objects.create(revision=revision, manifest={}, signature={}, origin_name="portal-a.test",
                                  origin_instance=uuid.uuid4(), signer_sha256="0" * 64,
                                  signature_status=SignatureStatus.LOCAL)
    html = page(client_for(owner).get(reverse("marketplace:model", args=[revision.solution.pk])))
    assert "data-origin" not in html and "Read-only: imported" not in html and "Save details" in html
