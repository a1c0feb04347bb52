"""Who may see and change deployments, as one table: every deployment endpoint of the API and the
pages x every persona. Operators and admins run every deployment; the owner (the model's owner,
who created this deployment) runs their own; anyone else does not see it (404, never 403, so ids
leak nothing). Anonymous API callers get 401, anonymous page visitors the sign-in page.

Operations asked for here are never run (the test's transaction never commits), so no runner is
started: the table is about who may ask.

A second table is about targets: who may deploy a model everyone may see to a target for operators
(operators and admins only) and to a target open to model owners, by the API and the pages. A
target the caller may not use is refused as an unknown one (400 naming `target`), and is neither
listed nor named to them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.test import Client
from django.utils import timezone

from acumos_portal.accounts import services as account_services
from deployment.choices import DeploymentStatus, TargetDeployers, TargetKind
from deployment.models import Deployment, Operation
from marketplace import services as marketplace_services

from ..factories import (
    DeploymentFactory,
    OperationFactory,
    RevisionFactory,
    SolutionFactory,
    TargetFactory,
    published_revision,
)

PERSONAS = ("owner", "other_user", "publisher", "operator", "admin_user", "anonymous")
SEE, HIDDEN = "see", "hidden"


def table(owner, operator, others=404, anonymous=401, admin=None) -> dict:
    return {"owner": owner, "other_user": others, "publisher": others, "operator": operator,
            "admin_user": operator if admin is None else admin, "anonymous": anonymous}


VISIBLE = table(200, 200)
LISTED = table(SEE, SEE, others=HIDDEN)
CHANGE = table(202, 202)
# Swapping in the owner's model: an operator runs the deployment but may not see that (private)
# model, so for them it does not exist.
SWAP = table(202, 400, admin=202)
# Deploying the owner's model: the owner may; an operator may not see it; others do not see it.
DEPLOY = table(202, 400, others=400, admin=202)
PAGE = table(200, 200, anonymous=302)
PAGE_CHANGE = table(302, 302, anonymous=302)  # a redirect back to the page (signed-in) or to sign in
ADMIN_PAGE = table(404, 404, admin=200, anonymous=302)


@dataclass(frozen=True)
class Endpoint:
    method: str
    url: str
    expected: dict
    body: str | None = None  # a key of the world's bodies
    item: str | None = None


API = {
    "list": Endpoint("get", "/api/v1/deployments", LISTED, item="deployment"),
    "detail": Endpoint("get", "/api/v1/deployments/{deployment}", VISIBLE),
    "deploy": Endpoint("post", "/api/v1/deployments", DEPLOY, body="deploy"),
    "swap": Endpoint("post", "/api/v1/deployments/{deployment}/swap", SWAP, body="swap"),
    "rollback": Endpoint("post", "/api/v1/deployments/{deployment}/rollback", CHANGE, body="empty"),
    "stop": Endpoint("post", "/api/v1/deployments/{deployment}/stop", CHANGE),
    "start": Endpoint("post", "/api/v1/deployments/{stopped}/start", CHANGE),
    "destroy": Endpoint("post", "/api/v1/deployments/{stopped}/destroy", CHANGE, body="empty"),
    "operation-list": Endpoint("get", "/api/v1/deployment-operations?deployment={deployment}", LISTED,
                               item="operation"),
    "operation-detail": Endpoint("get", "/api/v1/deployment-operations/{operation}", VISIBLE),
    "target-list": Endpoint("get", "/api/v1/deployment-targets", table(200, 200, others=200)),
}

PAGES = {
    "list": Endpoint("get", "/deployments/", table(SEE, SEE, others=HIDDEN, anonymous=302), item="deployment"),
    "detail": Endpoint("get", "/deployments/{deployment}/", PAGE | {"other_user": 404, "publisher": 404}),
    "panel": Endpoint("get", "/deployments/{deployment}/panel/", PAGE | {"other_user": 404, "publisher": 404}),
    "deploy": Endpoint("post", "/revisions/{revision}/deploy/", table(302, 404, anonymous=302, admin=302),
                       body="deploy_form"),
    "swap": Endpoint("post", "/deployments/{deployment}/swap/", PAGE_CHANGE | {"other_user": 404, "publisher": 404},
                     body="swap_form"),
    "stop": Endpoint("post", "/deployments/{deployment}/stop/", PAGE_CHANGE),
    "start": Endpoint("post", "/deployments/{stopped}/start/", PAGE_CHANGE),
    "destroy": Endpoint("post", "/deployments/{stopped}/destroy/", PAGE_CHANGE),
    "targets": Endpoint("get", "/targets/", ADMIN_PAGE),
    "target-new": Endpoint("get", "/targets/new/", ADMIN_PAGE),
}


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(owner):
    revision = RevisionFactory(solution=SolutionFactory(owner=owner, name="Iris"), version="1.0.0")
    # Like the "This host" of `make run`: model owners deploy there too (the target table is below).
    target = TargetFactory(name="this host", kind=TargetKind.LOCAL, deployers=TargetDeployers.OWNERS)

    def deployment(**fields) -> Deployment:
        return DeploymentFactory(name="iris", target=target, revision=revision, created_by=owner, **fields)

    running = deployment(status=DeploymentStatus.RUNNING, endpoint_url="http://127.0.0.1:9", handle={"pid": 0})
    stopped = deployment(status=DeploymentStatus.STOPPED, handle={"pid": 0},
                         destroy_after=timezone.now() - timedelta(seconds=1))
    operation = OperationFactory(deployment=running, kind="deploy", status="succeeded", revision=revision,
                                 requested_by=owner)
    return SimpleNamespace(revision=revision, target=target, deployment=running, stopped=stopped,
                           operation=operation, bodies={
                               "deploy": {"revision": str(revision.pk), "target": str(target.pk)},
                               "swap": {"revision": str(revision.pk)}, "empty": {},
                               "deploy_form": {"target": str(target.pk), "replicas": 1},
                               "swap_form": {"revision": str(revision.pk)}})


def _client(request, persona: str, api: bool) -> tuple[Client, dict]:
    if persona == "anonymous":
        return Client(), {}
    user = request.getfixturevalue(persona)
    client = Client()
    if not api:
        client.force_login(user)
        return client, {}
    key = account_services.token_create(user=user, name="matrix")[1]
    return client, {"Authorization": f"Bearer {key}"}


def _send(client, endpoint: Endpoint, world, headers: dict, api: bool):
    url = endpoint.url.format(deployment=world.deployment.pk, stopped=world.stopped.pk,
                              operation=world.operation.pk, revision=world.revision.pk)
    if endpoint.method == "get":
        return client.get(url, headers=headers)
    body = world.bodies.get(endpoint.body, {})
    if api:
        return client.post(url, body, content_type="application/json", headers=headers)
    return client.post(url, body, headers=headers)


def _check(response, endpoint: Endpoint, world, expected) -> None:
    if expected in (SEE, HIDDEN):
        assert response.status_code == 200, response.content[:300]
        item = str(getattr(world, endpoint.item).pk)
        if response["Content-Type"].startswith("application/json"):
            listed = item in {entry["id"] for entry in response.json()["results"]}
        else:
            listed = item in response.content.decode()
        assert listed == (expected == SEE)
        return
    assert response.status_code == expected, response.content[:300]


@pytest.mark.django_db
@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("name", list(API))
def test_the_api_allows_only_what_the_table_says(request, world, name, persona):
    endpoint = API[name]
    client, headers = _client(request, persona, api=True)
    response = _send(client, endpoint, world, headers, api=True)
    _check(response, endpoint, world, endpoint.expected[persona])
    if endpoint.expected[persona] == 404:
        assert "Iris" not in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("name", list(PAGES))
def test_the_pages_allow_only_what_the_table_says(request, world, name, persona):
    endpoint = PAGES[name]
    client, headers = _client(request, persona, api=False)
    before = Operation.objects.count()
    response = _send(client, endpoint, world, headers, api=False)
    _check(response, endpoint, world, endpoint.expected[persona])
    changed = Operation.objects.count() > before
    allowed = endpoint.method == "post" and persona in ("owner", "operator", "admin_user")
    if name in ("swap", "deploy") and persona == "operator":
        allowed = False  # they may not see the owner's model
    assert changed == allowed, f"{persona} {name}: an operation was {'' if changed else 'not '}made"


@pytest.mark.django_db
def test_an_operator_swaps_in_a_model_they_can_see(world, operator, client_for):
    theirs = RevisionFactory(solution=SolutionFactory(owner=operator, name="Operator's"))
    response = client_for(operator).post(f"/api/v1/deployments/{world.deployment.pk}/swap",
                                         {"revision": str(theirs.pk)}, content_type="application/json")
    assert response.status_code == 202, response.content
    assert response.json()["revision"] == str(theirs.pk) and response.json()["kind"] == "swap"


@pytest.mark.django_db
def test_no_answer_ever_shows_a_targets_secret_or_a_deployments_admin_token(world, admin_user, client_for):
    world.target.set_secret("apiVersion: v1\nkind: Config\ntoken: very-secret-kubeconfig")
    world.target.save()
    client = client_for(admin_user)
    pages = ["/api/v1/deployment-targets", f"/api/v1/deployments/{world.deployment.pk}", "/targets/",
             f"/targets/{world.target.pk}/", f"/deployments/{world.deployment.pk}/", "/deployments/"]
    token = world.deployment.admin_token()
    for url in pages:
        body = client.get(url).content.decode()
        assert "very-secret-kubeconfig" not in body and world.target.secret_encrypted not in body, url
        assert f'"{token}"' not in body and world.deployment.admin_token_encrypted not in body, url


# ---------------------------------------------------------------- who may deploy to which target

TARGET_PERSONAS = ("owner", "co_owner", "other_user", "publisher", "operator", "admin_user", "anonymous")
# The model is public: everyone signed in sees it, so what is refused is refused for the target's
# sake (or, for others, because only the model's owners deploy it: 403, they see the model).
API_DEPLOY_TO = {
    "operators": {"owner": 400, "co_owner": 400, "other_user": 403, "publisher": 403, "operator": 202,
                  "admin_user": 202, "anonymous": 401},
    "owners": {"owner": 202, "co_owner": 202, "other_user": 403, "publisher": 403, "operator": 202,
               "admin_user": 202, "anonymous": 401},
}
# The page answers a redirect whether it deployed or not (the form says why); whether a deployment
# was made is the answer.
PAGE_DEPLOYS_TO = {
    "operators": {"operator", "admin_user"},
    "owners": {"owner", "co_owner", "operator", "admin_user"},
}
PAGE_STATUS = {"other_user": 403, "publisher": 403}
# The deploy form on the revision page offers (for this model) ...
OFFERED = {"owner": {"owners"}, "co_owner": {"owners"}, "other_user": set(), "publisher": set(),
           "operator": {"operators", "owners"}, "admin_user": {"operators", "owners"}, "anonymous": set()}
# ... and the API lists (for any model the caller owns).
LISTED_TARGETS = OFFERED | {"other_user": {"owners"}, "publisher": {"owners"}}


@pytest.fixture
def targets_world(owner, co_owner, catalogs):
    revision = published_revision(catalogs["company"], owner=owner, name="Shared iris")
    marketplace_services.share(owner, revision.solution, co_owner.username)
    targets = {"operators": TargetFactory(name="production cluster", kind=TargetKind.DOCKER),
               "owners": TargetFactory(name="sandbox host", kind=TargetKind.LOCAL, deployers=TargetDeployers.OWNERS)}
    TargetFactory(name="switched off", kind=TargetKind.LOCAL, deployers=TargetDeployers.OWNERS, enabled=False)
    return SimpleNamespace(revision=revision, targets=targets)


@pytest.mark.django_db
@pytest.mark.parametrize("persona", TARGET_PERSONAS)
@pytest.mark.parametrize("deployers", ["operators", "owners"])
def test_the_api_deploys_only_to_targets_open_to_the_caller(request, targets_world, persona, deployers):
    client, headers = _client(request, persona, api=True)
    target = targets_world.targets[deployers]
    response = client.post("/api/v1/deployments", {"revision": str(targets_world.revision.pk),
                                                   "target": str(target.pk)},
                           content_type="application/json", headers=headers)
    expected = API_DEPLOY_TO[deployers][persona]
    assert response.status_code == expected, response.content
    if expected == 400:  # as for a target that does not exist: the field named, the target not
        error = response.json()["error"]
        assert error["details"] == {"target": ["no enabled target with this id"]}
        assert target.name not in response.content.decode()
    assert Deployment.objects.filter(target=target).exists() == (expected == 202)


@pytest.mark.django_db
@pytest.mark.parametrize("persona", TARGET_PERSONAS)
@pytest.mark.parametrize("deployers", ["operators", "owners"])
def test_the_page_deploys_only_to_targets_open_to_the_caller(request, targets_world, persona, deployers):
    client, _ = _client(request, persona, api=False)
    target = targets_world.targets[deployers]
    response = client.post(f"/revisions/{targets_world.revision.pk}/deploy/", {"target": str(target.pk),
                                                                                "replicas": 1})
    assert response.status_code == PAGE_STATUS.get(persona, 302)
    made = Deployment.objects.filter(target=target).exists()
    assert made == (persona in PAGE_DEPLOYS_TO[deployers]), f"{persona} -> {deployers}"
    if persona in ("owner", "co_owner") and not made:  # refused as an unknown choice, on the page
        page = client.get(response["Location"]).content.decode()
        assert "Select a valid choice" in page and target.name not in page


@pytest.mark.django_db
@pytest.mark.parametrize("persona", TARGET_PERSONAS)
def test_the_deploy_form_and_the_target_list_offer_only_the_targets_open_to_the_caller(
        request, targets_world, persona):
    names = {deployers: target.name for deployers, target in targets_world.targets.items()}
    page_client, _ = _client(request, persona, api=False)
    page = page_client.get(f"/revisions/{targets_world.revision.pk}/").content.decode()
    assert {deployers for deployers, name in names.items() if name in page} == OFFERED[persona]
    assert "switched off" not in page

    api_client, headers = _client(request, persona, api=True)
    listed = api_client.get("/api/v1/deployment-targets", headers=headers)
    if persona == "anonymous":
        assert listed.status_code == 401
        return
    assert {entry["deployers"] for entry in listed.json()["results"]} == LISTED_TARGETS[persona]
    for deployers, target in targets_world.targets.items():
        one = api_client.get(f"/api/v1/deployment-targets/{target.pk}", headers=headers)
        assert one.status_code == (200 if deployers in LISTED_TARGETS[persona] else 404)
