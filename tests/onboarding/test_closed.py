"""Onboarding closed by an admin (SiteSettings.onboarding_open off): the upload page says so and has
no form, and every way in (the page's POST, /api/v1/onboarding/jobs, the Acumos push) is refused
with 503 for everyone, admins included, before anything is stored."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from acumos_portal.accounts.models import SiteSettings
from marketplace.models import Blob, Revision, Solution
from onboarding.models import OnboardingJob
from onboarding.services import OnboardingClosed, onboarding_start

from .test_acumos_api import acumos_push, contents
from .test_api import JOBS, stored_files, uploads
from .test_views import post_files

pytestmark = pytest.mark.django_db
CLOSED_TITLE = "Onboarding is closed on this site"


@pytest.fixture
def closed(db):
    settings = SiteSettings.current()
    settings.onboarding_open = False
    settings.save()
    return settings


@pytest.fixture(params=["owner", "admin_user"])
def uploader(request):
    """Admins are refused too: closing is for everyone."""
    return request.getfixturevalue(request.param)


def assert_nothing_stored(artifact_storage):
    assert not OnboardingJob.objects.exists()
    assert not Solution.objects.exists() and not Revision.objects.exists() and not Blob.objects.exists()
    assert stored_files(artifact_storage) == []


def test_the_page_says_it_is_closed_and_has_no_form(closed, uploader, client_for):
    response = client_for(uploader).get(reverse("onboarding:new"))
    assert response.status_code == 200
    html = response.content.decode()
    assert CLOSED_TITLE in html
    assert "<form" not in html.split('id="main"')[1].split("</main>")[0]  # the sign-out form is in the header
    assert 'name="metadata"' not in html


def test_the_page_refuses_a_post(closed, uploader, client_for, bundle_parts, artifact_storage):
    response = post_files(client_for(uploader), bundle_parts)
    assert response.status_code == 503
    assert CLOSED_TITLE in response.content.decode()
    assert_nothing_stored(artifact_storage)


def test_the_page_refuses_an_xhr_post_with_the_message_upload_js_can_show(closed, owner, client_for, bundle_parts):
    response = post_files(client_for(owner), bundle_parts, HTTP_X_REQUESTED_WITH="XMLHttpRequest")
    assert response.status_code == 503 and response["Content-Type"].startswith("text/html")
    assert "data-onboard-panel" in response.content.decode()
    assert not OnboardingJob.objects.exists()


def test_the_native_api_answers_503_with_the_reason(closed, uploader, client_for, bundle_parts, artifact_storage):
    response = client_for(uploader).post(JOBS, uploads(bundle_parts))
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "onboarding_closed" and "closed" in error["message"]
    assert_nothing_stored(artifact_storage)


def test_the_acumos_api_answers_503_in_its_envelope(closed, uploader, api_token, bundle_parts, artifact_storage):
    authorization = f"{uploader.username}:{api_token(uploader)}"
    response = acumos_push(Client(), contents(bundle_parts), authorization)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "ERROR" and body["errorCode"] == "ONBOARDING_CLOSED"
    assert "closed" in body["errorMessage"]
    assert_nothing_stored(artifact_storage)


def test_the_acumos_api_still_asks_anonymous_callers_to_authenticate(closed, bundle_parts):
    assert acumos_push(Client(), contents(bundle_parts), None).status_code == 401


def test_the_service_refuses_too(closed, owner, bundle_parts, artifact_storage):
    with pytest.raises(OnboardingClosed):
        onboarding_start(user=owner, parts=bundle_parts)
    assert_nothing_stored(artifact_storage)


def test_reopening_takes_uploads_again(closed, owner, client_for, bundle_parts):
    closed.onboarding_open = True
    closed.save()
    client = client_for(owner)
    assert 'name="metadata"' in client.get(reverse("onboarding:new")).content.decode()
    assert client.post(JOBS, uploads(bundle_parts)).status_code == 201
    assert OnboardingJob.objects.count() == 1
