"""What an attacker's probe of licensing found, each now refused: clicking again to undo a revocation or
refill a count, a runner's report settling what it still holds or another deployment's reservation,
formulas in the usage CSV, a group member reading the others' usage, limits past the columns' range,
answers the offer never asked for."""

from __future__ import annotations

import csv
import io
import uuid

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from licensing import entitlements, keys, policy, services
from licensing.choices import Action, OfferMode
from licensing.models import AccessRequest, Offer, Rule
from marketplace import storage
from marketplace.choices import ArtifactKind
from marketplace.models import Artifact
from tests.factories import UserFactory, agreement_for

pytestmark = pytest.mark.django_db
API = "/api/v1/licensing"


def client(user) -> APIClient:
    made = APIClient()
    made.force_authenticate(user)
    return made


def test_accepting_again_neither_refills_a_count_nor_undoes_a_revocation(rtu_revision, owner, other_user):
    Offer.objects.create(solution=rtu_revision.solution, mode=OfferMode.CLICK_THROUGH,
                         terms={"rules": [{"action": "download", "count_limit": 1}], "days": 30})
    text_hash = rtu_revision.licence_profile.text_sha256
    first = services.accept(other_user, rtu_revision, text_hash)
    assert policy.authorize(policy.Who.of(other_user), rtu_revision, Action.DOWNLOAD, consume=1).allowed
    assert services.accept(other_user, rtu_revision, text_hash) == first  # the same agreement, no new count
    assert policy.decide(policy.Who.of(other_user), rtu_revision, Action.DOWNLOAD).code == "usage_exhausted"
    services.revoke(owner, first, "terms broken")
    with pytest.raises(services.NotAllowed, match="terms broken"):
        services.accept(other_user, rtu_revision, text_hash)


@pytest.fixture
def metered(rtu_revision, other_user, settings, tmp_path):
    settings.ACUMOS_LICENSING_KEY_FILE = tmp_path / "key.pem"
    settings.ACUMOS_ENTITLEMENT_BLOCK = 100
    keys._loaded.cache_clear()
    blob, _ = storage.store_text("model\n")
    Artifact.objects.create(revision=rtu_revision, kind=ArtifactKind.MODEL, name="modelpackage.zip", blob=blob)
    agreement = agreement_for(rtu_revision.solution, user=other_user,
                              rules=[{"action": "deploy"}, {"action": "predict", "count_limit": 1000}])

    def deploy():
        deployment_id = uuid.uuid4()
        policy.authorize(policy.Who.of(other_user), rtu_revision, Action.DEPLOY, consume=1, deployment_id=deployment_id)
        return deployment_id, entitlements.issue(deployment_id).entitlement

    return agreement, deploy


def test_a_runner_cannot_settle_the_document_it_holds_nor_another_deployments(metered):
    agreement, deploy = metered
    mine, held = deploy()
    theirs, victim = deploy()
    rule = lambda: Rule.objects.get(agreement=agreement, action=Action.PREDICT).count_used  # noqa: E731
    assert rule() == 200
    lying = entitlements.Report(str(held.pk), 0, ((str(held.pk), 0), (str(victim.pk), 0)))
    entitlements.record_report(mine, lying)
    assert rule() == 200  # nothing given back: one is still held, the other is not this deployment's
    held.refresh_from_db()
    victim.refresh_from_db()
    assert not held.settled and not victim.settled


def test_the_usage_csv_keeps_formulas_as_text(rtu_revision, owner):
    mallory = UserFactory(username="-1+2")
    agreement_for(rtu_revision.solution, user=mallory)
    policy.authorize(policy.Who.of(mallory), rtu_revision, Action.DOWNLOAD, consume=1)
    response = client(owner).get(f"{API}/usage", {"format": "csv"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[1][5] == "'-1+2"


def test_a_group_member_sees_their_own_use_of_a_group_agreement_not_the_others(rtu_revision, owner, other_user):
    group = Group.objects.create(name="partners")
    mallory = UserFactory(username="mallory")
    for member in (other_user, mallory):
        member.groups.add(group)
    agreement = agreement_for(rtu_revision.solution, group=group)
    policy.authorize(policy.Who.of(other_user), rtu_revision, Action.DOWNLOAD, consume=1)
    seen = client(mallory).get(f"{API}/agreements/{agreement.pk}/usage").json()["results"]
    assert seen == []
    assert len(client(owner).get(f"{API}/agreements/{agreement.pk}/usage").json()["results"]) == 1


def test_a_limit_past_the_columns_range_is_refused_naming_it(rtu_revision, owner, other_user):
    answer = client(owner).post(f"{API}/agreements", {
        "solution": str(rtu_revision.solution_id), "assignee": {"kind": "user", "name": other_user.username},
        "terms": {"rules": [{"action": "download", "count_limit": 2**40}]}}, format="json")
    assert answer.status_code == 400 and "count_limit" in str(answer.json())


def test_only_the_offers_questions_are_kept_and_a_nul_is_refused(rtu_revision, other_user):
    Offer.objects.create(solution=rtu_revision.solution, request_fields=[{"name": "company", "label": "Company"}])
    refused = client(other_user).post(f"{API}/access-requests", {
        "solution": str(rtu_revision.solution_id), "answers": {"company": "Acme\u0000"}}, format="json")
    assert refused.status_code == 400
    made = client(other_user).post(f"{API}/access-requests", {
        "solution": str(rtu_revision.solution_id), "answers": {"company": "Acme", "junk": "x" * 100_000}},
        format="json")
    assert made.status_code == 201
    assert AccessRequest.objects.get().answers == {"company": "Acme"}
