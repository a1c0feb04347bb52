"""Licensing's pages (licensing.views) and the licence part of the model page: each page for its
persona (the licensor, another user, an anonymous visitor), a request declined with a reason, asked
again and approved, then the download it allows; what a non-licensor is refused (403); click-through
acceptance of the text shown; grants and revocation; usage and its CSV; the offer's settings."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from acumos_portal.accounts import services as accounts
from acumos_portal.accounts.choices import Role
from licensing import profiles, services
from licensing.choices import AgreementStatus, OfferMode, RequestStatus
from licensing.models import AccessRequest, Agreement, LicenceProfile
from marketplace import storage
from marketplace.choices import ArtifactKind
from marketplace.models import Artifact, Revision

from ..factories import RevisionFactory, SolutionFactory, UserFactory, published_revision

pytestmark = pytest.mark.django_db

SPDX = "LicenseRef-Acme-Proprietary"
TEXT = "Acme Model Licence\n\nYou may use this model only under an agreement with Acme.\n"
DECLINE_REASON = "Tell us which company you work for."
PAYMENT_URL = "https://shop.example.com/gated-iris"


def licence_file(text: str = TEXT, *, rtu: bool = True) -> dict:
    return {"keyword": "Acme-Proprietary", "licenseName": "Acme Model Licence", "spdx": SPDX,
            "licenseText": text, "rtuRequired": rtu, "copyright": {"year": 2025, "company": "Acme"}}


def gated_revision(owner, catalog, *, name: str = "Gated Iris", text: str = TEXT) -> Revision:
    """A public, ready revision whose license.json needs an agreement (rtuRequired), noted by licensing as
    onboarding would; with a stored model file, so that its bundle downloads."""
    revision = published_revision(catalog, owner=owner, name=name)
    for kind, name_, content in ((ArtifactKind.LICENCE, "license.json", json.dumps(licence_file(text))),
                                 (ArtifactKind.MODEL, "modelpackage.zip", "model bytes")):
        blob, _ = storage.store_text(content)
        Artifact.objects.create(revision=revision, kind=kind, name=name_, blob=blob)
    services.note_profile(revision)
    return revision


@pytest.fixture
def gated(owner, catalogs) -> Revision:
    return gated_revision(owner, catalogs["public"])


def solution_url(revision) -> str:
    return reverse("licensing:solution", args=[revision.solution_id])


def model_url(revision) -> str:
    return reverse("marketplace:model", args=[revision.solution_id])


def bundle_url(revision) -> str:
    return reverse("marketplace:bundle-download", args=[revision.pk])


def state_of(client, revision) -> str:
    response = client.get(solution_url(revision))
    assert response.status_code == 200
    return response.context["state"].step


def flashed(response) -> list[str]:
    return [str(message) for message in response.context["messages"]] if response.context else []


def ask(client, revision, message: str = "For a flower shop's sorting line.") -> None:
    response = client.post(reverse("licensing:request", args=[revision.solution_id]), {"message": message})
    assert response.status_code == 302, response.content


def pending_request(revision, user) -> AccessRequest:
    return AccessRequest.objects.get(solution=revision.solution, requester=user, status=RequestStatus.PENDING)


# ---------------------------------------------------------------- the licence page, per persona

def test_anyone_reads_the_licence_and_an_anonymous_visitor_is_asked_to_sign_in(client_for, gated):
    response = client_for(None).get(solution_url(gated))

    assert response.status_code == 200
    page = response.content.decode()
    profile = LicenceProfile.objects.get(revision=gated)
    assert SPDX in page and "Acme Model Licence" in page and "only under an agreement with Acme" in page
    assert f"sha256 {profile.text_sha256}" in page and "Needs an agreement" in page
    assert response.context["state"].step == "sign_in"
    assert f"{reverse('accounts:login')}?next={solution_url(gated)}" in page
    assert "request_form" not in response.context


def test_the_owner_is_told_they_own_it_and_where_its_agreements_are(client_for, owner, gated):
    response = client_for(owner).get(solution_url(gated))

    assert response.context["state"].step == "owner"
    assert f"{reverse('licensing:agreements')}?solution={gated.solution_id}" in response.content.decode()
    assert reverse("licensing:offer", args=[gated.solution_id]) in response.content.decode()


def test_another_user_is_offered_the_request_form_with_the_offers_questions(client_for, owner, other_user, gated):
    services.set_offer(owner, gated.solution, mode=OfferMode.REQUEST, request_prompt="Say who you are.",
                       request_fields=[{"name": "company", "label": "Company", "type": "text", "required": True}])
    client = client_for(other_user)

    response = client.get(solution_url(gated))
    assert response.context["state"].step == "request"
    assert "Say who you are." in response.content.decode()
    assert "answer_company" in response.context["request_form"].fields

    refused = client.post(reverse("licensing:request", args=[gated.solution_id]), {"message": "hi"})
    assert refused.status_code == 400 and refused.context["request_form"].errors["answer_company"]
    assert not AccessRequest.objects.exists()

    ask_ok = client.post(reverse("licensing:request", args=[gated.solution_id]),
                         {"message": "hi", "answer_company": "Flowers Ltd"})
    assert ask_ok.status_code == 302
    assert pending_request(gated, other_user).answers == {"company": "Flowers Ltd"}


def test_a_model_the_user_may_not_see_has_no_licence_page(client_for, other_user, owner):
    hidden = RevisionFactory(solution=SolutionFactory(owner=owner))  # private: published nowhere
    assert client_for(other_user).get(solution_url(hidden)).status_code == 404
    assert client_for(owner).get(solution_url(hidden)).status_code == 200


# ---------------------------------------------------------------- request, decline, request again, approve

def test_a_request_declined_with_a_reason_asked_again_and_approved_lets_the_requester_download(
        client_for, owner, other_user, gated):
    requester, licensor = client_for(other_user), client_for(owner)
    assert requester.get(bundle_url(gated)).status_code == 403  # no agreement yet

    ask(requester, gated)
    assert state_of(requester, gated) == "pending"
    page = requester.get(solution_url(gated)).content.decode()
    assert "Your request of <time datetime=" in page and f">{timezone.now():%-d %B %Y}</time> is pending" in page

    queue = licensor.get(reverse("licensing:requests"))
    assert queue.status_code == 200 and [r.requester for r in queue.context["pending"]] == [other_user]
    first = pending_request(gated, other_user)
    declined = licensor.post(reverse("licensing:decline", args=[first.pk]), {"reason": DECLINE_REASON}, follow=True)
    assert "Declined: other is told why and may ask again." in flashed(declined)

    response = requester.get(solution_url(gated))
    assert response.context["state"].step == "declined"
    assert response.context["state"].line == f"Declined: {DECLINE_REASON} You may request again."
    assert DECLINE_REASON in response.content.decode() and "Request again" in response.content.decode()

    ask(requester, gated, "I work for Flowers Ltd.")
    queue = licensor.get(reverse("licensing:requests"))
    second = queue.context["pending"][0]
    assert [r.pk for r in second.earlier] == [first.pk]  # the licensor sees the declined one beside it
    assert DECLINE_REASON in queue.content.decode()

    terms = {"download_kind": "permit", "download_count": "2", "deploy_kind": "permit", "deploy_live": "1",
             "predict_kind": "", "export_kind": "prohibit", "days": "30", "reason": "Welcome."}
    approved = licensor.post(reverse("licensing:approve", args=[second.pk]), terms, follow=True)
    assert "Approved: other may use Gated Iris and is told." in flashed(approved)

    agreement = Agreement.objects.get(solution=gated.solution, assignee_user=other_user)
    rules = {rule.action: (rule.kind, rule.count_limit, rule.live_limit) for rule in agreement.rules.all()}
    assert rules == {"download": ("permit", 2, None), "deploy": ("permit", None, 1), "export": ("prohibit", None, None)}
    assert state_of(requester, gated) == "entitled"
    assert "2 of 2 downloads left" in requester.get(solution_url(gated)).context["state"].line

    download = requester.get(bundle_url(gated))
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    assert "1 of 2 downloads left" in requester.get(solution_url(gated)).context["state"].line


def test_a_decline_without_a_reason_is_refused_and_the_request_stays_pending(client_for, owner, other_user, gated):
    ask(client_for(other_user), gated)
    found = pending_request(gated, other_user)

    response = client_for(owner).post(reverse("licensing:decline", args=[found.pk]), {"reason": "  "}, follow=True)

    assert any("say why" in text.lower() for text in flashed(response))
    found.refresh_from_db()
    assert found.status == RequestStatus.PENDING


def test_the_requester_withdraws_a_pending_request_from_the_licence_page(client_for, other_user, gated):
    client = client_for(other_user)
    ask(client, gated)
    found = pending_request(gated, other_user)

    response = client.post(reverse("licensing:withdraw", args=[found.pk]), {"next": solution_url(gated)})

    assert response.status_code == 302 and response["Location"] == solution_url(gated)
    found.refresh_from_db()
    assert found.status == RequestStatus.WITHDRAWN
    assert state_of(client, gated) == "request"


# ---------------------------------------------------------------- who may do what

@pytest.mark.parametrize("page", ["licensing:requests", "licensing:agreements", "licensing:usage", "licensing:mine"])
def test_anonymous_visitors_are_sent_to_sign_in(client_for, page):
    response = client_for(None).get(reverse(page))
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))


@pytest.mark.parametrize("page", ["licensing:requests", "licensing:agreements", "licensing:usage"])
def test_the_licensor_pages_answer_403_to_whoever_licenses_nothing(client_for, owner, other_user, gated, page):
    assert client_for(owner).get(reverse(page)).status_code == 200
    response = client_for(other_user).get(reverse(page))
    assert response.status_code == 403 and "you own none" in response.content.decode()


def test_a_non_licensor_cannot_approve_decline_revoke_or_set_the_offer(client_for, owner, other_user, gated):
    requester = client_for(other_user)
    ask(requester, gated)
    found = pending_request(gated, other_user)
    agreement = services.grant(owner, gated.solution, services.Assignee("user", user=UserFactory(username="third")),
                               services.parse_terms(services.DEFAULT_TERMS))

    assert requester.post(reverse("licensing:approve", args=[found.pk]), {"download_kind": "permit"}).status_code == 403
    assert requester.post(reverse("licensing:decline", args=[found.pk]), {"reason": "no"}).status_code == 403
    assert requester.post(reverse("licensing:revoke", args=[agreement.pk]), {"reason": "no"}).status_code == 403
    assert requester.get(reverse("licensing:offer", args=[gated.solution_id])).status_code == 403
    found.refresh_from_db()
    agreement.refresh_from_db()
    assert found.status == RequestStatus.PENDING and agreement.status == AgreementStatus.ACTIVE


def test_a_licensor_of_another_model_may_not_decide_this_ones_requests(client_for, owner, other_user, gated,
                                                                       catalogs):
    stranger = UserFactory(username="stranger")
    gated_revision(stranger, catalogs["public"], name="Stranger's model")
    ask(client_for(other_user), gated)
    found = pending_request(gated, other_user)

    response = client_for(stranger).post(reverse("licensing:approve", args=[found.pk]), {"download_kind": "permit"})

    assert response.status_code == 404
    assert client_for(stranger).get(reverse("licensing:offer", args=[gated.solution_id])).status_code == 403


def test_the_forms_need_their_csrf_token(owner, gated):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post(reverse("licensing:grant"), {"solution": gated.solution_id})
    assert response.status_code == 403 and not Agreement.objects.exists()


# ---------------------------------------------------------------- click-through and payment

def test_a_click_through_accepts_the_text_shown_and_a_changed_text_is_read_again(client_for, owner, other_user, gated):
    services.set_offer(owner, gated.solution, mode=OfferMode.CLICK_THROUGH)
    client = client_for(other_user)
    response = client.get(solution_url(gated))
    assert response.context["state"].step == "accept"
    shown = response.context["accept_form"].initial
    accept_url = reverse("licensing:accept", args=[gated.solution_id])

    stale = client.post(accept_url, {"revision": gated.pk, "text_sha256": profiles.text_sha256("an older text")})
    assert stale.status_code == 409
    assert "The licence text changed since this page showed it" in stale.content.decode()
    assert not Agreement.objects.filter(assignee_user=other_user).exists()

    accepted = client.post(accept_url, {"revision": shown["revision"], "text_sha256": shown["text_sha256"]},
                           follow=True)
    assert "You accepted the licence of Gated Iris" in " ".join(flashed(accepted))
    assert accepted.context["state"].step == "entitled"
    assert client.get(bundle_url(gated)).status_code == 200


def test_a_sold_model_offers_to_buy_access(client_for, owner, other_user, gated):
    services.set_offer(owner, gated.solution, mode=OfferMode.REQUEST, payment_required=True, payment_url=PAYMENT_URL)

    state = client_for(other_user).get(solution_url(gated)).context["state"]

    assert state.step == "buy" and state.next_url == PAYMENT_URL and state.decision.status == 402
    assert client_for(other_user).get(bundle_url(gated)).status_code == 402


# ---------------------------------------------------------------- agreements: grant and revoke

def test_the_licensor_grants_from_the_form_and_sees_what_is_left(client_for, owner, other_user, gated):
    client = client_for(owner)
    form = {"solution": gated.solution_id, "assignee_kind": "user", "assignee": "other", "revision": "",
            "ends": "", "download_kind": "permit", "download_count": "5", "days": "10"}

    response = client.post(reverse("licensing:grant"), form)

    assert response.status_code == 302
    agreement = Agreement.objects.get(assignee_user=other_user)
    assert agreement.ends is not None and (agreement.ends - timezone.now()).days in (9, 10)
    client_for(other_user).get(bundle_url(gated))
    page = client.get(reverse("licensing:agreements")).content.decode()
    assert "4 of 5 left" in page and "Granted by the licensor" in page
    mine = client_for(other_user).get(reverse("licensing:mine"))
    assert mine.status_code == 200 and "4 of 5 left" in mine.content.decode()


def test_a_grant_to_nobody_known_is_refused_under_its_field(client_for, owner, gated):
    form = {"solution": gated.solution_id, "assignee_kind": "user", "assignee": "nobody", "download_kind": "permit"}

    response = client_for(owner).post(reverse("licensing:grant"), form)

    assert response.status_code == 400
    assert response.context["grant_form"].errors["assignee"] == ["no user is called 'nobody'"]


def test_a_grant_with_no_rule_is_refused_by_the_service(client_for, owner, other_user, gated):
    form = {"solution": gated.solution_id, "assignee_kind": "user", "assignee": "other"}

    response = client_for(owner).post(reverse("licensing:grant"), form)

    assert response.status_code == 400 and "at least one rule" in response.content.decode()
    assert not Agreement.objects.exists()


def test_the_licensor_revokes_with_a_reason_and_the_licensee_sees_it(client_for, owner, other_user, gated):
    agreement = services.grant(owner, gated.solution, services.Assignee("user", user=other_user),
                               services.parse_terms(services.DEFAULT_TERMS))
    client = client_for(owner)
    url = reverse("licensing:revoke", args=[agreement.pk])

    without = client.post(url, {"reason": ""}, follow=True)
    assert any("say why" in text.lower() for text in flashed(without))
    revoked = client.post(url, {"reason": "The trial is over."}, follow=True)
    assert "Revoked: other may no longer use Gated Iris." in flashed(revoked)

    agreement.refresh_from_db()
    assert agreement.status == AgreementStatus.REVOKED and agreement.revoke_reason == "The trial is over."
    mine = client_for(other_user).get(reverse("licensing:mine")).content.decode()
    assert "The trial is over." in mine
    assert client_for(other_user).get(bundle_url(gated)).status_code == 403


# ---------------------------------------------------------------- usage and its CSV

def test_usage_is_totalled_and_exported_as_csv(client_for, owner, other_user, gated):
    agreement = services.grant(owner, gated.solution, services.Assignee("user", user=other_user),
                               services.parse_terms(services.DEFAULT_TERMS))
    downloader = client_for(other_user)
    for _ in range(3):
        assert downloader.get(bundle_url(gated)).status_code == 200
    client_for(owner).get(bundle_url(gated))  # an owner's own use is not counted

    page = client_for(owner).get(reverse("licensing:usage"))
    assert page.status_code == 200
    assert [(row["user__username"], row["action"], row["quantity"]) for row in page.context["totals"]] == [
        ("other", "download", 3)]

    response = client_for(owner).get(reverse("licensing:usage"), {"format": "csv", "action": "download"})
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert response.streaming and "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows == [["day", "model_id", "model", "action", "agreement", "user", "peer", "quantity", "entries"],
                    [timezone.now().date().isoformat(), str(gated.solution_id), "Gated Iris", "download",
                     str(agreement.pk), "other", "", "3", "3"]]


def test_usage_filters_by_assignee_and_a_range_that_ends_before_it_starts_is_refused(client_for, owner, gated):
    client = client_for(owner)
    assert client.get(reverse("licensing:usage"), {"assignee": "nobody"}).context["totals"] == []
    response = client.get(reverse("licensing:usage"), {"start": "2025-02-01", "end": "2025-01-01"})
    assert response.status_code == 400 and response.context["form"].errors["end"]


# ---------------------------------------------------------------- the offer

def test_the_owner_sets_the_offer_and_a_bad_one_is_refused(client_for, owner, other_user, gated):
    client = client_for(owner)
    url = reverse("licensing:offer", args=[gated.solution_id])
    assert client.get(url).status_code == 200

    unpaid = client.post(url, {"mode": "request", "download_kind": "permit", "payment_required": "on"})
    assert unpaid.status_code == 400 and "https:// address" in unpaid.content.decode()

    saved = client.post(url, {"mode": "click_through", "download_kind": "permit", "download_count": "3",
                              "days": "7", "request_prompt": ""})
    assert saved.status_code == 302
    offer = services.offer_of(gated.solution)
    assert offer.mode == OfferMode.CLICK_THROUGH
    assert offer.terms == {"rules": [{"action": "download", "kind": "permit", "count_limit": 3, "live_limit": None}],
                           "days": 7}
    assert state_of(client_for(other_user), gated) == "accept"


# ---------------------------------------------------------------- the licensee's page and the way in

def test_my_licences_lists_requests_and_their_answers(client_for, owner, other_user, gated):
    requester = client_for(other_user)
    ask(requester, gated)
    services.decline(owner, pending_request(gated, other_user), DECLINE_REASON)

    page = requester.get(reverse("licensing:mine"))

    assert page.status_code == 200 and DECLINE_REASON in page.content.decode()
    assert [item.status for item in page.context["made"]] == [RequestStatus.DECLINED]


def test_the_licensing_link_in_the_user_menu_leads_licensors_to_requests_and_others_to_their_own_page(
        client_for, owner, other_user, gated):
    assert client_for(owner).get(reverse("licensing:home"))["Location"] == reverse("licensing:requests")
    assert client_for(other_user).get(reverse("licensing:home"))["Location"] == reverse("licensing:mine")
    menu = client_for(other_user).get(reverse("licensing:mine")).content.decode().split('class="menu__panel"')[1]
    assert f'href="{reverse("licensing:home")}" aria-current="page"' in menu.split("</div>")[0]
    assert reverse("licensing:home") not in client_for(None).get(model_url(gated)).content.decode().split("<main")[0]


# ---------------------------------------------------------------- the model page

def test_the_model_page_shows_the_licence_the_badge_and_the_viewers_state(client_for, owner, other_user, gated):
    response = client_for(other_user).get(model_url(gated))
    page = response.content.decode()

    assert response.status_code == 200
    assert f'<a href="{solution_url(gated)}?version={gated.pk}" data-spdx>{SPDX}</a>' in page
    assert "Needs an agreement" in page
    state = response.context["licence_state"]
    assert state.step == "request" and state.line in page and "Request access" in page
    assert response.context["download_off"] == "No agreement" and "data-download-off" in page
    assert reverse("marketplace:bundle-download", args=[gated.pk]) not in page

    owners = client_for(owner).get(model_url(gated))
    assert owners.context["licence_state"].step == "owner" and not owners.context["download_off"]
    assert "You own this model" in owners.content.decode()
    assert client_for(None).get(model_url(gated)).context["licence_state"].step == "sign_in"


def test_the_model_page_says_what_is_left_once_entitled_and_why_deploy_is_off(client_for, owner, gated):
    operator_user = UserFactory(username="ops")
    accounts.grant_role(operator_user, Role.OPERATOR)
    services.grant(owner, gated.solution, services.Assignee("user", user=operator_user),
                   services.parse_terms({"rules": [{"action": "download", "count_limit": 10}], "days": 30}))

    response = client_for(operator_user).get(model_url(gated))

    assert response.context["licence_state"].line.startswith("10 of 10 downloads left, until ")
    assert not response.context["download_off"]
    assert response.context["can_deploy"] and response.context["deploy_off"] == "No agreement"
    assert "data-deploy-off" in response.content.decode()


def test_an_open_licence_asks_the_policy_nothing_on_the_model_page(client_for, other_user, owner, catalogs):
    revision = published_revision(catalogs["public"], owner=owner, name="Open Iris")
    LicenceProfile.objects.create(revision=revision, spdx="MIT", spdx_ids=" MIT ", rtu_required=False)

    response = client_for(other_user).get(model_url(revision))

    assert response.context["licence_state"] is None and not response.context["download_off"]
    assert 'data-spdx>MIT</a>' in response.content.decode() and "Needs an agreement" not in response.content.decode()
