"""The revision page's deploy form warns, before it is sent, when this very revision is already deployed
on a target the user may deploy to ("Already running here: <name>, <link>"), and its Deploy asks for
confirmation then. A second copy stays legitimate (a replica): the API makes it without a question."""

from __future__ import annotations

import html as html_text
import re

import pytest

from deployment.choices import DeploymentStatus, TargetDeployers, TargetKind
from deployment.models import Deployment

from ..factories import DeploymentFactory, RevisionFactory, SolutionFactory, TargetFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def revision(owner):
    return RevisionFactory(solution=SolutionFactory(owner=owner, name="HousePrice"), version="1.0.0")


@pytest.fixture
def target(db):
    return TargetFactory(name="This host", kind=TargetKind.LOCAL, deployers=TargetDeployers.OWNERS)


def deploy_form(client, revision) -> str:
    page = client.get(f"/revisions/{revision.pk}/").content.decode()
    form = re.search(r'<form method="post" action="/revisions/[^"]+/deploy/".*?</form>', page, re.S)
    assert form, "the page offers no deploy form"
    return form.group(0)


def confirm_of(form: str) -> str | None:
    found = re.search(r'data-confirm="([^"]*)"', form.split(">", 1)[0])
    return html_text.unescape(found.group(1)) if found else None


def test_a_first_deploy_asks_nothing(owner, revision, target, client_for):
    form = deploy_form(client_for(owner), revision)
    assert "data-already-deployed" not in form and confirm_of(form) is None


def test_a_running_copy_is_named_and_linked_and_deploy_asks_first(owner, revision, target, client_for):
    running = DeploymentFactory(name="house-prod", revision=revision, target=target, created_by=owner,
                                status=DeploymentStatus.RUNNING)
    form = deploy_form(client_for(owner), revision)
    assert re.search(rf'Already running here:\s*<a href="/deployments/{running.pk}/">house-prod · HousePrice 1.0.0'
                     r'</a>\s*on This host \(running\)', form)
    assert confirm_of(form) == ("This version is already deployed here: house-prod · HousePrice 1.0.0 on This host "
                                "(Running). Deploy another copy?")


def test_a_stopped_copy_is_named_too_and_a_destroyed_one_is_not(owner, revision, target, client_for):
    stopped = DeploymentFactory(name="", revision=revision, target=target, created_by=owner,
                                status=DeploymentStatus.STOPPED)
    DeploymentFactory(name="gone", revision=revision, target=target, created_by=owner,
                      status=DeploymentStatus.DESTROYED)
    form = deploy_form(client_for(owner), revision)
    assert "Already running here" not in form
    assert re.search(rf'Here, not running:\s*<a href="/deployments/{stopped.pk}/">HousePrice 1.0.0</a>', form)
    assert "gone" not in form and "gone" not in confirm_of(form)


def test_another_version_or_someone_elses_deployment_is_not_a_duplicate(owner, operator, revision, target,
                                                                         client_for):
    other_version = RevisionFactory(solution=revision.solution, version="1.1.0")
    DeploymentFactory(revision=other_version, target=target, created_by=owner, status=DeploymentStatus.RUNNING)
    # An operator's deployment of the owner's model: the owner does not see it, so it is not told.
    DeploymentFactory(name="ops-secret", revision=revision, target=target, created_by=operator,
                      status=DeploymentStatus.RUNNING)
    form = deploy_form(client_for(owner), revision)
    assert "data-already-deployed" not in form and confirm_of(form) is None and "ops-secret" not in form


def test_the_api_still_deploys_a_second_copy(owner, revision, target, client_for):
    DeploymentFactory(revision=revision, target=target, created_by=owner, status=DeploymentStatus.RUNNING)
    second = client_for(owner).post("/api/v1/deployments", {"revision": str(revision.pk), "target": str(target.pk)},
                                    content_type="application/json")
    assert second.status_code == 202, second.content
    assert Deployment.objects.filter(revision=revision).count() == 2
