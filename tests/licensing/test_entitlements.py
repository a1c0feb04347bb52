"""licensing.entitlements: documents the runner's own verifier accepts, reservations taken from the
agreement up front, usage pulled back once whoever pulls it, unused reservations given back."""

from __future__ import annotations

import base64
import datetime as dt
import uuid

import pytest

from acumos_portal.canonical import canonical
from licensing import entitlements, keys, policy
from licensing.choices import Action
from licensing.models import Entitlement, Rule, UsageRecord
from marketplace import storage
from marketplace.choices import ArtifactKind
from marketplace.models import Artifact
from runner_image import entitlement as runner_entitlement
from tests.factories import agreement_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def key_file(settings, tmp_path):
    settings.ACUMOS_LICENSING_KEY_FILE = tmp_path / "licensing" / "key.pem"
    settings.ACUMOS_ENTITLEMENT_BLOCK = 100
    keys._loaded.cache_clear()


@pytest.fixture
def deployed(rtu_revision, other_user):
    """A deployment of the rtu model by a licensee holding a live slot, with 250 predictions to use."""
    blob, _ = storage.store_text("model bytes\n")
    Artifact.objects.create(revision=rtu_revision, kind=ArtifactKind.MODEL, name="modelpackage.zip", blob=blob)
    agreement = agreement_for(rtu_revision.solution, user=other_user,
                              rules=[{"action": "deploy"}, {"action": "predict", "count_limit": 250}])
    deployment_id = uuid.uuid4()
    assert policy.decide(policy.Who.of(other_user), rtu_revision, Action.DEPLOY, consume=1,
                         deployment_id=deployment_id).allowed
    return deployment_id, agreement, blob.sha256


def runner_keys() -> dict[str, bytes]:
    return {kid: base64.b64decode(value) for kid, value in keys.runner_keys().items()}


def test_both_sides_make_the_same_canonical_bytes():
    document = {"b": [1, "é", None], "a": {"z": 1.5, "y": True}}
    assert canonical(document) == runner_entitlement.canonical(document)


def test_the_runner_accepts_what_the_portal_issues(deployed):
    deployment_id, agreement, model_sha = deployed
    issued = entitlements.issue(deployment_id)
    verified = runner_entitlement.verify(issued.document, runner_keys(), str(deployment_id))
    assert verified.predictions == 100 and verified.models == frozenset({model_sha})
    assert verified.agreement == str(agreement.pk)
    assert Rule.objects.get(agreement=agreement, action=Action.PREDICT).count_used == 100  # reserved up front


def test_a_document_changed_after_signing_is_refused_by_the_runner(deployed):
    deployment_id, *_ = deployed
    document = entitlements.issue(deployment_id).document
    document["entitlement"]["predictions"] = 10 ** 9
    with pytest.raises(runner_entitlement.InvalidEntitlement):
        runner_entitlement.verify(document, runner_keys(), str(deployment_id))


def test_the_environment_makes_the_runner_require_an_entitlement_only_when_metered(deployed):
    deployment_id, *_ = deployed
    environment = entitlements.runner_environment(deployment_id)
    assert environment["RUNNER_REQUIRE_ENTITLEMENT"] == "1"
    assert environment["RUNNER_DEPLOYMENT_ID"] == str(deployment_id)
    assert entitlements.runner_environment(uuid.uuid4()) == {}


def test_use_is_recorded_once_and_the_unused_reservation_goes_back(deployed, other_user):
    deployment_id, agreement, _ = deployed
    first = entitlements.issue(deployment_id).entitlement
    report = entitlements.Report(str(first.pk), 30)
    assert entitlements.record_report(deployment_id, report) == 30
    assert entitlements.record_report(deployment_id, report) == 0  # a second checker records nothing
    second = entitlements.issue(deployment_id).entitlement  # renewed: 100 more reserved
    rule = Rule.objects.get(agreement=agreement, action=Action.PREDICT)
    assert rule.count_used == 200
    entitlements.record_report(deployment_id, entitlements.Report(str(second.pk), 5, ((str(first.pk), 42),)))
    rule.refresh_from_db()
    assert rule.count_used == 200 - (100 - 42)  # the first document's 58 unused came back
    records = UsageRecord.objects.filter(action=Action.PREDICT)
    assert sum(r.quantity for r in records) == 42 + 5
    assert {r.user for r in records} == {other_user}


def test_a_report_beyond_the_reservation_is_not_believed(deployed):
    deployment_id, *_ = deployed
    issued = entitlements.issue(deployment_id).entitlement
    assert entitlements.record_report(deployment_id, entitlements.Report(str(issued.pk), 10 ** 6)) == 100


def test_renewal_is_due_when_most_is_used_or_most_of_its_life_is_gone(deployed):
    deployment_id, *_ = deployed
    issued = entitlements.issue(deployment_id).entitlement
    assert not entitlements.due_for_renewal(deployment_id, 0, 10)
    assert entitlements.due_for_renewal(deployment_id, 0, 80)
    earlier = dt.timedelta(hours=20)  # issued 20 of its 24 hours ago
    Entitlement.objects.filter(pk=issued.pk).update(issued=issued.issued - earlier,
                                                    not_after=issued.not_after - earlier)
    assert entitlements.due_for_renewal(deployment_id, 0, 10)


def test_nothing_is_issued_once_the_agreement_is_revoked(deployed, owner):
    deployment_id, agreement, _ = deployed
    from licensing import services

    services.revoke(owner, agreement, "ended")
    assert entitlements.issue(deployment_id) is None


def test_the_last_predictions_are_shared_between_replicas(deployed):
    deployment_id, agreement, _ = deployed
    Rule.objects.filter(agreement=agreement, action=Action.PREDICT).update(count_used=240)
    shares = [entitlements.issue(deployment_id, replica, replicas=2).entitlement.predictions for replica in (0, 1)]
    assert shares == [5, 2]  # half of 10, then half of the 5 left (rounded down): never more than is left


def test_a_document_that_never_reached_its_runner_gives_its_reservation_back(deployed):
    deployment_id, agreement, _ = deployed
    issued = entitlements.issue(deployment_id)
    rule = Rule.objects.get(agreement=agreement, action=Action.PREDICT)
    assert rule.count_used == 100
    entitlements.abandon(issued.entitlement)
    entitlements.abandon(issued.entitlement)  # twice: given back once
    rule.refresh_from_db()
    assert rule.count_used == 0
