"""Deleting a deployed model (the model page's Manage panel): before it is sent, the form lists the
deployments that serve any of its versions and says what happens to them: nothing, they keep serving
until someone stops them, and whoever created them (other than who deletes) is notified. The form asks
for confirmation. After it, the owner lands on the deleted models, where the message says restore."""

from __future__ import annotations

import html as html_text
import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from deployment.choices import DeploymentStatus
from deployment.models import Deployment
from marketplace.choices import NotificationKind
from marketplace.models import Notification

from ..factories import DeploymentFactory, RevisionFactory, SolutionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def house(owner):
    solution = SolutionFactory(owner=owner, name="HousePrice")
    return {"v1": RevisionFactory(solution=solution, version="1.0.0"),
            "v2": RevisionFactory(solution=solution, version="1.1.0")}


@pytest.fixture
def deployed(owner, operator, house):
    """The owner's own deployment of 1.1.0, an operator's stopped one of 1.0.0, and a destroyed one."""
    return {
        "mine": DeploymentFactory(name="house-prod", revision=house["v2"], created_by=owner,
                                  status=DeploymentStatus.RUNNING, target__name="This host"),
        "operators": DeploymentFactory(name="", revision=house["v1"], created_by=operator,
                                       status=DeploymentStatus.STOPPED, target__name="cluster"),
        "gone": DeploymentFactory(name="old", revision=house["v1"], created_by=owner,
                                  status=DeploymentStatus.DESTROYED),
    }


def delete_form(client, solution) -> str:
    page = client.get(reverse("marketplace:model", args=[solution.pk])).content.decode()
    return re.search(r'<form method="post" action="/models/[^"]+/delete/".*?</form>', page, re.S).group(0)


def test_the_delete_form_lists_what_serves_the_model_and_says_what_happens(owner, house, deployed, client_for):
    form = delete_form(client_for(owner), house["v1"].solution)
    assert "It is deployed:</strong> 2 deployments serve a version of it." in form
    mine, operators = deployed["mine"], deployed["operators"]
    assert re.search(rf'<a href="/deployments/{mine.pk}/">house-prod · HousePrice 1.1.0</a>\s*on This host '
                     r'\(running\), created by owner', form)
    # The operator's deployment is named, not linked: its page is not the owner's to open.
    assert re.search(r"<li>HousePrice 1.0.0\s*on cluster \(stopped\), created by operator</li>", form)
    assert f"/deployments/{operators.pk}/" not in form and "old" not in form
    assert ("Deleting the model does not stop them: they keep serving it until someone stops them "
            "(Deployments → Stop), and whoever created them is notified.") in " ".join(form.split())
    confirm = html_text.unescape(re.search(r'data-confirm="([^"]*)"', form).group(1))
    assert confirm == "Delete HousePrice? 2 deployments of it keep serving it until someone stops them."


def test_a_model_nobody_deployed_is_deleted_without_the_warning(owner, house, client_for):
    DeploymentFactory(revision=house["v1"], created_by=owner, status=DeploymentStatus.DESTROYED)
    form = delete_form(client_for(owner), house["v1"].solution)
    assert "data-deployed" not in form and "data-confirm" not in form


def test_deleting_leaves_the_deployments_serving_and_tells_their_creators(owner, operator, house, deployed,
                                                                          client_for):
    solution = house["v1"].solution
    response = client_for(owner).post(reverse("marketplace:model-delete", args=[solution.pk]), {"confirm": "on"})
    assert response.status_code == 302 and response["Location"] == "/my-models/?tab=deleted"
    said = [str(message) for message in get_messages(response.wsgi_request)]
    assert said == ["HousePrice is deleted. You can restore it from the deleted models below. Its 2 deployments "
                    "keep serving it until stopped (Deployments → Stop)."]
    statuses = dict(Deployment.objects.values_list("pk", "status"))
    assert statuses[deployed["mine"].pk] == DeploymentStatus.RUNNING  # untouched
    assert statuses[deployed["operators"].pk] == DeploymentStatus.STOPPED

    told = Notification.objects.get(user=operator)
    assert told.kind == NotificationKind.DEPLOYMENT and told.url == f"/deployments/{deployed['operators'].pk}/"
    assert told.title == "HousePrice 1.0.0 on cluster: its model HousePrice was deleted by owner"
    assert "keeps serving it until you stop it" in told.message
    assert not Notification.objects.filter(user=owner).exists()  # who deleted it knows


def test_deleting_through_the_api_tells_them_too(owner, operator, house, deployed, client_for):
    solution = house["v1"].solution
    assert client_for(owner).post(f"/api/v1/solutions/{solution.pk}/delete").status_code == 204
    assert Notification.objects.filter(user=operator, title__endswith="was deleted by owner").count() == 1
