"""/api/v1/licensing/: requests and their decisions from both sides, click-through acceptance, grants,
revocation, offers, the access dry run and usage (JSON and CSV), with who may do each."""

from __future__ import annotations

import csv
import io

import pytest
from rest_framework.test import APIClient

from licensing import policy
from licensing.choices import Action, OfferMode, RequestStatus
from licensing.models import Acceptance, AccessRequest, Agreement, Offer, Rule
from tests.factories import agreement_for

pytestmark = pytest.mark.django_db

API = "/api/v1/licensing"


@pytest.fixture
def api():
    def make(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return make


def ask(api, user, revision, message="research use", **extra):
    return api(user).post(f"{API}/access-requests", {"solution": str(revision.solution_id), "message": message,
                                                     **extra}, format="json")


def test_request_decline_with_reason_request_again_and_approve(api, rtu_revision, owner, other_user):
    first = ask(api, other_user, rtu_revision)
    assert first.status_code == 201, first.content
    again = ask(api, other_user, rtu_revision)
    assert again.status_code == 409 and again.json()["error"]["details"]["request"] == first.json()["id"]

    no_reason = api(owner).post(f"{API}/access-requests/{first.json()['id']}/decline", {}, format="json")
    assert no_reason.status_code == 400
    declined = api(owner).post(f"{API}/access-requests/{first.json()['id']}/decline",
                               {"reason": "say which product"}, format="json")
    assert declined.json()["status"] == RequestStatus.DECLINED
    denial = policy.decide(policy.Who.of(other_user), rtu_revision, Action.DOWNLOAD)
    assert "say which product" in denial.message

    second = ask(api, other_user, rtu_revision, message="for FraudBuster 2")
    assert second.status_code == 201
    listed = api(owner).get(f"{API}/access-requests", {"role": "licensor"}).json()
    assert [r["status"] for r in listed["results"]] == ["pending", "declined"]  # pending first

    approved = api(owner).post(f"{API}/access-requests/{second.json()['id']}/approve",
                               {"terms": {"rules": [{"action": "download", "count_limit": 2}], "days": 30}},
                               format="json")
    assert approved.status_code == 200, approved.content
    assert approved.json()["rules"][0]["count_limit"] == 2
    assert policy.decide(policy.Who.of(other_user), rtu_revision, Action.DOWNLOAD).allowed
    assert not policy.decide(policy.Who.of(other_user), rtu_revision, Action.DEPLOY).allowed  # not in the terms


def test_only_the_licensor_decides_and_only_the_requester_withdraws(api, rtu_revision, other_user, publisher,
                                                                     admin_user):
    made = ask(api, other_user, rtu_revision).json()
    for stranger in (publisher, other_user):
        answer = api(stranger).post(f"{API}/access-requests/{made['id']}/approve", {}, format="json")
        assert answer.status_code in (403, 404)
    assert api(admin_user).post(f"{API}/access-requests/{made['id']}/approve", {}, format="json").status_code in (
        403, 404)  # an admin is not the licensor
    assert api(publisher).post(f"{API}/access-requests/{made['id']}/withdraw").status_code == 404
    withdrawn = api(other_user).post(f"{API}/access-requests/{made['id']}/withdraw")
    assert withdrawn.json()["status"] == RequestStatus.WITHDRAWN
    assert ask(api, other_user, rtu_revision).status_code == 201  # may ask again


def test_approving_twice_is_a_conflict(api, rtu_revision, owner, other_user):
    made = ask(api, other_user, rtu_revision).json()
    assert api(owner).post(f"{API}/access-requests/{made['id']}/approve", {}, format="json").status_code == 200
    assert api(owner).post(f"{API}/access-requests/{made['id']}/approve", {}, format="json").status_code == 409
    assert Agreement.objects.count() == 1


def test_an_owner_cannot_request_their_own_model_and_anonymous_is_401(api, rtu_revision, owner):
    assert ask(api, owner, rtu_revision).status_code == 400
    assert ask(api, None, rtu_revision).status_code in (401, 403)


def test_a_request_mode_off_is_refused(api, rtu_revision, other_user):
    Offer.objects.create(solution=rtu_revision.solution, mode=OfferMode.GRANT_ONLY)
    answer = ask(api, other_user, rtu_revision)
    assert answer.status_code == 400 and "does not take requests" in str(answer.json())


def test_click_through_needs_the_hash_of_the_text_shown(api, rtu_revision, other_user):
    Offer.objects.create(solution=rtu_revision.solution, mode=OfferMode.CLICK_THROUGH,
                         terms={"rules": [{"action": "download"}], "days": 7})
    licence = api(other_user).get(f"{API}/revisions/{rtu_revision.pk}/licence").json()
    assert licence["text"] and len(licence["text_sha256"]) == 64
    url = f"{API}/solutions/{rtu_revision.solution_id}/accept"
    wrong = api(other_user).post(url, {"revision": str(rtu_revision.pk), "text_sha256": "0" * 64}, format="json")
    assert wrong.status_code == 409 and wrong.json()["error"]["details"]["text_sha256"] == licence["text_sha256"]
    assert not Acceptance.objects.exists()
    right = api(other_user).post(url, {"revision": str(rtu_revision.pk), "text_sha256": licence["text_sha256"]},
                                 format="json")
    assert right.status_code == 201, right.content
    acceptance = Acceptance.objects.get()
    assert (acceptance.user, acceptance.text_sha256) == (other_user, licence["text_sha256"])
    assert policy.decide(policy.Who.of(other_user), rtu_revision, Action.DOWNLOAD).allowed


def test_click_through_is_refused_when_the_licensor_does_not_offer_it(api, rtu_revision, other_user):
    licence = api(other_user).get(f"{API}/revisions/{rtu_revision.pk}/licence").json()
    answer = api(other_user).post(f"{API}/solutions/{rtu_revision.solution_id}/accept",
                                  {"revision": str(rtu_revision.pk), "text_sha256": licence["text_sha256"]},
                                  format="json")
    assert answer.status_code == 400


def test_grant_to_a_user_and_revoke(api, rtu_revision, owner, other_user):
    granted = api(owner).post(f"{API}/agreements", {
        "solution": str(rtu_revision.solution_id), "assignee": {"kind": "user", "name": other_user.username},
        "terms": {"rules": [{"action": "download", "count_limit": 10}, {"action": "export", "kind": "prohibit"}],
                  "days": 90}}, format="json")
    assert granted.status_code == 201, granted.content
    body = granted.json()
    assert body["assignee"] == other_user.username and body["ends"]
    held = api(other_user).get(f"{API}/agreements", {"role": "licensee"}).json()["results"]
    assert [a["id"] for a in held] == [body["id"]]
    assert api(other_user).post(f"{API}/agreements/{body['id']}/revoke", {}, format="json").status_code == 403
    revoked = api(owner).post(f"{API}/agreements/{body['id']}/revoke", {"reason": "breach"}, format="json")
    assert revoked.json()["status"] == "revoked"
    assert policy.decide(policy.Who.of(other_user), rtu_revision, Action.DOWNLOAD).code == "right_to_use_revoked"


@pytest.mark.parametrize(("terms", "field"), [
    ({"rules": []}, "terms"),
    ({"rules": [{"action": "fly"}]}, "rules[0]"),
    ({"rules": [{"action": "download", "count_limit": 0}]}, "count_limit"),
    ({"rules": [{"action": "download", "kind": "prohibit", "count_limit": 3}]}, "rules[0]"),
    ({"rules": [{"action": "download", "live_limit": 3}]}, "live_limit"),
    ({"rules": [{"action": "download"}], "days": 0}, "days"),
])
def test_bad_terms_are_refused_naming_the_field(api, rtu_revision, owner, other_user, terms, field):
    answer = api(owner).post(f"{API}/agreements", {
        "solution": str(rtu_revision.solution_id), "assignee": {"kind": "user", "name": other_user.username},
        "terms": terms}, format="json")
    assert answer.status_code == 400 and field in str(answer.json())
    assert not Agreement.objects.exists()


def test_only_owners_grant(api, rtu_revision, other_user, publisher):
    answer = api(publisher).post(f"{API}/agreements", {
        "solution": str(rtu_revision.solution_id), "assignee": {"kind": "user", "name": other_user.username},
        "terms": {"rules": [{"action": "download"}]}}, format="json")
    assert answer.status_code == 403
    assert not Agreement.objects.exists()


def test_an_unknown_assignee_is_named(api, rtu_revision, owner):
    answer = api(owner).post(f"{API}/agreements", {
        "solution": str(rtu_revision.solution_id), "assignee": {"kind": "organisation", "name": "Nobody Inc"},
        "terms": {"rules": [{"action": "download"}]}}, format="json")
    assert answer.status_code == 400 and "Nobody Inc" in str(answer.json())


def test_the_offer_is_read_by_anyone_who_sees_the_model_and_set_by_its_owners(api, rtu_revision, owner, other_user):
    url = f"{API}/offers/{rtu_revision.solution_id}"
    assert api(other_user).get(url).json()["mode"] == OfferMode.REQUEST
    assert api(other_user).put(url, {"mode": "click_through"}, format="json").status_code == 403
    no_https = api(owner).put(url, {"mode": "request", "payment_required": True, "payment_url": "http://x"},
                              format="json")
    assert no_https.status_code == 400
    assert api(owner).put(url, {"mode": "click_through"}, format="json").json()["mode"] == "click_through"


def test_the_access_dry_run_says_what_a_cli_needs_and_consumes_nothing(api, rtu_revision, other_user):
    agreement = agreement_for(rtu_revision.solution, user=other_user, rules=[{"action": "download", "count_limit": 3}])
    answer = api(other_user).get(f"{API}/revisions/{rtu_revision.pk}/access", {"action": "download"}).json()
    assert (answer["allowed"], answer["code"], answer["agreement"]) == (True, "entitled", str(agreement.pk))
    assert Rule.objects.get(agreement=agreement).count_used == 0
    denied = api(other_user).get(f"{API}/revisions/{rtu_revision.pk}/access", {"action": "deploy"}).json()
    assert (denied["allowed"], denied["status"]) == (False, 403)


def test_usage_for_the_licensor_as_json_and_csv_and_nothing_for_others(api, rtu_revision, owner, other_user):
    agreement_for(rtu_revision.solution, user=other_user)
    for _ in range(3):
        policy.authorize(policy.Who.of(other_user), rtu_revision, Action.DOWNLOAD, consume=1, kind="bundle")
    rows = api(owner).get(f"{API}/usage").json()
    assert [(r["user"], r["action"], r["quantity"], r["entries"]) for r in rows] == [
        (other_user.username, "download", 3, 3)]
    assert api(other_user).get(f"{API}/usage").json() == []
    response = api(owner).get(f"{API}/usage", {"format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert table[0][:4] == ["day", "model_id", "model", "action"] and table[1][7] == "3"


def test_pending_requests_are_one_per_user_and_model(api, rtu_revision, other_user):
    assert ask(api, other_user, rtu_revision).status_code == 201
    assert AccessRequest.objects.filter(status=RequestStatus.PENDING).count() == 1


def test_relicense_makes_a_new_revision_and_refuses_a_profile_off_the_schema(api, owner, other_user, rtu_revision):
    from licensing import templates
    from marketplace.models import Revision

    profile = templates.render("mit", year=2026, company="Acme")
    url = f"{API}/revisions/{rtu_revision.pk}/relicense"
    assert api(other_user).post(url, {"version": "9.0.0", "profile": profile}, format="json").status_code == 403
    broken = {k: v for k, v in profile.items() if k != "copyright"}
    refused = api(owner).post(url, {"version": "9.0.0", "profile": broken}, format="json")
    assert refused.status_code == 400 and "copyright" in str(refused.json())
    made = api(owner).post(url, {"version": "9.0.0", "profile": profile}, format="json")
    assert made.status_code == 201, made.content
    assert made.json()["licence"]["spdx"] == "MIT" and made.json()["licence"]["rtu_required"] is False
    assert Revision.objects.filter(solution=rtu_revision.solution, version="9.0.0").exists()
