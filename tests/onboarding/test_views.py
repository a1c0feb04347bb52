"""The onboarding page (three files or one bundle zip, plain post or XMLHttpRequest) and the job
page, with the pipeline run inline."""

from __future__ import annotations

import json
import zipfile
from contextlib import ExitStack
from pathlib import Path

import pytest
from django.urls import reverse

from marketplace.choices import RevisionStatus
from marketplace.models import Revision, Solution
from onboarding.choices import STEPS, JobStatus, StepStatus
from onboarding.models import OnboardingJob
from onboarding.services import onboarding_start

from ..bundles import builders, parts_of

pytestmark = pytest.mark.django_db
NEW = "/onboarding/new/"


def post_files(client, files: dict[str, Path], **extra):
    with ExitStack() as stack:
        data = {part: stack.enter_context(open(path, "rb")) for part, path in files.items()}
        return client.post(reverse("onboarding:new"), data, **extra)


def bundle_zip(parts: dict[str, Path], dest: Path, folder: str = "") -> Path:
    names = {"metadata": "metadata.json", "schema": "model.proto", "model": "modelpackage.zip"}
    with zipfile.ZipFile(dest, "w") as archive:
        for part, path in parts.items():
            archive.write(path, folder + names[part])
    return dest


def assert_nothing_made():
    assert not OnboardingJob.objects.exists()
    assert not Revision.objects.exists() and not Solution.objects.exists()


def test_it_serves_the_onboarding_page(client_for, owner):
    response = client_for(owner).get(reverse("onboarding:new"))
    assert response.status_code == 200
    page = response.content.decode()
    assert reverse("onboarding:new") == NEW
    for name in ("metadata", "schema", "model", "license", "bundle"):
        assert f'name="{name}"' in page
    assert 'enctype="multipart/form-data"' in page and "js/upload.js" in page


def test_it_sends_anonymous_uploads_to_sign_in(client, bundle_parts):
    response = post_files(client, bundle_parts)
    assert response.status_code == 302 and response.url.startswith(reverse("accounts:login"))
    assert_nothing_made()


def test_it_onboards_three_files_to_a_ready_revision(client_for, owner, bundle_parts, inline_jobs):
    client = client_for(owner)
    with inline_jobs():
        response = post_files(client, bundle_parts)
    job = OnboardingJob.objects.get()
    assert response.status_code == 302 and response.url == reverse("onboarding:job", args=[job.pk])
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.source == "web"

    page = client.get(response.url).content.decode()
    assert 'hx-trigger="every 1s"' not in page  # done: the steps poll no more (the bell still does)
    assert reverse("marketplace:revision", args=[job.revision_uuid]) in page
    for _, title in STEPS:
        assert title in page

    revision = Revision.objects.get(pk=job.revision_uuid)
    assert revision.status == RevisionStatus.READY
    revision_page = client.get(reverse("marketplace:revision", args=[revision.pk]))
    assert revision_page.status_code == 200
    assert len(revision_page.context["artifacts"]) == 6
    html = revision_page.content.decode()
    for artifact in revision.artifacts.all():
        assert reverse("marketplace:artifact-download", args=[artifact.pk]) in html
        assert artifact.sha256 in html
    assert reverse("marketplace:bundle-download", args=[revision.pk]) in html
    assert "ClassifyIn" in html and "ClassifyOut" in html  # the methods from metadata.json


def test_it_onboards_one_bundle_zip(client_for, owner, bundle_parts, inline_jobs, tmp_path):
    archive = bundle_zip(bundle_parts, tmp_path / "iris.zip", folder="iris/")
    with inline_jobs():
        response = post_files(client_for(owner), {"bundle": archive})
    assert response.status_code == 302
    job = OnboardingJob.objects.get()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert sorted(job.parts) == ["metadata", "model", "schema"]
    assert Revision.objects.get(pk=job.revision_uuid).artifacts.count() == 6


def test_it_answers_an_xhr_upload_with_the_job_location(client_for, owner, bundle_parts, settings):
    response = post_files(client_for(owner), bundle_parts, HTTP_X_REQUESTED_WITH="XMLHttpRequest")
    assert response.status_code == 201
    job = OnboardingJob.objects.get()
    assert response.json() == {"job": str(job.pk), "location": reverse("onboarding:job", args=[job.pk])}


def test_it_shows_a_missing_part_next_to_its_field(client_for, owner, bundle_parts):
    response = post_files(client_for(owner), {"metadata": bundle_parts["metadata"], "schema": bundle_parts["schema"]})
    assert response.status_code == 400
    form = response.context["form"]
    assert "missing required parts" in form.non_field_errors()[0]
    assert form.errors["model"] == ["this part is required"]
    html = response.content.decode()
    assert "The upload is missing required parts: model (modelpackage.zip)" in html
    assert 'id="id_model_errors"' in html
    assert_nothing_made()


def test_it_shows_a_metadata_file_that_is_not_json(client_for, owner, bundle_parts, tmp_path):
    broken = tmp_path / "metadata.json"
    broken.write_text('{"name": "IrisClassifier",')
    response = post_files(client_for(owner), {**bundle_parts, "metadata": broken})
    assert response.status_code == 400
    form = response.context["form"]
    assert form.non_field_errors()[0].startswith("metadata is not valid JSON")
    assert form.errors["metadata"]
    assert "Metadata is not valid JSON" in response.content.decode()
    assert_nothing_made()


def test_it_shows_metadata_schema_errors_with_their_field(client_for, owner, bundle_parts, tmp_path):
    metadata = json.loads(bundle_parts["metadata"].read_text())
    del metadata["methods"]
    changed = tmp_path / "metadata.json"
    changed.write_text(json.dumps(metadata))
    response = post_files(client_for(owner), {**bundle_parts, "metadata": changed})
    assert response.status_code == 400
    assert any("methods" in error for error in response.context["form"].errors["metadata"])
    assert_nothing_made()


def test_it_shows_a_proto_that_does_not_compile(client_for, owner, bundle_parts, tmp_path):
    broken = tmp_path / "model.proto"
    broken.write_text('syntax = "proto3";\nservice Model { rpc classify (ClassifyIn) returns (ClassifyOut); }\n'
                      "message ClassifyIn { double x = 1 }\n")
    response = post_files(client_for(owner), {**bundle_parts, "schema": broken})
    assert response.status_code == 400
    form = response.context["form"]
    assert form.errors["schema"], form.errors
    assert form.non_field_errors()
    assert 'id="id_schema_errors"' in response.content.decode()
    assert_nothing_made()


def test_it_names_the_file_inside_a_bundle_that_is_wrong(client_for, owner, bundle_parts, tmp_path):
    broken = tmp_path / "metadata.json"
    broken.write_text("not json")
    archive = bundle_zip({**bundle_parts, "metadata": broken}, tmp_path / "broken.zip")
    response = post_files(client_for(owner), {"bundle": archive})
    assert response.status_code == 400
    assert response.context["form"].errors["bundle"][0].startswith("metadata.json: ")
    assert_nothing_made()


def test_it_refuses_a_bundle_that_is_not_a_zip(client_for, owner, tmp_path):
    archive = tmp_path / "bundle.zip"
    archive.write_bytes(b"this is not a zip")
    response = post_files(client_for(owner), {"bundle": archive})
    assert response.status_code == 400
    assert "not a readable zip" in response.context["form"].errors["bundle"][0]
    assert_nothing_made()


def test_it_refuses_files_and_a_bundle_together(client_for, owner, bundle_parts, tmp_path):
    archive = bundle_zip(bundle_parts, tmp_path / "iris.zip")
    response = post_files(client_for(owner), {**bundle_parts, "bundle": archive})
    assert response.status_code == 400
    assert "not both" in response.context["form"].non_field_errors()[0]
    assert_nothing_made()


def test_it_asks_for_files_when_none_are_chosen(client_for, owner):
    response = client_for(owner).post(reverse("onboarding:new"), {})
    assert response.status_code == 400
    assert "Choose metadata.json" in response.content.decode()
    assert_nothing_made()


def test_it_answers_a_refused_xhr_upload_with_the_form_alone(client_for, owner, bundle_parts):
    response = post_files(client_for(owner), {"metadata": bundle_parts["metadata"]},
                          HTTP_X_REQUESTED_WITH="XMLHttpRequest")
    assert response.status_code == 400
    html = response.content.decode()
    assert "data-onboard-panel" in html and "<html" not in html
    assert "missing required parts" in html
    assert_nothing_made()


def test_it_refuses_an_upload_over_the_limit(client_for, owner, bundle_parts, settings):
    settings.ACUMOS_MAX_UPLOAD_BYTES = 1000
    response = post_files(client_for(owner), bundle_parts)
    assert response.status_code == 413
    assert "too large" in response.context["form"].non_field_errors()[0]
    assert_nothing_made()


# ---------------------------------------------------------------- the job page

@pytest.fixture
def pending_job(owner, bundle_parts):
    """A job whose tasks never ran (the test transaction never commits)."""
    return onboarding_start(user=owner, parts=bundle_parts, source="web")


def test_it_polls_the_steps_while_the_job_runs(client_for, owner, pending_job):
    client = client_for(owner)
    steps_url = reverse("onboarding:job-steps", args=[pending_job.pk])
    page = client.get(reverse("onboarding:job", args=[pending_job.pk])).content.decode()
    assert f'hx-get="{steps_url}"' in page and 'hx-trigger="every 1s"' in page and "js/htmx.min.js" in page
    partial = client.get(steps_url)
    assert partial.status_code == 200
    html = partial.content.decode()
    assert "<html" not in html and 'hx-trigger="every 1s"' in html
    assert html.count('class="step step--pending"') == len(STEPS)


def test_it_shows_a_running_step_and_stops_polling_when_done(client_for, owner, pending_job):
    from django.utils import timezone

    client = client_for(owner)
    steps_url = reverse("onboarding:job-steps", args=[pending_job.pk])
    pending_job.steps.filter(name="validate_metadata").update(status=StepStatus.RUNNING, started=timezone.now())
    assert 'class="step step--running"' in client.get(steps_url).content.decode()

    pending_job.steps.update(status=StepStatus.FAILED, error="the model is bad", finished=timezone.now())
    OnboardingJob.objects.filter(pk=pending_job.pk).update(status=JobStatus.FAILED, error="the model is bad")
    html = client.get(steps_url).content.decode()
    assert "hx-trigger" not in html
    assert "Onboarding failed" in html and "the model is bad" in html


def test_it_hides_a_job_from_other_users(client_for, other_user, pending_job):
    client = client_for(other_user)
    assert client.get(reverse("onboarding:job", args=[pending_job.pk])).status_code == 404
    assert client.get(reverse("onboarding:job-steps", args=[pending_job.pk])).status_code == 404


def test_it_shows_any_job_to_a_portal_admin(client_for, admin_user, pending_job):
    assert client_for(admin_user).get(reverse("onboarding:job", args=[pending_job.pk])).status_code == 200


def test_it_sends_anonymous_visitors_of_a_job_to_sign_in(client, pending_job):
    response = client.get(reverse("onboarding:job", args=[pending_job.pk]))
    assert response.status_code == 302 and response.url.startswith(reverse("accounts:login"))


def test_it_refuses_an_upload_over_the_limit_with_csrf_checks(owner, bundle_parts, settings):
    from django.test import Client

    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(owner)
    client.get(reverse("onboarding:new"))
    settings.ACUMOS_MAX_UPLOAD_BYTES = 1000
    with ExitStack() as stack:
        data = {part: stack.enter_context(open(path, "rb")) for part, path in bundle_parts.items()}
        data["csrfmiddlewaretoken"] = client.cookies["csrftoken"].value
        response = client.post(reverse("onboarding:new"), data)
    assert response.status_code == 413
    assert_nothing_made()


@pytest.mark.django_db
def test_a_failed_job_says_where_it_failed_in_a_sentence(client_for, owner, tmp_path, inline_jobs):
    bundle = builders.failing_bundle(tmp_path / "failing", fail_on_sample=True)
    with inline_jobs():
        job = onboarding_start(user=owner, parts=parts_of(bundle))
    html = client_for(owner).get(reverse("onboarding:job", args=[job.pk])).content.decode()
    smoke = [name for name, _ in STEPS].index("smoke_test") + 1
    assert f"failed at step {smoke} of {len(STEPS)}: Smoke-test the model in a runner" in html
    assert "steps finished" not in html
    # What failed, as a sentence ending with the exception's own line; no machine envelope.
    assert "ValueError: negative input is not supported by this model" in html
    assert '{"error"' not in html and "&quot;error&quot;" not in html
