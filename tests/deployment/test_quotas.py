"""The live-deployments quota (ACUMOS_QUOTA_LIVE_DEPLOYMENTS, 3 by default): a user with that many
deployments pending, running or not answering is refused another (API 429 `quota_exceeded`, the
page's deploy form says it), with a message that says the quota and how to free a slot; stopping
one frees it; starting a stopped one again counts; operators and admins are exempt. Two deploys at
the last slot at once, on real threads against PostgreSQL, make one deployment, not two.

Deploy operations asked for here are not run (in the per-test transaction they never commit; the
threaded test drops them), so no runner is started: only the stop that frees a slot is run."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from acumos_portal import jobs
from acumos_portal.choices import JobStatus
from deployment import selectors, services
from deployment.choices import DeploymentStatus, OperationKind, TargetDeployers, TargetKind
from deployment.models import Deployment, Operation

from ..concurrency import at_once
from ..factories import DeploymentFactory, OperationFactory, RevisionFactory, SolutionFactory, TargetFactory
from .conftest import run

AT_QUOTA = ("You have 3 live deployments, the most allowed per user: stop one (Deployments → Stop) to "
            "deploy another.")
DEPLOYMENTS = "/api/v1/deployments"


@pytest.fixture
def target(db):
    return TargetFactory(name="this host", kind=TargetKind.LOCAL, deployers=TargetDeployers.OWNERS)


@pytest.fixture
def revision(owner):
    return RevisionFactory(solution=SolutionFactory(owner=owner, name="Iris"), version="1.0.0")


def live(user, target, revision, count: int, status=DeploymentStatus.RUNNING) -> list[Deployment]:
    """Deployments as their deploy operations leave them (no runner: there is no process to stop)."""
    return [DeploymentFactory(name=f"iris {n}", target=target, revision=revision, created_by=user, status=status,
                              handle={"pid": 0}) for n in range(count)]


def deploy_by_api(client: Client, revision, target):
    return client.post(DEPLOYMENTS, {"revision": str(revision.pk), "target": str(target.pk)},
                       content_type="application/json")


@pytest.mark.django_db
def test_the_default_quota_is_three_live_deployments(settings):
    assert settings.ACUMOS_QUOTA_LIVE_DEPLOYMENTS == 3


@pytest.mark.django_db
def test_the_api_refuses_a_deploy_past_the_quota_and_takes_one_when_a_deployment_is_stopped(
        owner, target, revision, client_for):
    client = client_for(owner)
    made = [deploy_by_api(client, revision, target) for _ in range(3)]
    assert [response.status_code for response in made] == [202, 202, 202]  # pending ones count

    refused = deploy_by_api(client, revision, target)
    assert refused.status_code == 429, refused.content
    error = refused.json()["error"]
    assert error["code"] == "quota_exceeded" and error["message"] == AT_QUOTA
    assert error["details"]["quota"] == 3 and error["details"]["live"] == 3
    assert sorted(error["details"]["live_deployments"]) == sorted(response.json()["id"] for response in made)
    assert Deployment.objects.count() == 3 and Operation.objects.count() == 3

    # As the deploy operations would leave them, had they run.
    Operation.objects.update(status=JobStatus.SUCCEEDED)
    Deployment.objects.update(status=DeploymentStatus.RUNNING)
    first = made[0].json()["id"]
    stopping = client.post(f"{DEPLOYMENTS}/{first}/stop")
    assert stopping.status_code == 202
    assert deploy_by_api(client, revision, target).status_code == 429  # the stop has not run yet
    assert run(Operation.objects.get(pk=stopping.json()["id"])).error == ""
    assert Deployment.objects.get(pk=first).status == DeploymentStatus.STOPPED

    again = deploy_by_api(client, revision, target)
    assert again.status_code == 202, again.content
    start = client.post(f"{DEPLOYMENTS}/{first}/start")  # a stopped one started again counts too
    assert start.status_code == 429
    assert start.json()["error"]["message"] == AT_QUOTA.replace("deploy another", "start this one again")
    assert not Operation.objects.filter(kind=OperationKind.START).exists()


@pytest.mark.django_db
def test_the_deploy_form_says_the_quota_and_how_to_free_one(owner, target, revision, client_for):
    live(owner, target, revision, 2)
    client = client_for(owner)
    page = client.get(f"/revisions/{revision.pk}/").content.decode()
    assert "data-deploy-quota" not in page  # one more is allowed
    response = client.post(f"/revisions/{revision.pk}/deploy/", {"target": str(target.pk), "replicas": 1})
    assert response.status_code == 302 and response["Location"].startswith("/deployments/")

    refused = client.post(f"/revisions/{revision.pk}/deploy/", {"target": str(target.pk), "replicas": 1})
    assert refused.status_code == 302 and refused["Location"] == f"/revisions/{revision.pk}/#deploy"
    assert Deployment.objects.count() == 3
    page = client.get(refused["Location"]).content.decode()
    form = page.split('class="deploy-form"')[1].split("</form>")[0]
    assert "data-deploy-quota" in form and AT_QUOTA in form


@pytest.mark.django_db
def test_starting_a_stopped_deployment_from_its_page_says_the_quota(owner, target, revision, client_for):
    live(owner, target, revision, 3)
    [stopped] = live(owner, target, revision, 1, status=DeploymentStatus.STOPPED)
    client = client_for(owner)
    response = client.post(f"/deployments/{stopped.pk}/start/", follow=True)
    assert AT_QUOTA.replace("deploy another", "start this one again") in response.content.decode()
    assert not stopped.operations.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("status, counts", [
    (DeploymentStatus.PENDING, True), (DeploymentStatus.RUNNING, True), (DeploymentStatus.DOWN, True),
    (DeploymentStatus.STOPPED, False), (DeploymentStatus.FAILED, False), (DeploymentStatus.DESTROYED, False)])
def test_pending_running_and_not_answering_deployments_count(owner, other_user, target, revision, status, counts):
    live(owner, target, revision, 2)
    live(other_user, target, revision, 3)  # someone else's count for nothing
    [third] = live(owner, target, revision, 1, status=status)
    refused = selectors.deployment_quota_reached(owner)[0]
    assert bool(refused) == counts
    if status in (DeploymentStatus.STOPPED, DeploymentStatus.FAILED):  # being started again counts
        OperationFactory(deployment=third, kind=OperationKind.START)
        assert selectors.deployment_quota_reached(owner)[0] == AT_QUOTA


@pytest.mark.django_db
def test_a_lowered_quota_says_how_many_to_stop(owner, target, revision, settings):
    live(owner, target, revision, 3)
    settings.ACUMOS_QUOTA_LIVE_DEPLOYMENTS = 1
    with pytest.raises(services.QuotaReached) as refused:
        services.deploy(revision=revision, target=target, user=owner)
    assert str(refused.value) == ("You have 3 live deployments and the most allowed per user is 1: stop 3 "
                                  "(Deployments → Stop) to deploy another.")


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["operator", "admin_user"])
def test_operators_and_admins_are_exempt_they_run_the_site(request, persona, target, revision, client_for):
    user = request.getfixturevalue(persona)
    visible = RevisionFactory(solution=SolutionFactory(owner=user, name="Theirs"))
    client = client_for(user)
    assert [deploy_by_api(client, visible, target).status_code for _ in range(5)] == [202] * 5
    assert selectors.deployment_quota(user) is None


@pytest.mark.django_db(transaction=True)
def test_two_deploys_at_once_at_the_last_slot_make_one_deployment(owner, target, revision, monkeypatch):
    """Both requests pass the API's checks together; the quota is counted under the user's row lock,
    so the second counts after the first has committed its deployment. Without the lock both would
    count two (the wrapper holds each request between its count and its new row)."""
    live(owner, target, revision, 2)
    monkeypatch.setattr(jobs, "enqueue", lambda task, *args: None)  # no deploy operation runs
    counted = selectors.deployment_quota_reached

    def slow_count(*args, **kwargs):
        found = counted(*args, **kwargs)
        time.sleep(0.5)
        return found

    monkeypatch.setattr(selectors, "deployment_quota_reached", slow_count)
    clients = [Client(), Client()]
    for client in clients:
        client.force_login(owner)
    answers = at_once(*(lambda client=client: deploy_by_api(client, revision, target) for client in clients),
                      timeout=30)
    assert sorted(response.status_code for response in answers) == [202, 429]
    [refused] = [response for response in answers if response.status_code == 429]
    assert refused.json()["error"]["message"] == AT_QUOTA
    assert Deployment.objects.filter(created_by=owner).count() == 3
