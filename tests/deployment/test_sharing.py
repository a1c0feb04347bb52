"""Shared for Try it: a deployment's owner (or an operator or admin) opens it to signed-in users' Try it on
the public model page, on its page (htmx, no reload) or by PATCH. deployment.selectors says which
deployment a model page calls (shared_deployment_for) and who may call it (can_try_shared)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from deployment import selectors
from deployment.choices import DeploymentStatus
from deployment.models import Deployment
from marketplace import services as marketplace_services

from ..factories import DeploymentFactory, RevisionFactory, UserFactory, published_revision

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def public(owner, catalogs):
    return published_revision(catalogs["public"], owner=owner, name="HousePrice")


def shared(revision, **fields) -> Deployment:
    fields = {"status": DeploymentStatus.RUNNING, "endpoint_url": "http://127.0.0.1:9", "shared": True,
              "created_by": revision.solution.owner, **fields}
    return DeploymentFactory(revision=revision, **fields)


# ---------------------------------------------------------------- who may try

def test_a_signed_in_user_who_sees_the_version_may_try_a_shared_running_deployment(public, other_user):
    deployment = shared(public)
    assert selectors.can_try_shared(other_user, deployment)
    assert not selectors.can_try_shared(AnonymousUser(), deployment)
    other_user.is_active = False
    other_user.save()
    assert not selectors.can_try_shared(other_user, deployment)


@pytest.mark.parametrize("change", [{"shared": False}, {"status": DeploymentStatus.STOPPED},
                                    {"status": DeploymentStatus.DOWN}, {"endpoint_url": ""}])
def test_only_a_shared_running_deployment_is_tried(public, other_user, change):
    assert not selectors.can_try_shared(other_user, shared(public, **change))


def test_a_version_the_user_may_not_see_is_not_tried(owner, public, other_user):
    unpublished = RevisionFactory(solution=public.solution, version="9.0.0")
    deployment = shared(unpublished)
    assert not selectors.can_try_shared(other_user, deployment)
    assert selectors.can_try_shared(owner, deployment)


# ---------------------------------------------------------------- which deployment

def test_the_newest_version_is_called_then_the_newest_deployment(public, catalogs):
    assert selectors.shared_deployment_for(public.solution) is None
    shared(public, shared=False)
    shared(public, status=DeploymentStatus.STOPPED)
    older_copy = shared(public)
    newer_copy = shared(public)
    assert selectors.shared_deployment_for(public.solution) == newer_copy != older_copy

    newer_version = RevisionFactory(solution=public.solution, version="2.0.0")
    marketplace_services.publish_directly(newer_version, catalogs["public"])
    on_newer = shared(newer_version)
    assert selectors.shared_deployment_for(public.solution) == on_newer
    assert selectors.shared_deployment_for(RevisionFactory().solution) is None  # another model's: none


def test_for_a_user_the_newest_version_they_may_see_is_called(owner, public, other_user):
    on_public = shared(public)
    on_unpublished = shared(RevisionFactory(solution=public.solution, version="9.0.0"))
    assert selectors.shared_deployment_for(public.solution) == on_unpublished
    assert selectors.shared_deployment_for(public.solution, other_user) == on_public
    assert selectors.shared_deployment_for(public.solution, owner) == on_unpublished
    stranger = UserFactory(is_active=False)
    assert selectors.shared_deployment_for(public.solution, stranger) is None


# ---------------------------------------------------------------- who may share

def test_the_owner_shares_it_on_its_page_without_a_reload(owner, public, client_for):
    deployment = shared(public, shared=False)
    client = client_for(owner)
    page = client.get(f"/deployments/{deployment.pk}/").content.decode()
    assert f'hx-post="/deployments/{deployment.pk}/share/"' in page and "Share for Try it</button>" in page

    answer = client.post(f"/deployments/{deployment.pk}/share/", {"shared": "1"}, **HTMX).content.decode()
    assert 'id="deployment-settings"' in answer and "Stop sharing</button>" in answer
    assert 'aria-pressed="true"' in answer and "Shared for Try it: signed-in users" in answer
    assert Deployment.objects.get(pk=deployment.pk).shared

    client.post(f"/deployments/{deployment.pk}/share/", {"shared": "0"}, **HTMX)
    assert not Deployment.objects.get(pk=deployment.pk).shared
    assert client.post(f"/deployments/{deployment.pk}/share/", {"shared": "maybe"}).status_code == 302
    assert not Deployment.objects.get(pk=deployment.pk).shared


@pytest.mark.parametrize(("persona", "page", "api"), [
    ("owner", 302, 200), ("operator", 302, 200), ("admin_user", 302, 200), ("other_user", 404, 404),
])
def test_who_may_share_it(request, public, client_for, persona, page, api):
    deployment = shared(public, shared=False)
    client = client_for(request.getfixturevalue(persona))
    assert client.post(f"/deployments/{deployment.pk}/share/", {"shared": "1"}).status_code == page
    Deployment.objects.filter(pk=deployment.pk).update(shared=False)
    response = client.patch(f"/api/v1/deployments/{deployment.pk}", {"shared": True},
                            content_type="application/json")
    assert response.status_code == api
    assert Deployment.objects.get(pk=deployment.pk).shared is (api == 200)
    if api == 200:
        assert response.json()["shared"] is True


def test_anonymous_callers_cannot_share(public, client):
    deployment = shared(public, shared=False)
    assert client.patch(f"/api/v1/deployments/{deployment.pk}", {"shared": True},
                        content_type="application/json").status_code == 401
    assert client.post(f"/deployments/{deployment.pk}/share/", {"shared": "1"}).status_code == 302
    assert not Deployment.objects.get(pk=deployment.pk).shared
