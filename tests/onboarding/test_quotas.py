"""The onboarding quota (ACUMOS_QUOTA_ONBOARDING_JOBS, 2 by default): a user with that many jobs
pending or running is refused another upload by every way in (the page, /api/v1/onboarding/jobs,
the Acumos push), admins too, with 429 and a message that says the quota and how to free a slot;
the refused upload leaves nothing behind. A job that ends frees its slot. Two uploads at once at
the last slot, on real threads against PostgreSQL, start one job, not two."""

from __future__ import annotations

import time
import uuid

import pytest
from django.test import Client
from django.urls import reverse

from acumos_portal import jobs
from marketplace.models import Blob, Revision, Solution
from onboarding import services
from onboarding.choices import JobStatus
from onboarding.models import OnboardingJob
from onboarding.services import OnboardingQuotaReached, onboarding_start

from ..concurrency import at_once
from .test_acumos_api import acumos_push, contents
from .test_api import JOBS, assert_error, stored_files, uploads
from .test_views import post_files

AT_QUOTA = ("You have 2 onboarding jobs in flight, the most allowed per user: wait for one to finish "
            "(each job's page shows its steps), then upload again.")


@pytest.fixture(params=["owner", "admin_user"])
def uploader(request):
    """Admins are held to it too: every job runs the uploaded model's code in its smoke test."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def upload_dir(settings, tmp_path):
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "uploads")
    (tmp_path / "uploads").mkdir()
    return tmp_path / "uploads"


def in_flight(user, count: int, status=JobStatus.RUNNING) -> list[OnboardingJob]:
    return [OnboardingJob.objects.create(owner=user, status=status, model_name=f"Busy{n}", version="1.0.0",
                                         solution_uuid=uuid.uuid4()) for n in range(count)]


def assert_nothing_left(held: list[OnboardingJob], artifact_storage, upload_dir) -> None:
    assert set(OnboardingJob.objects.all()) == set(held)
    assert not Solution.objects.exists() and not Revision.objects.exists() and not Blob.objects.exists()
    assert stored_files(artifact_storage) == [] and stored_files(upload_dir) == []


@pytest.mark.django_db
def test_the_default_quota_is_two_jobs_in_flight(settings):
    assert settings.ACUMOS_QUOTA_ONBOARDING_JOBS == 2


@pytest.mark.django_db
def test_the_native_api_answers_429_with_the_quota_and_leaves_nothing(uploader, client_for, bundle_parts,
                                                                      artifact_storage, upload_dir):
    held = in_flight(uploader, 1, JobStatus.PENDING) + in_flight(uploader, 1)
    response = client_for(uploader).post(JOBS, uploads(bundle_parts))
    error = assert_error(response, 429, "quota_exceeded")
    assert error["message"] == AT_QUOTA
    assert error["details"] == {"quota": 2, "in_flight": 2, "jobs": [str(job.pk) for job in held],
                                "setting": "ACUMOS_QUOTA_ONBOARDING_JOBS"}
    assert_nothing_left(held, artifact_storage, upload_dir)


@pytest.mark.django_db
def test_the_acumos_push_answers_429_in_its_envelope_and_leaves_nothing(uploader, api_token, bundle_parts,
                                                                         artifact_storage, upload_dir):
    held = in_flight(uploader, 2)
    response = acumos_push(Client(), contents(bundle_parts), f"{uploader.username}:{api_token(uploader)}")
    assert response.status_code == 429, response.content
    body = response.json()
    assert body == {"status": "ERROR", "errorCode": "QUOTA_EXCEEDED", "errorMessage": AT_QUOTA,
                    "errors": [{"field": "", "message": "at most 2 jobs in flight"}]}
    assert_nothing_left(held, artifact_storage, upload_dir)


@pytest.mark.django_db
@pytest.mark.parametrize("xhr", [False, True])
def test_the_page_says_it_on_the_form_and_leaves_nothing(owner, client_for, bundle_parts, artifact_storage,
                                                          upload_dir, xhr):
    held = in_flight(owner, 2)
    client = client_for(owner)
    extra = {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest"} if xhr else {}
    response = post_files(client, bundle_parts, **extra)
    assert response.status_code == 429 and response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    form = html.split("data-onboard-panel")[1]
    assert "The upload was not accepted" in form and AT_QUOTA.replace("'", "&#x27;") in form
    assert_nothing_left(held, artifact_storage, upload_dir)

    page = client.get(reverse("onboarding:new")).content.decode()  # said before anything is chosen too
    assert AT_QUOTA.replace("'", "&#x27;") in page and 'name="metadata"' in page


@pytest.mark.django_db
def test_a_job_that_ends_frees_its_slot(owner, client_for, bundle_parts):
    failing, _ = in_flight(owner, 2)
    client = client_for(owner)
    assert client.post(JOBS, uploads(bundle_parts)).status_code == 429
    OnboardingJob.objects.filter(pk=failing.pk).update(status=JobStatus.FAILED)
    made = client.post(JOBS, uploads(bundle_parts))
    assert made.status_code == 201
    assert client.post(JOBS, uploads(bundle_parts)).status_code == 429  # the new one is in flight
    OnboardingJob.objects.filter(pk=made.json()["id"]).update(status=JobStatus.SUCCEEDED)
    assert client.post(JOBS, uploads(bundle_parts)).status_code == 201


@pytest.mark.django_db
def test_it_counts_only_the_users_own_jobs_in_flight(owner, other_user, client_for, bundle_parts):
    in_flight(other_user, 3)
    in_flight(owner, 1)
    in_flight(owner, 4, JobStatus.SUCCEEDED)
    in_flight(owner, 4, JobStatus.FAILED)
    assert client_for(owner).post(JOBS, uploads(bundle_parts)).status_code == 201


@pytest.mark.django_db
def test_the_service_refuses_too_and_a_lowered_quota_says_how_many_to_wait_for(owner, bundle_parts, settings,
                                                                               artifact_storage):
    in_flight(owner, 3)
    settings.ACUMOS_QUOTA_ONBOARDING_JOBS = 1
    with pytest.raises(OnboardingQuotaReached) as refused:
        onboarding_start(user=owner, parts=bundle_parts)
    assert refused.value.message == ("You have 3 onboarding jobs in flight and the most allowed per user is 1: "
                                     "wait for 3 to finish (each job's page shows its steps), then upload again.")
    assert OnboardingJob.objects.count() == 3 and stored_files(artifact_storage) == []


@pytest.mark.django_db(transaction=True)
def test_two_uploads_at_once_at_the_last_slot_start_one_job(owner, bundle_parts, artifact_storage, upload_dir,
                                                            monkeypatch):
    """Both pass the check made before the body is read; the one that holds is made under the
    user's row lock, so the second counts after the first has committed its job. Without the lock
    both would count one (the wrapper holds each upload between its count and its job)."""
    [held] = in_flight(owner, 1)
    monkeypatch.setattr(jobs, "enqueue", lambda task, *args: None)  # the pipeline does not run
    create_job = services._create_job

    def slow_create(*args, **kwargs):
        time.sleep(0.5)
        return create_job(*args, **kwargs)

    monkeypatch.setattr(services, "_create_job", slow_create)
    clients = [Client(), Client()]
    for client in clients:
        client.force_login(owner)
    answers = at_once(*(lambda client=client: client.post(JOBS, uploads(bundle_parts)) for client in clients))
    assert sorted(response.status_code for response in answers) == [201, 429]
    [refused] = [response for response in answers if response.status_code == 429]
    assert refused.json()["error"]["message"] == AT_QUOTA
    [made] = OnboardingJob.objects.exclude(pk=held.pk)
    assert {path.split("/")[1] for path in stored_files(artifact_storage)} == {str(made.pk)}  # staged: its own only
    assert stored_files(upload_dir) == []
