"""The admins' federation API (/api/v1/federation/): every endpoint for admins only (403 for anyone
else signed in, by session or API token; 401 anonymous), peers registered, changed, pinged, activated,
deactivated, declined and deleted, grants, subscriptions made with an explicit catalog id and changed,
runs started by hand (a SyncRun row, its task sent once the request commits) and read with their
results, the one error shape, and never a key in any answer."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from federation.choices import ItemOutcome, ItemStatus, PeerStatus, WithdrawalPolicy
from federation.models import CatalogGrant, Peer, Subscription, SyncItem, SyncResult, SyncRun
from tests.factories import CatalogFactory

from .pki import ThrowawayCA
from .test_pages import KEY_MARK, RUN_TASK

pytestmark = pytest.mark.django_db

API = "/api/v1/federation"
OTHERS = ("owner", "other_user", "publisher", "operator")


def new_peer(**fields) -> dict:
    return {"name": "Gamma", "api_url": "https://gamma.test:9443", "certificate": ThrowawayCA().issue("gamma.test").pem,
            **fields}


def error_of(response) -> dict:
    return response.json()["error"]


def calls(peer, subscription, run, restricted) -> list[tuple[str, str, dict | None, int]]:
    """(method, url, body, the admin's status) for every endpoint, in an order an admin can follow:
    the deletes last."""
    p, s = f"{API}/peers/{peer.pk}", f"{API}/subscriptions/{subscription.pk}"
    return [
        ("get", f"{API}/peers", None, 200),
        ("post", f"{API}/peers", new_peer(), 201),
        ("get", p, None, 200),
        ("patch", p, {"description": "partner"}, 200),
        ("post", f"{p}/ping", None, 200),
        ("post", f"{p}/deactivate", None, 200),
        ("post", f"{p}/decline", None, 200),
        ("post", f"{p}/activate", None, 200),
        ("get", f"{p}/grants", None, 200),
        ("post", f"{p}/grants", {"catalog": str(restricted.pk)}, 201),
        ("delete", f"{p}/grants/{restricted.pk}", None, 204),
        ("get", f"{API}/subscriptions", None, 200),
        ("post", f"{API}/subscriptions", {"peer": str(peer.pk), "catalog_id": str(uuid.uuid4())}, 201),
        ("get", s, None, 200),
        ("patch", s, {"enabled": False}, 200),
        ("post", f"{s}/run", {"dry_run": True}, 202),
        ("get", f"{API}/runs", None, 200),
        ("get", f"{API}/runs/{run.pk}", None, 200),
        ("delete", s, None, 204),
        ("delete", p, None, 204),
    ]


def send(client: Client, method: str, url: str, body: dict | None):
    if body is None:
        return getattr(client, method)(url)
    return getattr(client, method)(url, body, content_type="application/json")


# ---------------------------------------------------------------- who may call what

def test_admins_may_call_every_endpoint(client_for, admin_user, me, peer, subscription, run, restricted):
    client = client_for(admin_user)
    for method, url, body, expected in calls(peer, subscription, run, restricted):
        response = send(client, method, url, body)
        assert response.status_code == expected, (method, url, response.content)
        if response.content:
            assert KEY_MARK not in response.content.decode(), url


@pytest.mark.parametrize("name", OTHERS)
@pytest.mark.parametrize("by_token", [False, True], ids=["session", "token"])
def test_anyone_else_signed_in_is_refused_403_and_nothing_changes(request, client_for, api_token, name, by_token, me,
                                                                   peer, subscription, run, restricted, sent):
    user = request.getfixturevalue(name)
    client = Client(headers={"Authorization": f"Bearer {api_token(user)}"}) if by_token else client_for(user)
    for method, url, body, _ in calls(peer, subscription, run, restricted):
        response = sent(lambda method=method, url=url, body=body: send(client, method, url, body))
        assert response.status_code == 403, (method, url)
        assert error_of(response) == {"code": "permission_denied", "details": {},
                                      "message": "only an admin of this site manages federation"}
    peer.refresh_from_db()
    assert (peer.status, peer.description, peer.last_ping_at) == (PeerStatus.ACTIVE, "", None)
    assert Peer.objects.count() == 1 and Subscription.objects.count() == 1 and SyncRun.objects.count() == 1
    assert sent.tasks == []


def test_anonymous_callers_are_asked_to_authenticate(me, peer, subscription, run, restricted):
    for method, url, body, _ in calls(peer, subscription, run, restricted):
        response = send(Client(), method, url, body)
        assert response.status_code == 401 and error_of(response)["code"] == "not_authenticated", (method, url)


def test_the_schema_describes_the_federation_api(client_for):
    paths = client_for(None).get("/api/v1/schema/", headers={"Accept": "application/json"}).json()["paths"]
    for path in ("/api/v1/federation/peers", "/api/v1/federation/peers/{id}/ping",
                 "/api/v1/federation/peers/{id}/grants", "/api/v1/federation/peers/{id}/grants/{catalog_id}",
                 "/api/v1/federation/subscriptions/{id}/run", "/api/v1/federation/runs/{id}"):
        assert path in paths, sorted(p for p in paths if "federation" in p)


# ---------------------------------------------------------------- peers

def test_an_admin_registers_changes_and_deletes_a_peer(client_for, admin_user, me):
    client = client_for(admin_user)
    made = client.post(f"{API}/peers", new_peer(contact="ops@gamma.test"), content_type="application/json")
    assert made.status_code == 201
    body = made.json()
    assert (body["name"], body["subject"], body["status"], body["subscriptions"], body["granted_catalogs"]) == (
        "Gamma", "gamma.test", PeerStatus.ACTIVE, 0, [])
    assert body["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    url = f"{API}/peers/{body['id']}"

    changed = client.patch(url, {"api_url": "https://gamma.test:9444/", "contact": ""}, content_type="application/json")
    assert changed.status_code == 200
    assert (changed.json()["api_url"], changed.json()["contact"], changed.json()["name"]) == (
        "https://gamma.test:9444", "", "Gamma")
    blank = client.patch(url, {"subject": ""}, content_type="application/json")
    assert blank.status_code == 400 and "subject" in error_of(blank)["details"]
    assert client.get(f"{API}/peers?status=AC").json()["count"] == 1
    assert client.get(f"{API}/peers?status=RQ").json()["count"] == 0

    assert client.delete(url).status_code == 204
    assert not Peer.objects.exists()
    assert client.get(url).status_code == 404 and error_of(client.get(url))["message"] == "no such peer"


@pytest.mark.parametrize(("fields", "field", "sentence"), [
    ({"api_url": "http://gamma.test"}, "api_url", "must start with https://"),
    ({"certificate": "nothing"}, "certificate", "not a PEM certificate"),
    ({"certificate": "-----BEGIN PRIVATE KEY-----\nMIGHAgEA\n-----END PRIVATE KEY-----"}, "certificate",
     "this is a private key"),
    ({"certificate": ThrowawayCA().pem}, "subject", "give the subject CN"),
    ({"name": "Beta"}, "name", "registered already"),
])
def test_a_peer_the_services_refuse_answers_400_naming_the_field(client_for, admin_user, me, peer, fields, field,
                                                                 sentence):
    response = client_for(admin_user).post(f"{API}/peers", new_peer(**fields), content_type="application/json")
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid" and sentence in error["details"][field][0]
    assert KEY_MARK not in response.content.decode()
    assert Peer.objects.count() == 1


def test_activate_deactivate_and_decline(client_for, admin_user, me, ca):
    asking = Peer.objects.create(name="Zeta", subject="zeta.test", api_url="https://zeta.test", certificate=ca.pem,
                                 status=PeerStatus.REQUESTED, self_registered=True)
    client = client_for(admin_user)
    listed = client.get(f"{API}/peers").json()["results"]
    assert listed[0]["name"] == "Zeta" and listed[0]["self_registered"] is True
    for action, status in (("activate", "AC"), ("deactivate", "IN"), ("decline", "DC"), ("activate", "AC")):
        response = client.post(f"{API}/peers/{asking.pk}/{action}")
        assert response.status_code == 200 and response.json()["status"] == status
        asking.refresh_from_db()
        assert asking.status == status


def test_ping_answers_why_a_peer_cannot_be_reached(client_for, admin_user, me, peer):
    response = client_for(admin_user).post(f"{API}/peers/{peer.pk}/ping")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False and body["answer"] is None and "Beta cannot be reached at https://127.0.0.1:" in \
        body["message"]
    peer.refresh_from_db()
    assert peer.last_ping_ok is False


def test_ping_without_an_identity_says_how_to_make_one(client_for, admin_user, no_identity, peer):
    response = client_for(admin_user).post(f"{API}/peers/{peer.pk}/ping")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False and "federation_identity --create" in body["message"]
    peer.refresh_from_db()
    assert peer.last_ping_ok is False and "federation_identity" in peer.last_ping_message


# ---------------------------------------------------------------- grants

def test_grants_list_add_and_revoke_restricted_catalogs(client_for, admin_user, me, peer, restricted, catalogs):
    client = client_for(admin_user)
    url = f"{API}/peers/{peer.pk}/grants"
    assert client.get(url).json() == []
    made = client.post(url, {"catalog": str(restricted.pk)}, content_type="application/json")
    assert made.status_code == 201 and made.json()["catalog_name"] == "Partners"
    assert made.json()["granted_by"] == admin_user.username
    again = client.post(url, {"catalog": str(restricted.pk)}, content_type="application/json")
    assert again.status_code == 201 and CatalogGrant.objects.count() == 1  # one grant, however often asked
    assert [g["catalog"] for g in client.get(url).json()] == [str(restricted.pk)]
    assert client.get(f"{API}/peers/{peer.pk}").json()["granted_catalogs"] == [str(restricted.pk)]

    public = client.post(url, {"catalog": str(catalogs["public"].pk)}, content_type="application/json")
    assert public.status_code == 400 and "every active peer reads it" in error_of(public)["details"]["catalog"][0]
    unknown = client.post(url, {"catalog": str(uuid.uuid4())}, content_type="application/json")
    assert unknown.status_code == 400 and error_of(unknown)["details"]["catalog"] == ["no such catalog"]

    assert client.delete(f"{url}/{restricted.pk}").status_code == 204
    assert not CatalogGrant.objects.exists()
    assert client.delete(f"{url}/{uuid.uuid4()}").status_code == 404


# ---------------------------------------------------------------- subscriptions and runs

def test_a_subscription_made_with_an_explicit_catalog_id(client_for, admin_user, owner, me, peer):
    client = client_for(admin_user)
    catalog_id = str(uuid.uuid4())
    body = {"peer": str(peer.pk), "catalog_id": catalog_id, "catalog_name": "Beta models", "owner": owner.username,
            "interval_seconds": 600, "on_withdrawal": WithdrawalPolicy.KEEP}
    made = client.post(f"{API}/subscriptions", body, content_type="application/json")
    assert made.status_code == 201
    answer = made.json()
    assert (answer["peer_name"], answer["catalog_id"], answer["owner"], answer["interval_seconds"],
            answer["on_withdrawal"], answer["enabled"], answer["last_run"], answer["failing_items"]) == (
        "Beta", catalog_id, "owner", 600, "keep", True, None, [])

    twice = client.post(f"{API}/subscriptions", body, content_type="application/json")
    assert twice.status_code == 400 and "subscribes to that catalog" in error_of(twice)["details"]["catalog_id"][0]
    for wrong, field in (({"interval_seconds": 30}, "interval_seconds"), ({"owner": "nobody"}, "owner"),
                         ({"peer": str(uuid.uuid4())}, "peer"), ({"on_withdrawal": "burn"}, "on_withdrawal")):
        response = client.post(f"{API}/subscriptions", {**body, "catalog_id": str(uuid.uuid4()), **wrong},
                               content_type="application/json")
        assert response.status_code == 400 and field in error_of(response)["details"], wrong
    assert Subscription.objects.count() == 1

    mine = client.post(f"{API}/subscriptions", {"peer": str(peer.pk), "catalog_id": str(uuid.uuid4())},
                       content_type="application/json").json()
    assert (mine["owner"], mine["interval_seconds"], mine["on_withdrawal"]) == (admin_user.username, 3600, "hide")


def test_a_subscriptions_settings_change_and_nothing_else(client_for, admin_user, me, subscription):
    client = client_for(admin_user)
    url = f"{API}/subscriptions/{subscription.pk}"
    response = client.patch(url, {"interval_seconds": 0, "enabled": False, "catalog_id": str(uuid.uuid4())},
                            content_type="application/json")
    assert response.status_code == 200
    subscription.refresh_from_db()
    assert (subscription.interval_seconds, subscription.enabled, subscription.on_withdrawal) == (0, False, "hide")
    assert response.json()["catalog_id"] == str(subscription.catalog_id)  # where it imports from stays
    refused = client.patch(url, {"interval_seconds": 59}, content_type="application/json")
    assert refused.status_code == 400 and "at least 60 seconds" in error_of(refused)["details"]["interval_seconds"][0]
    assert client.delete(url).status_code == 204 and not Subscription.objects.exists()


def test_run_makes_a_run_sends_its_task_and_answers_the_one_going(client_for, admin_user, me, subscription, sent):
    client = client_for(admin_user)
    url = f"{API}/subscriptions/{subscription.pk}/run"
    first = sent(lambda: client.post(url, {}, content_type="application/json"))
    assert first.status_code == 202
    run = SyncRun.objects.get()
    assert first.json()["id"] == str(run.pk) and (first.json()["status"], first.json()["trigger"]) == (
        "pending", "manual")
    assert (run.dry_run, run.requested_by) == (False, admin_user)
    assert sent.tasks == [(RUN_TASK, (str(run.pk),))]

    again = sent(lambda: client.post(url, {}, content_type="application/json"))
    assert again.status_code == 202 and again.json()["id"] == str(run.pk) and len(sent.tasks) == 1
    dry = sent(lambda: client.post(url, {"dry_run": True}, content_type="application/json"))
    assert dry.json()["dry_run"] is True and dry.json()["id"] != str(run.pk)
    assert SyncRun.objects.count() == 2 and sent.tasks[-1] == (RUN_TASK, (dry.json()["id"],))
    latest = client.get(f"{API}/subscriptions/{subscription.pk}").json()["last_run"]
    assert latest["id"] == dry.json()["id"]


def test_a_run_answers_with_its_results_and_a_subscription_with_what_fails(client_for, admin_user, me,
                                                                            subscription, run):
    SyncResult.objects.create(run=run, revision_id=uuid.uuid4(), name="Iris", version="1.0",
                              outcome=ItemOutcome.IMPORTED, bytes_fetched=4096, seconds=1.5)
    SyncItem.objects.create(subscription=subscription, solution_id=uuid.uuid4(), revision_id=uuid.uuid4(),
                            change="published", name="Bad", version="0.1", status=ItemStatus.REFUSED, attempts=1,
                            error="the signature does not verify")
    client = client_for(admin_user)
    detail = client.get(f"{API}/runs/{run.pk}").json()
    [result] = detail["results"]
    assert (result["name"], result["outcome"], result["bytes_fetched"], result["seconds"]) == (
        "Iris", "imported", 4096, 1.5)
    listed = client.get(f"{API}/runs?subscription={subscription.pk}").json()
    assert [r["id"] for r in listed["results"]] == [str(run.pk)] and "results" not in listed["results"][0]
    assert client.get(f"{API}/runs?subscription={uuid.uuid4()}").status_code == 400  # not a subscription
    [failing] = client.get(f"{API}/subscriptions/{subscription.pk}").json()["failing_items"]
    assert (failing["name"], failing["status"], failing["error"]) == ("Bad", "refused", "the signature does not verify")
    assert client.get(f"{API}/runs/{uuid.uuid4()}").status_code == 404


def test_deleting_a_peer_takes_its_subscriptions(client_for, admin_user, me, peer, subscription):
    CatalogGrant.objects.create(peer=peer, catalog=CatalogFactory())
    assert client_for(admin_user).delete(f"{API}/peers/{peer.pk}").status_code == 204
    assert not Subscription.objects.exists() and not CatalogGrant.objects.exists()
