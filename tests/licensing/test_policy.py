"""licensing.policy.decide: the order of evaluation, who an agreement covers, and what each denial says."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from acumos_portal.accounts.models import Membership, Organisation
from licensing import policy
from licensing.choices import Action, AgreementStatus, Denial, OfferMode, RequestStatus
from licensing.models import AccessRequest, DeploymentGrant, Offer, Rule, UsageRecord
from marketplace import services as market_services
from tests.factories import RevisionFactory, agreement_for

pytestmark = pytest.mark.django_db

Who = policy.Who


def download(user, revision, consume=1):
    return policy.decide(Who.of(user), revision, Action.DOWNLOAD, consume=consume, kind="bundle")


def test_an_open_licence_needs_nothing_and_writes_nothing(open_revision, other_user):
    decision = download(other_user, open_revision)
    assert (decision.allowed, decision.code) == (True, "open")
    assert not UsageRecord.objects.exists()


def test_a_revision_with_no_licence_is_open(owner, other_user):
    assert download(other_user, RevisionFactory(solution__owner=owner)).code == "open"


def test_owners_and_co_owners_need_no_agreement(rtu_revision, owner, co_owner):
    market_services.share(owner, rtu_revision.solution, co_owner.username)
    assert download(owner, rtu_revision).code == "owner"
    assert download(co_owner, rtu_revision).code == "owner"
    assert not UsageRecord.objects.exists()


def test_a_site_admin_is_not_exempt(rtu_revision, admin_user):
    decision = download(admin_user, rtu_revision)
    assert (decision.allowed, decision.code, decision.status) == (False, Denial.AGREEMENT_NOT_FOUND, 403)


def test_an_imported_models_local_owner_is_not_exempt(rtu_revision):
    rtu_revision.solution.imported_from = "CN=peer.example"
    rtu_revision.solution.save()
    assert download(rtu_revision.solution.owner, rtu_revision).code == Denial.AGREEMENT_NOT_FOUND


def test_anonymous_is_told_to_sign_in(rtu_revision):
    decision = download(None, rtu_revision)
    assert decision.code == Denial.AGREEMENT_NOT_FOUND and "Sign in" in decision.message


def test_a_grant_allows_and_counts_one_use(rtu_revision, other_user):
    agreement = agreement_for(rtu_revision.solution, user=other_user,
                              rules=[{"action": "download", "count_limit": 3}])
    decision = download(other_user, rtu_revision)
    assert (decision.allowed, decision.code, decision.remaining) == (True, "entitled", 2)
    assert decision.agreement_id == agreement.pk
    assert Rule.objects.get(agreement=agreement).count_used == 1
    record = UsageRecord.objects.get()
    assert (record.user, record.action, record.kind, record.quantity) == (other_user, "download", "bundle", 1)


def test_a_dry_run_consumes_nothing(rtu_revision, other_user):
    agreement = agreement_for(rtu_revision.solution, user=other_user, rules=[{"action": "download", "count_limit": 1}])
    assert download(other_user, rtu_revision, consume=0).allowed
    assert Rule.objects.get(agreement=agreement).count_used == 0
    assert not UsageRecord.objects.exists()


def test_an_exhausted_count_is_refused_saying_so(rtu_revision, other_user):
    agreement_for(rtu_revision.solution, user=other_user, rules=[{"action": "download", "count_limit": 1}])
    assert download(other_user, rtu_revision).allowed
    decision = download(other_user, rtu_revision)
    assert (decision.code, decision.status) == (Denial.USAGE_EXHAUSTED, 403)
    assert "all 1 downloads" in decision.message
    assert UsageRecord.objects.count() == 1


def test_exhausted_with_a_paid_offer_is_402_with_where_to_buy(rtu_revision, other_user, owner):
    agreement_for(rtu_revision.solution, user=other_user,
                  rules=[{"action": "download", "count_limit": 1, "count_used": 1}])
    Offer.objects.create(solution=rtu_revision.solution, payment_required=True, payment_url="https://shop.example/x")
    decision = download(other_user, rtu_revision)
    assert (decision.code, decision.status) == (Denial.USAGE_EXHAUSTED, 402)
    assert decision.details["payment_url"] == "https://shop.example/x"


def test_no_agreement_with_a_paid_offer_is_payment_required(rtu_revision, other_user):
    Offer.objects.create(solution=rtu_revision.solution, payment_required=True, payment_url="https://shop.example/x")
    decision = download(other_user, rtu_revision)
    assert (decision.code, decision.status) == (Denial.PAYMENT_REQUIRED, 402)


def test_an_expired_agreement_says_when_it_ended(rtu_revision, other_user):
    ended = timezone.now() - dt.timedelta(days=1)
    agreement_for(rtu_revision.solution, user=other_user, ends=ended, starts=ended - dt.timedelta(days=30))
    decision = download(other_user, rtu_revision)
    assert decision.code == Denial.TIMING_CONSTRAINT and "ended on" in decision.message
    assert decision.details["ends"] == ended.isoformat()


def test_an_agreement_not_started_yet_says_when_it_starts(rtu_revision, other_user):
    agreement_for(rtu_revision.solution, user=other_user, starts=timezone.now() + dt.timedelta(days=2))
    decision = download(other_user, rtu_revision)
    assert decision.code == Denial.TIMING_CONSTRAINT and "starts on" in decision.message


def test_a_revoked_agreement_gives_the_licensors_reason(rtu_revision, other_user):
    agreement_for(rtu_revision.solution, user=other_user, status=AgreementStatus.REVOKED,
                  revoked_at=timezone.now(), revoke_reason="contract ended")
    decision = download(other_user, rtu_revision)
    assert decision.code == Denial.RIGHT_TO_USE_REVOKED and "contract ended" in decision.message


def test_a_prohibition_wins_over_a_permit_from_another_agreement(rtu_revision, other_user):
    group = Group.objects.create(name="partners")
    other_user.groups.add(group)
    agreement_for(rtu_revision.solution, user=other_user)
    agreement_for(rtu_revision.solution, group=group, rules=[{"action": "download", "kind": "prohibit"}])
    assert download(other_user, rtu_revision).code == Denial.USAGE_PROHIBITED
    assert policy.decide(Who.of(other_user), rtu_revision, Action.DEPLOY).allowed


@pytest.mark.parametrize("through", ["group", "organisation", "site"])
def test_an_agreement_covers_a_group_an_organisation_or_the_site(rtu_revision, other_user, through):
    if through == "group":
        group = Group.objects.create(name="partners")
        other_user.groups.add(group)
        agreement_for(rtu_revision.solution, group=group)
    elif through == "organisation":
        organisation = Organisation.objects.create(name="Beta Ltd", slug="beta")
        Membership.objects.create(user=other_user, organisation=organisation)
        agreement_for(rtu_revision.solution, organisation=organisation)
    else:
        agreement_for(rtu_revision.solution)
    assert download(other_user, rtu_revision).code == "entitled"


def test_a_group_agreement_does_not_cover_non_members(rtu_revision, other_user):
    agreement_for(rtu_revision.solution, group=Group.objects.create(name="partners"))
    assert download(other_user, rtu_revision).code == Denial.AGREEMENT_NOT_FOUND


def test_an_agreement_for_one_revision_does_not_cover_another(rtu_revision, other_user, owner):
    agreement_for(rtu_revision.solution, user=other_user, revision=rtu_revision)
    newer = RevisionFactory(solution=rtu_revision.solution)
    from tests.factories import licensed

    licensed(newer, rtu=True)
    assert download(other_user, rtu_revision).allowed
    assert download(other_user, newer).code == Denial.AGREEMENT_NOT_FOUND


def test_the_grant_ending_soonest_is_used_first(rtu_revision, other_user):
    long = agreement_for(rtu_revision.solution, user=other_user, rules=[{"action": "download", "count_limit": 5}])
    short = agreement_for(rtu_revision.solution, user=other_user, ends=timezone.now() + dt.timedelta(days=2),
                          rules=[{"action": "download", "count_limit": 5}])
    assert download(other_user, rtu_revision).agreement_id == short.pk
    assert Rule.objects.get(agreement=long).count_used == 0


def test_a_pending_request_is_named_in_the_denial(rtu_revision, other_user):
    AccessRequest.objects.create(solution=rtu_revision.solution, requester=other_user)
    decision = download(other_user, rtu_revision)
    assert decision.code == Denial.AGREEMENT_NOT_FOUND and "waits for the licensor" in decision.message
    assert decision.details["request_status"] == RequestStatus.PENDING


def test_a_declined_request_gives_the_reason_and_invites_another(rtu_revision, other_user):
    AccessRequest.objects.create(solution=rtu_revision.solution, requester=other_user, status=RequestStatus.DECLINED,
                                 decision_reason="tell us your use case")
    decision = download(other_user, rtu_revision)
    assert "tell us your use case" in decision.message and "request again" in decision.message


def test_click_through_points_to_acceptance(rtu_revision, other_user):
    Offer.objects.create(solution=rtu_revision.solution, mode=OfferMode.CLICK_THROUGH)
    decision = download(other_user, rtu_revision)
    assert "accept its licence" in decision.message and decision.details["accept_url"].endswith("/accept")


def test_a_deploy_takes_a_live_slot_up_to_the_limit(rtu_revision, other_user):
    import uuid

    agreement_for(rtu_revision.solution, user=other_user, rules=[{"action": "deploy", "live_limit": 1}])
    first, second = uuid.uuid4(), uuid.uuid4()
    deploy = lambda d: policy.decide(Who.of(other_user), rtu_revision, Action.DEPLOY, consume=1,  # noqa: E731
                                     deployment_id=d)
    assert deploy(first).allowed
    refused = deploy(second)
    assert (refused.code, refused.status) == (Denial.LIVE_LIMIT_REACHED, 403)
    assert not DeploymentGrant.objects.filter(deployment_id=second).exists()
    assert UsageRecord.objects.filter(action="deploy").count() == 1  # the refused one counted nothing


def test_authorize_raises_a_refusal_the_api_answers_with_its_status_and_code(rtu_revision, other_user):
    with pytest.raises(policy.LicenceDenied) as denied:
        policy.authorize(Who.of(other_user), rtu_revision, Action.DOWNLOAD, consume=1)
    assert (denied.value.status, denied.value.code) == (403, Denial.AGREEMENT_NOT_FOUND)
    assert denied.value.details["reason"] == Denial.AGREEMENT_NOT_FOUND


def test_a_peer_is_covered_only_by_its_own_subject(rtu_revision):
    agreement_for(rtu_revision.solution, peer="CN=beta.example", rules=[{"action": "export"}])
    assert policy.decide(Who.for_peer("CN=beta.example"), rtu_revision, Action.EXPORT).allowed
    assert policy.decide(Who.for_peer("CN=gamma.example"), rtu_revision, Action.EXPORT).code == \
        Denial.AGREEMENT_NOT_FOUND


def swap_in(user, revision, deployment_id):
    return policy.decide(Who.of(user), revision, Action.DEPLOY, swap_in=True, deployment_id=deployment_id)


def test_a_model_that_needs_an_agreement_is_not_swapped_into_a_deployment_with_no_meter(rtu_revision, other_user):
    import uuid

    agreement_for(rtu_revision.solution, user=other_user)
    unmetered = uuid.uuid4()  # e.g. a deployment of the user's own open model: it holds no slot
    decision = swap_in(other_user, rtu_revision, unmetered)
    assert (decision.allowed, decision.code) == (False, Denial.AGREEMENT_NOT_FOUND)
    assert "deploy Fraud scorer as a new deployment" in decision.message


def test_a_metered_deployment_takes_only_what_its_agreement_covers(rtu_revision, open_revision, other_user):
    import uuid

    agreement_for(rtu_revision.solution, user=other_user)
    metered = uuid.uuid4()
    assert policy.decide(Who.of(other_user), rtu_revision, Action.DEPLOY, consume=1, deployment_id=metered).allowed
    newer = RevisionFactory(solution=rtu_revision.solution)
    from tests.factories import licensed

    licensed(newer, rtu=True)
    assert swap_in(other_user, newer, metered).allowed  # another version the agreement covers
    own_code = swap_in(other_user, open_revision, metered)  # an open model, of anyone, past the meter
    assert (own_code.allowed, own_code.code) == (False, Denial.USAGE_PROHIBITED)
    assert swap_in(rtu_revision.solution.owner, open_revision, metered).code == Denial.USAGE_PROHIBITED
