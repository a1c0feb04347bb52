"""Who may do what, as one table: every onboarding, download, image build and token endpoint of the API x every
persona (owner, other_user, publisher, admin_user, anonymous), signed in by session or by API token.

The owner's things are visible to the owner and to portal admins; to anyone else they do not
exist (404, never 403, so ids leak nothing); anonymous callers are asked to authenticate (401),
except on the marketplace's read endpoints, where what is not public does not exist for them (404)
and their lists leave it out.
Uploads make the caller's own job, so every signed-in persona may upload. API tokens are
personal: not even an admin sees or changes another user's (an admin reading or rotating them
could act as that user)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from acumos_portal.accounts import services as account_services
from images.models import ImageBuild
from marketplace import storage
from marketplace.choices import ArtifactKind
from marketplace.models import Artifact
from onboarding.models import OnboardingJob

from .factories import RevisionFactory, SolutionFactory

PERSONAS = ("owner", "other_user", "publisher", "admin_user", "anonymous")
PART_KINDS = {"model": ArtifactKind.MODEL, "metadata": ArtifactKind.METADATA, "schema": ArtifactKind.PROTO}

# Expectations: a status code, or SEE / HIDDEN for lists (200 with or without the owner's item).
SEE, HIDDEN = "see", "hidden"
VISIBLE = {"owner": 200, "other_user": 404, "publisher": 404, "admin_user": 200, "anonymous": 401}
LISTED = {"owner": SEE, "other_user": HIDDEN, "publisher": HIDDEN, "admin_user": SEE, "anonymous": 401}
# The marketplace is readable without signing in (public models): a private one does not exist for
# anonymous callers either (404), and their lists are answered without it.
PUBLIC_READ = {**VISIBLE, "anonymous": 404}
PUBLIC_LIST = {**LISTED, "anonymous": HIDDEN}
UPLOAD = {"owner": 201, "other_user": 201, "publisher": 201, "admin_user": 201, "anonymous": 401}
BUILD = {"owner": 202, "other_user": 404, "publisher": 404, "admin_user": 202, "anonymous": 401}


def personal(status: int) -> dict:
    return {"owner": status, "other_user": 404, "publisher": 404, "admin_user": 404, "anonymous": 401}


@dataclass(frozen=True)
class Endpoint:
    method: str
    url: str  # formatted with the world's ids
    expected: dict
    item: str | None = None  # for lists: the world attribute whose id must (not) be listed
    body: str | None = None  # "upload", "acumos", "json" or "build"
    token_only: bool = False  # the Acumos API takes no session: every session caller gets 401


ENDPOINTS = {
    "job-detail": Endpoint("get", "/api/v1/onboarding/jobs/{job}", VISIBLE),
    "job-list-own": Endpoint("get", "/api/v1/onboarding/jobs", {**LISTED, "admin_user": HIDDEN}, item="job"),
    "job-list-all": Endpoint("get", "/api/v1/onboarding/jobs?all=true", LISTED, item="job"),
    "solution-detail": Endpoint("get", "/api/v1/solutions/{solution}", PUBLIC_READ),
    "solution-list": Endpoint("get", "/api/v1/solutions", PUBLIC_LIST, item="solution"),
    "revision-detail": Endpoint("get", "/api/v1/revisions/{revision}", PUBLIC_READ),
    "revision-list": Endpoint("get", "/api/v1/revisions?solution={solution}", PUBLIC_LIST, item="revision"),
    "revision-artifacts": Endpoint("get", "/api/v1/revisions/{revision}/artifacts", PUBLIC_READ),
    "artifact-detail": Endpoint("get", "/api/v1/artifacts/{artifact}", PUBLIC_READ),
    "artifact-list": Endpoint("get", "/api/v1/artifacts?revision={revision}", PUBLIC_LIST, item="artifact"),
    "artifact-download": Endpoint("get", "/api/v1/artifacts/{artifact}/download", PUBLIC_READ),
    "bundle-download": Endpoint("get", "/api/v1/revisions/{revision}/bundle", PUBLIC_READ),
    "upload": Endpoint("post", "/api/v1/onboarding/jobs", UPLOAD, body="upload"),
    "acumos-push": Endpoint("post", "/onboarding-app/v2/models", UPLOAD, body="acumos", token_only=True),
    "acumos-job-status": Endpoint("get", "/api/v1/onboarding/jobs/{job}", VISIBLE),
    "image-build-list": Endpoint("get", "/api/v1/image-builds?revision={revision}", LISTED, item="image_build"),
    "image-build-detail": Endpoint("get", "/api/v1/image-builds/{image_build}", VISIBLE),
    "image-build-create": Endpoint("post", "/api/v1/image-builds", BUILD, body="build"),
    "token-list": Endpoint("get", "/api/v1/tokens", personal(SEE) | {"other_user": HIDDEN, "publisher": HIDDEN,
                                                                     "admin_user": HIDDEN}, item="token"),
    "token-create": Endpoint("post", "/api/v1/tokens", UPLOAD, body="json"),
    "token-detail": Endpoint("get", "/api/v1/tokens/{token}", personal(200)),
    "token-rotate": Endpoint("post", "/api/v1/tokens/{token}/rotate", personal(201)),
    "token-revoke": Endpoint("delete", "/api/v1/tokens/{token}", personal(204)),
}


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """Personas are made per test; their password hashing is most of this table's time otherwise."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(owner, bundle_parts, settings):
    """The owner's solution, ready revision with stored artifacts, onboarding job, image build and
    API token. Images may be built (a build asked for here is never run: nothing commits)."""
    settings.ACUMOS_IMAGE_BUILDER, settings.ACUMOS_IMAGE_BASE = "daemonless", "127.0.0.1:5000/acumos/runner-base:x"
    revision = RevisionFactory(solution=SolutionFactory(owner=owner, name="Iris"), version="1.0.0")
    for part, path in bundle_parts.items():
        blob, _ = storage.store_file(path)
        Artifact.objects.create(revision=revision, kind=PART_KINDS[part], name=path.name, blob=blob)
    job = OnboardingJob.objects.create(owner=owner, model_name="Iris", solution_uuid=revision.solution_id,
                                       revision_uuid=revision.id, version="1.0.0", status="succeeded")
    token, _ = account_services.token_create(user=owner, name="owner's")
    build = ImageBuild.objects.create(revision=revision, trigger="onboarding", builder="daemonless", status="succeeded")
    return SimpleNamespace(solution=revision.solution, revision=revision, artifact=revision.artifacts.first(),
                           job=job, token=token, image_build=build)


@pytest.fixture
def unversioned(bundle_parts, tmp_path) -> dict[str, bytes]:
    metadata = json.loads(bundle_parts["metadata"].read_text())
    del metadata["modelVersion"]
    return {**{name: path.read_bytes() for name, path in bundle_parts.items()},
            "metadata": json.dumps(metadata).encode()}


def _call(client: Client, endpoint: Endpoint, url: str, parts: dict[str, bytes], headers: dict, build: dict):
    if endpoint.body == "upload":
        files = {name: SimpleUploadedFile(name, data) for name, data in parts.items()}
        return client.post(url, files, headers=headers)
    if endpoint.body == "acumos":
        prepared = requests.Request("POST", "http://testserver" + url, files={
            name: (name, data) for name, data in parts.items()}).prepare()
        return client.generic("POST", url, prepared.body, content_type=prepared.headers["Content-Type"],
                              headers=headers)
    if endpoint.body == "build":
        return client.post(url, build, content_type="application/json", headers=headers)
    if endpoint.body == "json":
        return client.post(url, {"name": "new"}, content_type="application/json", headers=headers)
    return getattr(client, endpoint.method)(url, headers=headers)


def _ids(response) -> set[str]:
    body = response.json()
    items = body["results"] if isinstance(body, dict) else body
    return {str(item["id"]) for item in items}


@pytest.mark.django_db
@pytest.mark.parametrize("auth", ["session", "token"])
@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("name", list(ENDPOINTS))
def test_it_allows_only_what_the_table_says(request, world, unversioned, *, name, persona, auth):
    endpoint = ENDPOINTS[name]
    user = None if persona == "anonymous" else request.getfixturevalue(persona)
    client, headers = Client(), {}
    if user is not None and auth == "session":
        client.force_login(user)
    elif user is not None:
        key = account_services.token_create(user=user, name="matrix")[1]
        headers["Authorization"] = f"{user.username}:{key}" if endpoint.token_only else f"Bearer {key}"
    expected = endpoint.expected[persona]
    if endpoint.token_only and auth == "session":
        expected = 401
    url = endpoint.url.format(**{k: getattr(world, k).pk for k in ("job", "solution", "revision", "artifact",
                                                                    "token", "image_build")})

    response = _call(client, endpoint, url, unversioned, headers, build={"revision": str(world.revision.pk)})

    if expected in (SEE, HIDDEN):
        assert response.status_code == 200, response.content
        listed = str(getattr(world, endpoint.item).pk) in _ids(response)
        assert listed == (expected == SEE), f"{persona} {'should' if expected == SEE else 'should not'} see it"
        return
    assert response.status_code == expected, response.content[:500]
    if expected in (401, 404):
        body = response.json()
        error = body["errorCode"] if endpoint.token_only else body["error"]["code"]
        assert error in ("UNAUTHORIZED", "not_authenticated", "authentication_failed", "not_found"), body
    if expected == 404:
        assert str(world.revision.solution.name) not in response.content.decode()
