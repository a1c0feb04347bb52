"""Counts and live slots are consumed race-free: eight callers at once for the last unit, one wins."""

from __future__ import annotations

import uuid

import pytest

from licensing import policy, services
from licensing.choices import Action
from licensing.models import DeploymentGrant, Rule, UsageRecord
from tests.concurrency import at_once
from tests.factories import agreement_for

RACERS = 8


@pytest.mark.django_db(transaction=True)
def test_eight_callers_racing_for_the_last_download_let_exactly_one_through(rtu_revision, other_user):
    agreement = agreement_for(rtu_revision.solution, user=other_user,
                              rules=[{"action": "download", "count_limit": 5, "count_used": 4}])

    def take():
        return policy.decide(policy.Who.of(other_user), rtu_revision, Action.DOWNLOAD, consume=1).allowed

    results = at_once(*[take] * RACERS)
    assert [str(r) for r in results if not isinstance(r, bool)] == []
    assert sorted(results) == [False] * (RACERS - 1) + [True]
    assert Rule.objects.get(agreement=agreement).count_used == 5
    assert UsageRecord.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_eight_deployments_racing_for_the_last_live_slot_let_exactly_one_through(rtu_revision, other_user):
    agreement = agreement_for(rtu_revision.solution, user=other_user,
                              rules=[{"action": "deploy", "live_limit": 2, "live_used": 1}])

    def deploy():
        return policy.decide(policy.Who.of(other_user), rtu_revision, Action.DEPLOY, consume=1,
                             deployment_id=uuid.uuid4()).allowed

    assert sorted(at_once(*[deploy] * RACERS)) == [False] * (RACERS - 1) + [True]
    assert Rule.objects.get(agreement=agreement).live_used == 2
    assert DeploymentGrant.objects.count() == 1


@pytest.mark.django_db
def test_a_deployment_released_twice_frees_one_slot(rtu_revision, other_user):
    agreement = agreement_for(rtu_revision.solution, user=other_user, rules=[{"action": "deploy", "live_limit": 2}])
    deployment = uuid.uuid4()
    assert policy.decide(policy.Who.of(other_user), rtu_revision, Action.DEPLOY, consume=1,
                         deployment_id=deployment).allowed
    assert services.release_deployment(deployment) is True
    assert services.release_deployment(deployment) is False
    assert Rule.objects.get(agreement=agreement).live_used == 0


@pytest.mark.django_db
def test_the_same_deployment_asking_again_keeps_its_one_slot(rtu_revision, other_user):
    agreement = agreement_for(rtu_revision.solution, user=other_user, rules=[{"action": "deploy", "live_limit": 1}])
    deployment = uuid.uuid4()
    for _ in range(2):  # deploy, then start again after a restart
        assert policy.decide(policy.Who.of(other_user), rtu_revision, Action.DEPLOY,
                             deployment_id=deployment).allowed
    assert Rule.objects.get(agreement=agreement).live_used == 1
