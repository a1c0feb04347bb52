"""A rollout's gates, judged on samples written as a collection round writes them (the runners themselves:
tests/deployment/test_rollout.py): each gate that fails rolls back with its figure, a step waits for traffic,
requests and rounds and says so, every gate holding moves to the next weight and after the last promotes; a
busy deployment or an ended rollout is left alone; each decision is told to the creator."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from acumos_portal.choices import UNFINISHED
from deployment.choices import DEFAULT_ROLLOUT_GATES, DeploymentStatus, OperationKind, RolloutState, Trigger
from deployment.models import Rollout
from marketplace.choices import NotificationKind
from marketplace.models import Notification
from monitoring import rollouts, selectors
from monitoring import services as monitoring
from monitoring.choices import Variant
from monitoring.models import Sample
from monitoring.services import Reading

from ..factories import DeploymentFactory, OperationFactory, RevisionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def rollout(owner):
    def make(mode="canary", weights=(10, 50), step=0, **gates) -> Rollout:
        deployment = DeploymentFactory(created_by=owner, status=DeploymentStatus.RUNNING,
                                       endpoint_url="http://127.0.0.1:9")
        candidate = RevisionFactory(solution=deployment.revision.solution, version="2.0.0")
        return Rollout.objects.create(
            deployment=deployment, revision=candidate, previous_revision=deployment.revision, mode=mode,
            weights=list(weights), step=step, candidate_generation=2,
            gates={**DEFAULT_ROLLOUT_GATES, "min_requests": 100, "step_rounds": 2, **gates},
            step_started_at=timezone.now() - timedelta(minutes=5))

    return make


def samples(rollout: Rollout, *rounds, live=(100, 0), **fields) -> None:
    """One candidate sample per (requests, errors) round, with the live model's beside each."""
    for n, (requests, errors) in enumerate(rounds):
        at = rollout.step_started_at + timedelta(seconds=10 * (n + 1))
        Sample.objects.create(deployment=rollout.deployment, at=at, variant=Variant.LIVE, generation=1,
                              requests=live[0], errors=live[1], p99_ms=5.0)
        Sample.objects.create(deployment=rollout.deployment, at=at, variant=rollout.mode, generation=2,
                              requests=requests, errors=errors, **{"p99_ms": 8.0, **fields})


def verdict(rollout: Rollout) -> rollouts.Verdict:
    return rollouts.judge(rollout, selectors.rollout_figures(rollout))


def test_with_no_traffic_the_rollout_waits_and_says_so(rollout):
    waiting = rollout()
    found = rollouts.advance(waiting.deployment)
    assert found.decision == rollouts.WAIT and "no traffic yet" in found.text
    waiting.refresh_from_db()
    assert waiting.state == RolloutState.RUNNING and "no traffic yet" in waiting.progress
    assert not waiting.deployment.operations.exists()


def test_a_step_waits_for_its_requests_then_its_rounds(rollout):
    few = rollout()
    samples(few, (40, 1))
    assert "40 of 100 requests" in verdict(few).text
    samples(few, (70, 1))  # 110 requests, one round more: both rounds are in
    assert verdict(few).decision == rollouts.NEXT

    one_round = rollout(step_rounds=3)
    samples(one_round, (150, 0))
    found = verdict(one_round)
    assert found.decision == rollouts.WAIT and "round 1 of 3" in found.text and "every gate held" in found.text


def test_samples_before_the_step_or_of_another_generation_do_not_count(rollout):
    later = rollout()
    Sample.objects.create(deployment=later.deployment, at=later.step_started_at - timedelta(seconds=1),
                          variant=Variant.CANARY, generation=2, requests=500, errors=0)
    Sample.objects.create(deployment=later.deployment, at=later.step_started_at + timedelta(seconds=1),
                          variant=Variant.CANARY, generation=7, requests=500, errors=0)
    assert selectors.rollout_figures(later).requests == 0


def test_errors_roll_back_as_soon_as_no_later_request_could_save_the_step(rollout):
    failing = rollout()
    samples(failing, (12, 6))  # 6 errors: more than 5 % of the 100 requests the step needs, whatever comes
    found = verdict(failing)
    assert found.decision == rollouts.ROLL_BACK
    assert "error rate 50.0 % (6 of 12 requests) over the 5.0 % allowed" in found.text
    assert "the live model: 0.0 % errors over 100 requests" in found.text

    borderline = rollout()
    samples(borderline, (12, 5))  # 5 of 100 would still be 5 %: wait
    assert verdict(borderline).decision == rollouts.WAIT


@pytest.mark.parametrize(("mode", "gates", "fields", "says"), [
    ("canary", {"max_p99_ms": 50}, {"p99_ms": 80.0}, "p99 latency 80 ms over the 50 ms allowed"),
    ("shadow", {}, {"agreement_rate": 0.5}, "agreement with the live model 50.0 % under the 90.0 % required"),
    ("canary", {"min_quality": 0.9}, {"quality": {"m.y": {"metric": "accuracy", "value": 0.6, "count": 40}}},
     "accuracy of m.y 60.0 % over 40 answers with feedback under the 90.0 % required"),
])
def test_each_gate_that_fails_rolls_back_with_its_figure(rollout, owner, mode, gates, fields, says):
    failing = rollout(mode=mode, **gates)
    samples(failing, (120, 0), **fields)
    found = rollouts.advance(failing.deployment)
    assert found.decision == rollouts.ROLL_BACK and says in found.text
    failing.refresh_from_db()
    assert failing.state == RolloutState.ROLLED_BACK and says in failing.reason and failing.decided_by is None
    abort = failing.operations.get()
    assert (abort.kind, abort.trigger, abort.status in UNFINISHED) == (OperationKind.ABORT, Trigger.GATES, True)
    told = Notification.objects.get(user=owner, kind=NotificationKind.DEPLOYMENT)
    assert told.title.endswith("rolled back") and says in told.message


def test_quality_is_not_judged_on_a_handful_of_feedback(rollout):
    few_labels = rollout(min_quality=0.9, step_rounds=1)
    samples(few_labels, (120, 0), quality={"m.y": {"metric": "accuracy", "value": 0.1, "count": 3}})
    found = verdict(few_labels)
    assert found.decision == rollouts.NEXT and "quality not judged (3 of 30 answers with feedback)" in found.text


def test_every_gate_holding_raises_the_weight_then_promotes(rollout, owner):
    stepping = rollout(mode="canary", weights=(10, 50), step_rounds=1)
    samples(stepping, (150, 2))
    found = rollouts.advance(stepping.deployment)
    assert found.decision == rollouts.NEXT
    assert "every gate held over 150 requests (error rate 1.3 %, p99 8 ms)" in found.text
    stepping.refresh_from_db()
    assert stepping.step == 1 and stepping.reason == found.text
    assert stepping.operations.get().kind == OperationKind.CANDIDATE
    assert Notification.objects.get(user=owner).title.endswith("raised to 50 %")

    last = rollout(mode="shadow", weights=(100,), step_rounds=1)
    samples(last, (150, 0), agreement_rate=0.97)
    found = rollouts.advance(last.deployment)
    assert found.decision == rollouts.PROMOTE and "agreement 97.0 %" in found.text
    assert last.operations.get().kind == OperationKind.PROMOTE
    last.refresh_from_db()
    assert last.state == RolloutState.RUNNING and last.progress == "promoting"  # promoted when the runner has


def test_a_busy_deployment_or_an_ended_rollout_is_not_judged(rollout):
    busy = rollout(step_rounds=1)
    samples(busy, (150, 0))
    OperationFactory(deployment=busy.deployment, kind=OperationKind.SWAP, status="running")
    assert rollouts.advance(busy.deployment) is None

    ended = rollout(step_rounds=1)
    samples(ended, (150, 0))
    Rollout.objects.filter(pk=ended.pk).update(state=RolloutState.ABORTED)
    assert rollouts.advance(ended.deployment) is None
    assert not ended.operations.exists()


def test_the_collection_round_judges_the_rollout(rollout, monkeypatch):
    judged = rollout()
    counts = {"requests": 10, "errors": 0, "buckets": {"0.005": 10, "inf": 10}, "epoch": None, "variants": {}}
    monkeypatch.setattr(monitoring, "read_replica", lambda url, token: Reading(counts=counts, live_generation=1))
    monitoring.collect_all()
    judged.refresh_from_db()
    assert "no traffic yet" in judged.progress
