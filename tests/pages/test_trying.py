"""Try it on the model page (pages.views.trying): a signed-in consumer of a public model calls a
deployment its owner shared for trying, through the portal, with a per-user limit; the panel says who
may deploy. Against a real runner in the sandbox (the local target)."""

from __future__ import annotations

import json
import re

import pytest
from django.core.cache import cache

from deployment import services as deployment_services
from deployment.choices import DeploymentStatus
from marketplace import services as marketplace_services

from ..deployment.conftest import deployments_dir, local_target, onboarded, run  # noqa: F401 (fixtures)
from ..factories import DeploymentFactory, published_revision

pytestmark = pytest.mark.django_db


def panel(client, solution) -> str:
    response = client.get(f"/models/{solution.pk}/try/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.content.decode()


def send(client, solution, method: str, body: dict) -> str:
    response = client.post(f"/models/{solution.pk}/try/send/", {"method": method, "body": json.dumps(body)},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def public_iris(owner, example_bundle, inline_jobs, catalogs):
    revision = onboarded(owner, example_bundle, inline_jobs)
    marketplace_services.publish_directly(revision, catalogs["public"])
    return revision


@pytest.fixture
def shared_iris(public_iris, owner, local_target):  # noqa: F811 (a fixture)
    deployment = deployment_services.deploy(revision=public_iris, target=local_target, user=owner)
    run(deployment.operations.get())
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.RUNNING
    deployment.shared = True
    deployment.save(update_fields=["shared"])
    cache.clear()  # the per-user counts of other tests
    return deployment


def test_a_consumer_tries_a_shared_deployment_through_the_portal_without_learning_where_it_runs(
        shared_iris, public_iris, other_user, client_for):
    client = client_for(other_user)
    html = panel(client, public_iris.solution)
    assert 'option value="classify"' in html and "sepal_length" in html  # the method, with the model's sample
    assert "Deploying this model here is for its owners, operators and admins" in html

    answer = send(client, public_iris.solution, "classify",
                  {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2})
    assert '&quot;species&quot;' in answer
    endpoint = shared_iris.endpoint_url.split("//", 1)[1]
    assert endpoint not in html and endpoint not in answer

    refused = send(client, public_iris.solution, "classify", {"sepal_length": "x"})
    assert 'role="alert"' in refused and "sepal_length" in refused
    assert endpoint not in refused
    unknown = send(client, public_iris.solution, "shutdown", {})
    assert "is not a method this deployment serves: classify" in unknown


def test_each_user_has_a_limit_per_minute_said_in_a_sentence(shared_iris, public_iris, other_user, client_for,
                                                             settings):
    settings.ACUMOS_SHARED_TRY_PER_MINUTE = 2
    client = client_for(other_user)
    body = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    for _ in range(2):
        assert '&quot;species&quot;' in send(client, public_iris.solution, "classify", body)
    third = send(client, public_iris.solution, "classify", body)
    assert '&quot;species&quot;' not in third and re.search(r"2 tries a minute", third)


def test_an_unshared_deployment_is_not_offered_and_not_callable(shared_iris, public_iris, other_user, client_for):
    shared_iris.shared = False
    shared_iris.save(update_fields=["shared"])
    client = client_for(other_user)
    assert "No running deployment of this model is shared for trying yet" in panel(client, public_iris.solution)
    answer = send(client, public_iris.solution, "classify", {"sepal_length": 1})
    assert "is shared for trying any more" in answer and '&quot;species&quot;' not in answer


def test_who_may_deploy_is_said_to_each(owner, other_user, client_for, catalogs, client):
    revision = published_revision(catalogs["public"], owner=owner)
    solution = revision.solution
    assert "You may deploy this model" in panel(client_for(owner), solution)
    assert "Share one of yours from its deployment page" in panel(client_for(owner), solution)
    consumer = panel(client_for(other_user), solution)
    assert "Deploying this model here is for its owners, operators and admins" in consumer
    assert "Share one of yours" not in consumer
    anonymous = panel(client, solution)
    assert "Sign in to try it" in anonymous and "<form" not in anonymous


def test_a_model_the_user_may_not_see_has_no_try_panel(owner, other_user, client_for):
    private = DeploymentFactory(revision__solution__owner=owner, created_by=owner, shared=True,
                                status=DeploymentStatus.RUNNING, endpoint_url="http://127.0.0.1:9")
    solution = private.revision.solution
    client = client_for(other_user)
    assert client.get(f"/models/{solution.pk}/try/").status_code == 404
    assert client.post(f"/models/{solution.pk}/try/send/", {"method": "x", "body": "{}"}).status_code == 404


def test_sending_needs_a_signed_in_user(public_iris, client):
    response = client.post(f"/models/{public_iris.solution.pk}/try/send/", {"method": "classify", "body": "{}"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_a_body_too_long_or_nested_too_deeply_is_a_sentence_not_a_crash(shared_iris, public_iris, other_user,
                                                                       client_for):
    client = client_for(other_user)
    url = f"/models/{public_iris.solution.pk}/try/send/"
    deep = client.post(url, {"method": "classify", "body": '{"a":' + "[" * 5000 + "]" * 5000 + "}"},
                       HTTP_HX_REQUEST="true")
    assert deep.status_code == 200 and "nested too deeply" in deep.content.decode()
    long = client.post(url, {"method": "classify", "body": json.dumps({"x": "a" * 70_000})}, HTTP_HX_REQUEST="true")
    assert long.status_code == 200 and "the most Try it sends" in long.content.decode()


def test_a_busy_site_refuses_a_try_in_a_sentence_and_frees_its_place(shared_iris, public_iris, other_user,
                                                                     client_for, settings):
    settings.ACUMOS_SHARED_TRY_CONCURRENT = 1
    client = client_for(other_user)
    body = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    with deployment_services._try_slot():  # another thread's try is waiting for a runner
        busy = send(client, public_iris.solution, "classify", body)
    assert "Try it is busy on this site right now" in busy and "&quot;species&quot;" not in busy
    assert "&quot;species&quot;" in send(client, public_iris.solution, "classify", body)  # the place is free again
