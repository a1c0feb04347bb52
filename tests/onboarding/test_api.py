"""/api/v1/onboarding/jobs: upload (parts or one bundle zip), follow a job, list your jobs; the API's
one error shape {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from marketplace.models import Blob, Revision, Solution
from onboarding.choices import STEPS, JobStatus
from onboarding.models import OnboardingJob
from onboarding.services import onboarding_start

from ..bundles import builders, parts_of

JOBS = "/api/v1/onboarding/jobs"


def uploads(parts) -> dict:
    return {name: SimpleUploadedFile(path.name, path.read_bytes()) for name, path in parts.items()}


def stored_files(root) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_error(response, status: int, code: str, needle: str = ""):
    assert response.status_code == status, response.content
    body = response.json()
    assert body.keys() == {"error"} and body["error"].keys() == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert needle in body["error"]["message"]
    return body["error"]


@pytest.mark.django_db
def test_it_starts_a_job_from_an_upload_and_answers_it(owner, client_for, bundle_parts):
    response = client_for(owner).post(JOBS, {**uploads(bundle_parts), "tracking_id": "web-1",
                                             "create_microservice": "false"})
    assert response.status_code == 201, response.content
    job = response.json()
    stored = OnboardingJob.objects.get()
    assert job["id"] == str(stored.id) and response["Location"] == job["url"] == f"{JOBS}/{stored.id}"
    assert job["status"] == "pending" and job["revision"] is None and job["solution"] is None
    assert job["name"] == "IrisClassifier" and job["version"] == "1.0.0"
    assert job["tracking_id"] == "web-1" and job["create_microservice"] is False and job["source"] == "api"
    assert [s["name"] for s in job["steps"]] == [name for name, _ in STEPS]


@pytest.mark.django_db
def test_it_onboards_an_upload_to_a_ready_revision_and_shows_every_step(owner, api_token, client_for, bundle_parts,
                                                                        inline_jobs):
    with inline_jobs():
        created = client_for(owner).post(JOBS, uploads(bundle_parts)).json()
    response = client_for(None).get(created["url"], headers={"Authorization": f"Bearer {api_token(owner)}"})
    assert response.status_code == 200
    job = response.json()
    assert job["status"] == "succeeded" and job["error"] is None and job["finished"]
    assert job["revision"] == str(OnboardingJob.objects.get().revision_uuid)
    assert Revision.objects.get(pk=job["revision"]).is_ready
    steps = {s["name"]: s for s in job["steps"]}
    assert steps["smoke_test"]["status"] == "succeeded" and '{"species":0}' in steps["smoke_test"]["log"]
    assert steps["build_image"]["status"] == "skipped"
    assert all(s["title"] and s["started"] and s["finished"] for s in job["steps"])


@pytest.mark.django_db
def test_it_takes_the_bundle_as_one_zip(owner, client_for, bundle_parts):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in bundle_parts.values():
            archive.write(path, f"iris/{path.name}")
    response = client_for(owner).post(JOBS, {"bundle": SimpleUploadedFile("iris.zip", buffer.getvalue())})
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "IrisClassifier"


@pytest.mark.django_db
def test_it_shows_the_failing_step_and_no_revision_when_the_pipeline_fails(owner, client_for, tmp_path, inline_jobs):
    bundle = builders.failing_bundle(tmp_path / "failing", fail_on_sample=True)
    with inline_jobs():
        created = client_for(owner).post(JOBS, uploads(parts_of(bundle))).json()
    job = client_for(owner).get(created["url"]).json()
    assert job["status"] == "failed" and job["revision"] is None and job["solution"] is None
    failed = [s for s in job["steps"] if s["status"] == "failed"]
    assert [s["name"] for s in failed] == ["smoke_test"] and "failed its sample" in failed[0]["error"]
    assert "failed its sample" in job["error"]


@pytest.mark.django_db
def test_it_refuses_an_invalid_bundle_with_field_errors_and_leaves_nothing(owner, client_for, bundle_parts, tmp_path,
                                                                            artifact_storage):
    metadata = json.loads(bundle_parts["metadata"].read_text())
    metadata["methods"]["explain"] = metadata["methods"]["classify"]
    changed = tmp_path / "metadata.json"
    changed.write_text(json.dumps(metadata))
    response = client_for(owner).post(JOBS, uploads({**bundle_parts, "metadata": changed}))
    error = assert_error(response, 400, "invalid_bundle", "method 'explain' is not an rpc")
    assert error["details"]["part"] == "schema"
    assert error["details"]["errors"][0]["field"] == "methods.explain"
    assert not OnboardingJob.objects.exists() and stored_files(artifact_storage) == []


@pytest.mark.django_db
def test_it_names_the_missing_parts(owner, client_for, bundle_parts):
    response = client_for(owner).post(JOBS, uploads({"metadata": bundle_parts["metadata"]}))
    error = assert_error(response, 400, "invalid_bundle", "missing required parts")
    assert {e["field"] for e in error["details"]["errors"]} == {"model", "schema"}


@pytest.mark.django_db
def test_it_refuses_an_upload_over_the_limit_with_413(owner, client_for, bundle_parts, settings, artifact_storage):
    settings.ACUMOS_MAX_UPLOAD_BYTES = 1024
    error = assert_error(client_for(owner).post(JOBS, uploads(bundle_parts)), 413, "upload_too_large", "1024 bytes")
    assert error["details"] == {"limit_bytes": 1024}
    assert not OnboardingJob.objects.exists() and stored_files(artifact_storage) == []


@pytest.mark.django_db
def test_it_refuses_a_bad_flag(owner, client_for, bundle_parts):
    response = client_for(owner).post(JOBS, {**uploads(bundle_parts), "create_microservice": "maybe"})
    assert_error(response, 400, "invalid_bundle", "create_microservice must be true or false")
    assert not OnboardingJob.objects.exists()


@pytest.mark.django_db
def test_it_wants_multipart(owner, client_for):
    response = client_for(owner).post(JOBS, {"model": "x"}, content_type="application/json")
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.django_db
def test_it_lists_only_your_own_jobs_unless_an_admin_asks_for_all(owner, other_user, admin_user, client_for,
                                                                  bundle_parts):
    mine = onboarding_start(user=owner, parts=bundle_parts)
    theirs = onboarding_start(user=other_user, parts=bundle_parts)

    def listed(user, query=""):
        response = client_for(user).get(JOBS + query)
        assert response.status_code == 200
        return [job["id"] for job in response.json()["results"]]

    assert listed(owner) == [str(mine.id)]
    assert listed(other_user) == listed(other_user, "?all=true") == [str(theirs.id)]
    assert listed(admin_user) == []
    assert set(listed(admin_user, "?all=true")) == {str(mine.id), str(theirs.id)}
    listing = client_for(owner).get(JOBS).json()
    assert listing["count"] == 1 and "log" not in listing["results"][0]["steps"][0]


@pytest.mark.django_db
def test_it_hides_a_job_from_everyone_but_its_owner_and_admins(owner, other_user, publisher, admin_user, client_for,
                                                               *, bundle_parts):
    job = onboarding_start(user=owner, parts=bundle_parts)
    for user in (owner, admin_user):
        assert client_for(user).get(f"{JOBS}/{job.id}").status_code == 200
    for user in (other_user, publisher):
        assert_error(client_for(user).get(f"{JOBS}/{job.id}"), 404, "not_found", "no such onboarding job")
    assert_error(client_for(owner).get(f"{JOBS}/not-a-uuid"), 404, "not_found")
    assert_error(client_for(None).get(f"{JOBS}/{job.id}"), 401, "not_authenticated")


@pytest.mark.django_db
def test_it_does_not_leave_rows_when_a_job_is_refused(owner, client_for, bundle_parts):
    onboarding_start(user=owner, parts=bundle_parts)
    again = client_for(owner).post(JOBS, uploads(bundle_parts))  # 1.0.0 is reserved by the pending job
    assert_error(again, 400, "invalid_bundle", "already exists")
    assert OnboardingJob.objects.count() == 1
    assert not Revision.objects.exists() and not Solution.objects.exists() and not Blob.objects.exists()
    assert OnboardingJob.objects.get().status == JobStatus.PENDING


@pytest.mark.django_db
def test_it_wants_a_csrf_token_from_a_session_but_not_from_a_token(owner, api_token, bundle_parts):
    session = Client(enforce_csrf_checks=True)
    session.force_login(owner)
    refused = session.post(JOBS, uploads(bundle_parts))
    assert_error(refused, 403, "permission_denied", "CSRF")
    assert not OnboardingJob.objects.exists()
    token = Client(enforce_csrf_checks=True, headers={"Authorization": f"Bearer {api_token(owner)}"})
    assert token.post(JOBS, uploads(bundle_parts)).status_code == 201
