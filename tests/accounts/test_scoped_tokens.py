"""Scoped and expiring API tokens (a retraining hook's onboarding token): it pushes revisions of its solution
through the real Acumos push API and follows their jobs, and nothing else: another model's name is refused
(403, naming both), every other endpoint refuses it (401, saying why), and once expired nobody is
authenticated by it (nor by any expired token)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from acumos_portal.accounts import services as account_services
from acumos_portal.accounts.models import ApiToken
from marketplace.models import Revision
from onboarding.choices import JobStatus
from onboarding.models import OnboardingJob

from ..factories import OnboardingJobFactory, SolutionFactory
from ..onboarding.test_acumos_api import acumos_push, contents, job_url

NAME = "IrisClassifier"  # the example bundle's metadata name
UPLOAD_NAMES = {"model": "model.zip", "metadata": "metadata.json", "schema": "model.proto"}


def scoped(user, solution, *, hours: float = 24) -> str:
    return account_services.token_create(user=user, name="retraining hook: test", solution_id=solution.pk,
                                         expires=timezone.now() + timedelta(hours=hours))[1]


def renamed(parts: dict[str, bytes], name: str) -> dict[str, bytes]:
    metadata = json.loads(parts["metadata"])
    metadata["name"] = name
    return {**parts, "metadata": json.dumps(metadata).encode()}


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.django_db
def test_a_scoped_token_pushes_a_revision_of_its_solution_and_follows_its_job(owner, bundle_parts, inline_jobs):
    solution = SolutionFactory(owner=owner, name=NAME)
    key = scoped(owner, solution)
    with inline_jobs():
        response = acumos_push(Client(), contents(bundle_parts), f"Bearer {key}")
    assert response.status_code == 201, response.content
    pushed = response.json()
    assert pushed["result"]["solutionId"] == str(solution.pk)
    status = Client().get(job_url(pushed["taskId"]), headers=bearer(key))
    assert status.status_code == 200, status.content
    assert status.json()["status"] == JobStatus.SUCCEEDED, status.json()["error"]
    revision = Revision.objects.get(pk=pushed["result"]["revisionId"])
    assert revision.solution_id == solution.pk and revision.is_ready
    assert ApiToken.objects.get(solution_id=solution.pk).last_used is not None


@pytest.mark.django_db
def test_a_scoped_token_is_refused_for_another_models_name_and_leaves_nothing(owner, bundle_parts):
    solution = SolutionFactory(owner=owner, name="HousePrices")
    response = acumos_push(Client(), contents(bundle_parts), f"Bearer {scoped(owner, solution)}")
    assert response.status_code == 403, response.content
    body = response.json()
    assert body["errorCode"] == "FORBIDDEN"
    assert "“HousePrices”" in body["errorMessage"] and f"“{NAME}”" in body["errorMessage"]
    assert str(solution.pk) in body["errorMessage"]
    assert not OnboardingJob.objects.exists()


@pytest.mark.django_db
def test_a_scoped_token_is_refused_on_the_native_upload_for_another_name(owner, bundle_parts):
    solution = SolutionFactory(owner=owner, name=NAME)
    parts = renamed(contents(bundle_parts), "Other")
    files = {name: SimpleUploadedFile(UPLOAD_NAMES[name], data) for name, data in parts.items()}
    response = Client().post("/api/v1/onboarding/jobs", files, headers=bearer(scoped(owner, solution)))
    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "token_scope"
    assert "“Other”" in response.json()["error"]["message"]
    assert not OnboardingJob.objects.exists()


@pytest.mark.django_db
def test_a_scoped_token_may_not_make_a_new_solution_or_push_for_someone_elses(owner, other_user, bundle_parts):
    gone = SolutionFactory(owner=owner, name=NAME)
    key = scoped(owner, gone)
    gone.deleted_at = timezone.now()
    gone.save()
    response = acumos_push(Client(), contents(bundle_parts), f"Bearer {key}")
    assert response.status_code == 403 and "gone or no longer this account's" in response.json()["errorMessage"]
    theirs = SolutionFactory(owner=owner, name=NAME + "2")
    key = scoped(other_user, theirs)  # made for someone who does not own it
    response = acumos_push(Client(), renamed(contents(bundle_parts), NAME + "2"), f"Bearer {key}")
    assert response.status_code == 403
    assert not OnboardingJob.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "url"), [
    ("get", "/api/v1/solutions/"), ("get", "/api/v1/solutions"), ("get", "/api/v1/tokens"),
    ("post", "/api/v1/tokens"), ("get", "/api/v1/deployments"), ("get", "/api/v1/notifications"),
])
def test_a_scoped_token_is_refused_everywhere_else_with_a_clear_401(owner, method, url):
    key = scoped(owner, SolutionFactory(owner=owner, name=NAME))
    response = getattr(Client(), method)(url, headers=bearer(key))
    assert response.status_code == 401, response.content
    message = response.json()["error"]["message"]
    assert "this token is scoped to solution" in message and "/onboarding-app/v2/models" in message
    assert response["WWW-Authenticate"].startswith("Bearer")
    # The same user's own unscoped token works there.
    mine = account_services.token_create(user=owner, name="mine")[1]
    assert getattr(Client(), method)(url, headers=bearer(mine)).status_code in (200, 201)


@pytest.mark.django_db
def test_a_scoped_token_sees_only_its_solutions_jobs(owner):
    solution = SolutionFactory(owner=owner, name=NAME)
    its_job = OnboardingJobFactory(owner=owner, model_name=NAME, solution_uuid=solution.pk)
    other_job = OnboardingJobFactory(owner=owner, model_name="Other")
    key = scoped(owner, solution)
    listed = Client().get("/api/v1/onboarding/jobs", headers=bearer(key))
    assert listed.status_code == 200
    assert [job["id"] for job in listed.json()["results"]] == [str(its_job.pk)]
    assert Client().get(job_url(its_job.pk), headers=bearer(key)).status_code == 200
    assert Client().get(job_url(other_job.pk), headers=bearer(key)).status_code == 404
    # The owner's own token sees both.
    mine = account_services.token_create(user=owner, name="mine")[1]
    assert Client().get(job_url(other_job.pk), headers=bearer(mine)).status_code == 200


@pytest.mark.django_db
def test_an_expired_token_authenticates_nobody(owner, bundle_parts):
    solution = SolutionFactory(owner=owner, name=NAME)
    key = scoped(owner, solution, hours=-1)
    response = acumos_push(Client(), contents(bundle_parts), f"Bearer {key}")
    assert response.status_code == 401 and response.json()["errorCode"] == "UNAUTHORIZED"
    assert not OnboardingJob.objects.exists()
    plain, plain_key = account_services.token_create(user=owner, name="old", expires=timezone.now() - timedelta(1))
    assert Client().get("/api/v1/solutions", headers=bearer(plain_key)).status_code == 401
    assert Client().get("/api/v1/solutions", headers={"Authorization": f"owner:{plain_key}"}).status_code == 401
    assert not plain.active and plain.expired
    ApiToken.objects.filter(pk=plain.pk).update(expires=timezone.now() + timedelta(minutes=5))
    assert Client().get("/api/v1/solutions", headers=bearer(plain_key)).status_code == 200


@pytest.mark.django_db
def test_the_owner_sees_a_scoped_token_in_their_list_and_rotating_keeps_its_scope(owner):
    solution = SolutionFactory(owner=owner, name=NAME)
    scoped(owner, solution)
    mine = account_services.token_create(user=owner, name="mine")[1]
    [listed] = [t for t in Client().get("/api/v1/tokens", headers=bearer(mine)).json() if t["solution"]]
    assert listed["name"] == "retraining hook: test" and listed["solution"] == str(solution.pk)
    assert listed["expires"] is not None and listed["active"] is True
    rotated = Client().post(f"/api/v1/tokens/{listed['id']}/rotate", headers=bearer(mine))
    assert rotated.status_code == 201, rotated.content
    assert rotated.json()["solution"] == str(solution.pk) and rotated.json()["expires"] == listed["expires"]
    new_key = rotated.json()["key"]
    assert Client().get("/api/v1/solutions", headers=bearer(new_key)).status_code == 401
