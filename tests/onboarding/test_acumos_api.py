"""The Acumos onboarding API (/onboarding-app/v2/): a push byte for byte as acumos-python-client
sends it (multipart built by `requests`, as the client does), its envelope, the status URL,
JWTs from /auth, re-pushing, and bad input that is refused clearly and leaves nothing behind."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
import requests
from django.test import Client

from marketplace.models import Blob, Revision, Solution
from onboarding.choices import STEPS, JobStatus, StepStatus
from onboarding.models import OnboardingJob

from ..bundles import builders
from ..conftest import PASSWORD

PUSH = "/onboarding-app/v2/models"
AUTH = "/onboarding-app/v2/auth"
ACUMOS_FILES = {"model": ("model.zip", "application/zip"), "metadata": ("metadata.json", "application/json"),
                "schema": ("model.proto", "text/plain"), "license": ("license.json", "application/json")}
ENVELOPE_KEYS = {"status", "errorCode", "errorMessage", "errors"}


def job_url(task_id) -> str:
    return f"/api/v1/onboarding/jobs/{task_id}"


def contents(bundle_parts) -> dict[str, bytes]:
    return {name: path.read_bytes() for name, path in bundle_parts.items()}


def acumos_push(client: Client, parts: dict[str, bytes], authorization: str | None, **headers):
    """POST the parts exactly as acumos-python-client's session._push_model does: `requests` builds the
    multipart body with the client's file names and types; headers Authorization, isCreateMicroservice, deploy."""
    files = {name: (*ACUMOS_FILES[name][:1], data, ACUMOS_FILES[name][1]) for name, data in parts.items()}
    prepared = requests.Request("POST", "http://testserver" + PUSH, files=files).prepare()
    sent = {"isCreateMicroservice": "true", "deploy": "false", **headers}
    if authorization is not None:
        sent["Authorization"] = authorization
    return client.generic("POST", PUSH, prepared.body or b"", content_type=prepared.headers.get("Content-Type", ""),
                          headers=sent)


def without_version(parts: dict[str, bytes]) -> dict[str, bytes]:
    metadata = json.loads(parts["metadata"])
    del metadata["modelVersion"]
    return {**parts, "metadata": json.dumps(metadata).encode()}


def stored_files(root) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_left_nothing(artifact_storage, upload_dir=None):
    assert not OnboardingJob.objects.exists()
    assert not Revision.objects.exists() and not Solution.objects.exists() and not Blob.objects.exists()
    assert stored_files(artifact_storage) == []
    if upload_dir is not None:
        assert stored_files(upload_dir) == []


@pytest.fixture
def login_token(owner, api_token):
    """`<login>:<api token>`, the Acumos form of the Authorization header."""
    return f"{owner.username}:{api_token(owner)}"


# ---------------------------------------------------------------- a push that works

@pytest.mark.django_db
def test_it_accepts_a_push_as_the_acumos_client_sends_it(owner, bundle_parts, login_token):
    response = acumos_push(Client(), contents(bundle_parts), login_token, tracking_id="my-run-42")
    assert response.status_code == 201, response.content
    body = response.json()
    job = OnboardingJob.objects.get()
    assert body["status"] == "SUCCESS"
    assert body["result"] == {"solutionId": str(job.solution_uuid), "revisionId": str(job.revision_uuid),
                              "version": "1.0.0", "name": "IrisClassifier"}
    assert body["taskId"] == str(job.id) and body["trackingId"] == "my-run-42" == job.tracking_id
    assert job.owner == owner and job.source == "api" and job.create_microservice is True
    assert job.status == JobStatus.PENDING


@pytest.mark.django_db
def test_it_makes_a_tracking_id_and_honours_is_create_microservice_false(owner, bundle_parts, login_token):
    response = acumos_push(Client(), contents(bundle_parts), login_token, isCreateMicroservice="false")
    assert response.status_code == 201, response.content
    job = OnboardingJob.objects.get()
    assert job.create_microservice is False
    assert response.json()["trackingId"] == job.tracking_id != ""


@pytest.mark.django_db
def test_it_runs_the_pipeline_and_shows_every_step_at_the_status_url(owner, bundle_parts, login_token,
                                                                      inline_jobs):
    with inline_jobs():
        response = acumos_push(Client(), contents(bundle_parts), login_token)
    assert response.status_code == 201, response.content
    pushed = response.json()
    status = Client().get(job_url(pushed["taskId"]), headers={"Authorization": login_token})
    assert status.status_code == 200, status.content
    job = status.json()
    assert job["id"] == pushed["taskId"]
    assert job["status"] == "succeeded", job["error"]
    assert job["revision"] == pushed["result"]["revisionId"]
    assert job["solution"] == pushed["result"]["solutionId"]
    assert [s["name"] for s in job["steps"]] == [name for name, _ in STEPS]
    for step in job["steps"]:
        assert {"name", "status", "started", "finished", "error"} <= step.keys()
        assert step["status"] in (StepStatus.SUCCEEDED, StepStatus.SKIPPED), step
        assert step["error"] is None
        assert step["finished"] is not None
    revision = Revision.objects.get(pk=pushed["result"]["revisionId"])
    assert revision.is_ready and str(revision.solution_id) == pushed["result"]["solutionId"]


@pytest.mark.django_db
def test_it_shows_no_revision_until_the_pipeline_has_made_it(owner, bundle_parts, login_token):
    pushed = acumos_push(Client(), contents(bundle_parts), login_token).json()
    job = Client().get(job_url(pushed["taskId"]), headers={"Authorization": login_token}).json()
    assert job["status"] == "pending" and job["revision"] is None and job["solution"] is None
    assert {s["status"] for s in job["steps"]} == {"pending"}


# ---------------------------------------------------------------- JWTs from /auth

@pytest.mark.django_db
def test_it_gives_a_jwt_that_works_as_bearer_and_as_a_bare_authorization(owner, bundle_parts):
    response = Client().post(AUTH, {"request_body": {"username": owner.username, "password": PASSWORD}},
                             content_type="application/json")
    assert response.status_code == 200, response.content
    jwt = response.json()["jwtToken"]
    assert response.json()["status"] == "SUCCESS" and response["jwtToken"] == jwt
    pushed = acumos_push(Client(), contents(bundle_parts), f"Bearer {jwt}")
    assert pushed.status_code == 201, pushed.content
    for authorization in (jwt, f"Bearer {jwt}"):
        status = Client().get(job_url(pushed.json()["taskId"]), headers={"Authorization": authorization})
        assert status.status_code == 200, status.content
    again = acumos_push(Client(), without_version(contents(bundle_parts)), jwt)
    assert again.status_code == 201, again.content


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "status", "needle"), [
    pytest.param({"request_body": {"username": "owner", "password": "wrong"}}, 401, "wrong username or password",
                 id="wrong-password"),
    pytest.param({"request_body": {"username": "nobody", "password": PASSWORD}}, 401, "wrong username or password",
                 id="unknown-user"),
    pytest.param({"username": "owner", "password": PASSWORD}, 400, "request_body", id="not-wrapped"),
    pytest.param({"request_body": {"username": "owner"}}, 400, "request_body", id="no-password"),
    pytest.param("[1, 2", 400, "JSON", id="not-json"),
])
def test_it_refuses_bad_credentials_at_auth(owner, body, status, needle):
    data = body if isinstance(body, str) else json.dumps(body)
    response = Client().post(AUTH, data, content_type="application/json")
    assert response.status_code == status, response.content
    answer = response.json()
    assert answer.keys() == ENVELOPE_KEYS and answer["status"] == "ERROR"
    assert needle in answer["errorMessage"]
    assert "jwtToken" not in response


@pytest.mark.django_db
def test_it_refuses_a_jwt_of_a_deactivated_user(owner, bundle_parts):
    jwt = Client().post(AUTH, {"request_body": {"username": owner.username, "password": PASSWORD}},
                        content_type="application/json").json()["jwtToken"]
    owner.is_active = False
    owner.save()
    response = acumos_push(Client(), contents(bundle_parts), jwt)
    assert response.status_code == 401
    assert not OnboardingJob.objects.exists()


# ---------------------------------------------------------------- pushing the same name again

@pytest.mark.django_db
def test_it_adds_a_revision_when_the_same_owner_pushes_the_same_name(owner, bundle_parts, login_token,
                                                                      inline_jobs):
    parts = contents(bundle_parts)
    with inline_jobs():
        first = acumos_push(Client(), parts, login_token).json()
    kept_version = acumos_push(Client(), parts, login_token)
    assert kept_version.status_code == 400
    assert "already exists" in kept_version.json()["errorMessage"]
    assert kept_version.json()["errors"] == [{"field": "modelVersion", "message": "already exists"}]
    with inline_jobs():
        second = acumos_push(Client(), without_version(parts), login_token)
    assert second.status_code == 201, second.content
    second = second.json()
    assert second["result"]["solutionId"] == first["result"]["solutionId"]
    assert second["result"]["version"] == "1.1.0"
    assert second["result"]["revisionId"] != first["result"]["revisionId"]
    assert Solution.objects.count() == 1
    assert sorted(Revision.objects.values_list("version", flat=True)) == ["1.0.0", "1.1.0"]
    assert OnboardingJob.objects.filter(status=JobStatus.SUCCEEDED).count() == 2


@pytest.mark.django_db
def test_it_keeps_the_same_name_of_different_owners_apart(owner, other_user, bundle_parts, api_token):
    parts = contents(bundle_parts)
    mine = acumos_push(Client(), parts, f"owner:{api_token(owner)}").json()
    theirs = acumos_push(Client(), parts, f"other:{api_token(other_user)}").json()
    assert mine["result"]["solutionId"] != theirs["result"]["solutionId"]
    assert mine["result"]["version"] == theirs["result"]["version"] == "1.0.0"


# ---------------------------------------------------------------- bad input

def _metadata(change):
    def make(parts):
        metadata = json.loads(parts["metadata"])
        change(metadata)
        return {**parts, "metadata": json.dumps(metadata).encode()}

    return make


def _replace(name: str, data: bytes):
    return lambda parts: {**parts, name: data}


def _drop(name: str):
    return lambda parts: {k: v for k, v in parts.items() if k != name}


def _package_with(extra: dict[str, bytes]):
    def make(parts):
        with zipfile.ZipFile(io.BytesIO(parts["model"])) as archive:
            entries = {name: archive.read(name) for name in archive.namelist()}
        return {**parts, "model": builders.zip_bytes({**entries, **extra})}

    return make


def _explain_method(metadata):
    metadata["methods"]["explain"] = metadata["methods"]["classify"]


BAD_INPUT = [
    pytest.param(_drop("schema"), {}, "missing required parts: schema", "schema", id="missing-schema"),
    pytest.param(lambda parts: {}, {}, "missing required parts", "model", id="no-parts"),
    pytest.param(_replace("metadata", b'{"name": "Iris",'), {}, "metadata is not valid JSON", "metadata",
                 id="metadata-not-json"),
    pytest.param(_metadata(lambda m: m.pop("name")), {}, "does not match the schema", "(root)",
                 id="metadata-schema-violation"),
    pytest.param(_metadata(lambda m: m.update(methods=[])), {}, "does not match the schema", "methods",
                 id="metadata-methods-not-an-object"),
    pytest.param(_metadata(lambda m: m.update(name="Iris \u202egpj.exe")), {},
                 "name: contains U+202E RIGHT-TO-LEFT OVERRIDE; control and direction characters are not allowed",
                 "name", id="metadata-name-rtl-override"),
    pytest.param(_metadata(lambda m: m.update(name="nul\x00byte")), {}, "name: contains U+0000 NULL", "name",
                 id="metadata-name-nul"),
    pytest.param(_replace("schema", b'syntax = "proto3";\nmessage ClassifyIn {\n  double x = \n}\n'), {},
                 "", "model.proto", id="proto-does-not-compile"),
    pytest.param(_metadata(_explain_method), {}, "method 'explain' is not an rpc", "methods.explain",
                 id="metadata-method-missing-from-proto"),
    pytest.param(_package_with({"../../../../evil-slip.txt": b"owned"}), {}, "outside", None, id="zip-slip"),
    pytest.param(_package_with({"zeros.bin": bytes(50 << 20)}), {}, "zip bomb", None, id="zip-bomb"),
    pytest.param(_replace("model", b"not a zip at all"), {}, "not a readable zip", None, id="package-not-a-zip"),
    pytest.param(_replace("license", b'{"keyword": "x"}'), {}, "license.json does not match the schema", None,
                 id="license-schema-violation"),
    pytest.param(lambda parts: parts, {"isCreateMicroservice": "perhaps"}, "isCreateMicroservice must be true or "
                 "false", "isCreateMicroservice", id="bad-is-create-microservice"),
    pytest.param(lambda parts: parts, {"tracking_id": "t" * 101}, "tracking_id is longer than 100", "tracking_id",
                 id="tracking-id-too-long"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("make_parts", "headers", "needle", "field"), BAD_INPUT)
def test_it_refuses_a_bad_bundle_and_leaves_nothing_behind(owner, bundle_parts, login_token, artifact_storage,
                                                           settings, *, tmp_path, make_parts, headers, needle,
                                                           field):
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "uploads")
    (tmp_path / "uploads").mkdir()
    response = acumos_push(Client(), make_parts(contents(bundle_parts)), login_token, **headers)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body.keys() == ENVELOPE_KEYS
    assert body["status"] == "ERROR" and body["errorCode"] == "INVALID_PARAMETER"
    assert needle in body["errorMessage"] and body["errorMessage"]
    assert body["errors"] and all(e.keys() == {"field", "message"} for e in body["errors"])
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body["errors"]
    assert_left_nothing(artifact_storage, tmp_path / "uploads")
    assert not list(tmp_path.parent.rglob("evil-slip.txt"))


@pytest.mark.django_db
def test_it_refuses_an_upload_over_the_size_limit_with_413(owner, bundle_parts, login_token, artifact_storage,
                                                           settings, *, tmp_path):
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "uploads")
    (tmp_path / "uploads").mkdir()
    settings.ACUMOS_MAX_UPLOAD_BYTES = 4096
    response = acumos_push(Client(), contents(bundle_parts), login_token)
    assert response.status_code == 413, response.content
    body = response.json()
    assert body["status"] == "ERROR" and body["errorCode"] == "PAYLOAD_TOO_LARGE"
    assert "larger than the limit of 4096 bytes" in body["errorMessage"]
    assert_left_nothing(artifact_storage, tmp_path / "uploads")


@pytest.mark.django_db
@pytest.mark.parametrize(("authorization", "needle"), [
    pytest.param(None, "no credentials", id="missing"),
    pytest.param("", "no credentials", id="empty"),
    pytest.param("acu_wrong-token", "wrong, expired or revoked", id="wrong-api-token"),
    pytest.param("owner:acu_wrong-token", "wrong, expired or revoked", id="wrong-login-token"),
    pytest.param("Bearer not.a.jwt", "wrong, expired or revoked", id="wrong-jwt"),
    pytest.param("someone-else:{token}", "wrong, expired or revoked", id="token-of-another-login"),
    pytest.param("{revoked}", "wrong, expired or revoked", id="revoked-token"),
])
def test_it_refuses_a_push_without_the_right_credentials(owner, bundle_parts, api_token, artifact_storage,
                                                          authorization, *, needle):
    from acumos_portal.accounts import services

    token = api_token(owner)
    revoked_token, revoked = services.token_create(user=owner, name="old")
    services.token_revoke(token=revoked_token)
    if authorization is not None:
        authorization = authorization.format(token=token, revoked=revoked)
    response = acumos_push(Client(), contents(bundle_parts), authorization)
    assert response.status_code == 401, response.content
    body = response.json()
    assert body.keys() == ENVELOPE_KEYS and body["errorCode"] == "UNAUTHORIZED"
    assert needle in body["errorMessage"]
    assert_left_nothing(artifact_storage)


@pytest.mark.django_db
def test_it_answers_other_mistakes_in_the_envelope(owner, login_token):
    wrong_method = Client().get(PUSH, headers={"Authorization": login_token})
    assert wrong_method.status_code == 405 and wrong_method.json()["errorCode"] == "METHOD_NOT_ALLOWED"
    not_multipart = Client().post(PUSH, {"model": "x"}, content_type="application/json",
                                  headers={"Authorization": login_token})
    assert not_multipart.status_code == 415 and not_multipart.json()["status"] == "ERROR"
    unknown = Client().post("/onboarding-app/v2/advancedModel", headers={"Authorization": login_token})
    assert unknown.status_code == 404 and unknown.json()["errorCode"] == "NOT_FOUND"
    assert not OnboardingJob.objects.exists()


@pytest.mark.django_db
def test_it_needs_no_csrf_token(owner, bundle_parts, login_token):
    response = acumos_push(Client(enforce_csrf_checks=True), contents(bundle_parts), login_token)
    assert response.status_code == 201, response.content
    unknown = Client(enforce_csrf_checks=True).post("/onboarding-app/v2/nothing", headers={"Authorization": "x"})
    assert unknown.status_code == 404
