"""A deployment is named by what it serves now ("HousePrice 1.1.0", the new model after a swap), after
the user's own name if it has one ("house-prod · HousePrice 1.1.0"): the list, the page, the
notifications and the API say the same. The user's name is optional, one line of printable text, and
whoever may change the deployment may rename it (page, htmx, API)."""

from __future__ import annotations

import re

import pytest
from django.apps import apps

from acumos_portal.choices import JobStatus
from deployment import services
from deployment.choices import DeploymentStatus, OperationKind, TargetDeployers, TargetKind
from deployment.forms import DeployForm
from deployment.models import Deployment, Operation
from marketplace.models import Notification

from ..factories import DeploymentFactory, OperationFactory, RevisionFactory, SolutionFactory, TargetFactory

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def house(owner):
    solution = SolutionFactory(owner=owner, name="HousePrice")
    return {"v1": RevisionFactory(solution=solution, version="1.0.0"),
            "v2": RevisionFactory(solution=solution, version="1.1.0")}


@pytest.fixture
def target(db):
    return TargetFactory(name="This host", kind=TargetKind.LOCAL, deployers=TargetDeployers.OWNERS)


def unnamed(owner, revision, target, **fields) -> Deployment:
    return DeploymentFactory(name="", revision=revision, target=target, created_by=owner, **fields)


def test_it_is_named_by_what_it_serves_and_by_the_users_name_first(owner, house, target):
    plain = unnamed(owner, house["v1"], target)
    named = DeploymentFactory(name="house-prod", revision=house["v1"], target=target, created_by=owner)
    assert plain.display_name == "HousePrice 1.0.0"
    assert named.display_name == "house-prod · HousePrice 1.0.0"
    assert str(named) == "house-prod · HousePrice 1.0.0 on This host"


def test_deploy_keeps_no_made_up_name(owner, house, target):
    deployment = services.deploy(revision=house["v1"], target=target, user=owner)
    assert deployment.name == "" and deployment.display_name == "HousePrice 1.0.0"
    named = services.deploy(revision=house["v1"], target=target, user=owner, name="  house-prod  ")
    assert named.name == "house-prod"


def test_after_a_swap_the_list_the_page_the_api_and_the_notification_name_the_new_model(
        owner, operator, house, target, client_for, monkeypatch):
    deployment = unnamed(owner, house["v1"], target, status=DeploymentStatus.RUNNING,
                         endpoint_url="http://127.0.0.1:9")
    # The runner's part of the swap, as the task does it: the deployment serves v2 now.
    monkeypatch.setitem(services.ACTIONS, OperationKind.SWAP, lambda operation: services._serving(
        operation, house["v2"], [{"generation": 2, "duration_ms": 3}]))
    swap = OperationFactory(deployment=deployment, kind=OperationKind.SWAP, requested_by=operator,
                            revision=house["v2"], previous_revision=house["v1"])
    services.run_operation(str(swap.pk))
    assert Operation.objects.get(pk=swap.pk).status == JobStatus.SUCCEEDED

    told = Notification.objects.get(user=owner)
    assert told.title == "HousePrice 1.1.0 on This host: Hot swap done by operator"
    client = client_for(owner)
    listed = client.get("/deployments/").content.decode()
    assert '">HousePrice 1.1.0</a>' in listed and ">HousePrice 1.0.0<" not in listed
    page = client.get(f"/deployments/{deployment.pk}/").content.decode()
    assert re.search(r'<h1 id="deployment-title">HousePrice 1.1.0</h1>', page)
    assert '<span id="deployment-crumb">HousePrice 1.1.0</span>' in page
    live = client.get(f"/deployments/{deployment.pk}/panel/").content.decode()  # the polling's answer
    assert '<span id="deployment-crumb" hx-swap-oob="true">HousePrice 1.1.0</span>' in live
    assert "<title>HousePrice 1.1.0 · Deployments" in page
    api = client.get(f"/api/v1/deployments/{deployment.pk}").json()
    assert api["display_name"] == "HousePrice 1.1.0" and api["name"] == ""


@pytest.mark.parametrize(("name", "error"), [
    ("x" * 101, "at most 100 characters"),
    ("house\nprod", "one line of letters"),
    ("house\tprod", "one line of letters"),
    ("house\x07prod", "one line of letters"),
    ("dorp\u202eesuoh", "one line of letters"),  # right-to-left override: reads as another name
])
def test_a_users_name_is_one_printable_line(owner, house, target, client_for, name, error):
    form = DeployForm({"target": target.pk, "name": name, "replicas": 1}, targets=target.__class__.objects.all())
    assert not form.is_valid() and error in " ".join(form.errors["name"])
    with pytest.raises(services.DeploymentRefused, match=error):
        services.deploy(revision=house["v1"], target=target, user=owner, name=name)
    refused = client_for(owner).post("/api/v1/deployments", {"revision": str(house["v1"].pk),
                                                             "target": str(target.pk), "name": name},
                                     content_type="application/json")
    assert refused.status_code == 400 and error in str(refused.json()["error"]["details"]["name"])
    assert not Deployment.objects.exists()


def test_a_users_name_may_hold_any_printable_script(owner, house, target):
    deployment = services.deploy(revision=house["v1"], target=target, user=owner, name="Préço · 房价 (prod)")
    assert deployment.display_name == "Préço · 房价 (prod) · HousePrice 1.0.0"


def test_the_owner_renames_it_on_the_page_without_a_reload(owner, house, target, client_for):
    deployment = unnamed(owner, house["v1"], target, status=DeploymentStatus.RUNNING)
    client = client_for(owner)
    page = client.get(f"/deployments/{deployment.pk}/").content.decode()
    assert f'hx-post="/deployments/{deployment.pk}/rename/"' in page

    answer = client.post(f"/deployments/{deployment.pk}/rename/", {"name": "house-prod"}, **HTMX).content.decode()
    assert 'id="deployment-settings"' in answer and "Saved: it is now “house-prod · HousePrice 1.0.0”" in answer
    assert '<h1 id="deployment-title" hx-swap-oob="true">house-prod · HousePrice 1.0.0</h1>' in answer
    assert '<span id="deployment-crumb" hx-swap-oob="true">house-prod · HousePrice 1.0.0</span>' in answer
    assert Deployment.objects.get(pk=deployment.pk).name == "house-prod"

    bad = client.post(f"/deployments/{deployment.pk}/rename/", {"name": "a\nb"}, **HTMX).content.decode()
    assert "one line of letters" in bad and "Saved" not in bad
    assert Deployment.objects.get(pk=deployment.pk).name == "house-prod"

    plain = client.post(f"/deployments/{deployment.pk}/rename/", {"name": ""})  # no JavaScript: back to the page
    assert plain.status_code == 302 and plain["Location"] == f"/deployments/{deployment.pk}/"
    assert Deployment.objects.get(pk=deployment.pk).display_name == "HousePrice 1.0.0"


def test_renaming_is_for_whoever_may_change_it(owner, other_user, operator, house, target, client_for):
    deployment = unnamed(owner, house["v1"], target)
    assert client_for(other_user).post(f"/deployments/{deployment.pk}/rename/", {"name": "x"}).status_code == 404
    assert client_for(other_user).patch(f"/api/v1/deployments/{deployment.pk}", {"name": "x"},
                                        content_type="application/json").status_code == 404
    by_operator = client_for(operator).patch(f"/api/v1/deployments/{deployment.pk}", {"name": "ops"},
                                             content_type="application/json")
    assert by_operator.status_code == 200 and by_operator.json()["display_name"] == "ops · HousePrice 1.0.0"
    bad = client_for(owner).patch(f"/api/v1/deployments/{deployment.pk}", {"name": "a\u0000b"},
                                  content_type="application/json")
    assert bad.status_code == 400
    kept = client_for(owner).patch(f"/api/v1/deployments/{deployment.pk}", {}, content_type="application/json")
    assert kept.json()["name"] == "ops"  # what is not given stays


def test_the_migration_forgets_names_that_were_made_up_and_keeps_the_users(owner, house, target):
    from importlib import import_module

    migration = import_module("deployment.migrations.0005_names_idempotency_shared")
    made_up = DeploymentFactory(name="HousePrice 1.0.0", revision=house["v2"], target=target, created_by=owner)
    OperationFactory(deployment=made_up, kind=OperationKind.DEPLOY, revision=house["v1"])  # swapped since
    current = DeploymentFactory(name="HousePrice 1.1.0", revision=house["v2"], target=target, created_by=owner)
    chosen = DeploymentFactory(name="house-prod", revision=house["v1"], target=target, created_by=owner)
    migration.forget_made_up_names(apps, None)
    names = dict(Deployment.objects.values_list("pk", "name"))
    assert names == {made_up.pk: "", current.pk: "", chosen.pk: "house-prod"}
