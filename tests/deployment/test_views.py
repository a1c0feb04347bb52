"""The deployment list and page show an endpoint, and "Call it", only for a deployment that answers: a
stopped one keeps its old address in the database, but nothing listens there."""

from __future__ import annotations

import re

import pytest

from deployment.choices import DeploymentStatus

from ..factories import DeploymentFactory

pytestmark = pytest.mark.django_db

URL = "http://127.0.0.1:39325"


def row_of(html: str, deployment) -> str:
    return re.search(rf'<tr>\s*<td><a href="/deployments/{deployment.pk}/">.*?</tr>', html, re.S).group(0)


def test_a_stopped_row_shows_no_endpoint_and_a_running_one_does(owner, client_for):
    running = DeploymentFactory(revision__solution__owner=owner, created_by=owner, status=DeploymentStatus.RUNNING,
                                endpoint_url=URL)
    stopped = DeploymentFactory(revision__solution__owner=owner, created_by=owner, status=DeploymentStatus.STOPPED,
                                endpoint_url="http://127.0.0.1:41551")
    html = client_for(owner).get("/deployments/").content.decode()
    assert f"<code class=\"small\">{URL}</code>" in row_of(html, running)
    stopped_row = row_of(html, stopped)
    assert "41551" not in stopped_row and "none while stopped" in stopped_row


def test_a_stopped_deployments_page_offers_no_call(owner, client_for):
    stopped = DeploymentFactory(revision__solution__owner=owner, created_by=owner, status=DeploymentStatus.STOPPED,
                                endpoint_url=URL)
    page = client_for(owner).get(f"/deployments/{stopped.pk}/").content.decode()
    assert "Call it" not in page and URL not in page
    assert "none while stopped: it answers again once started" in page

    stopped.status = DeploymentStatus.RUNNING
    stopped.save()
    page = client_for(owner).get(f"/deployments/{stopped.pk}/").content.decode()
    assert "<dt>Call it</dt>" in page and f"<code>{URL}</code>" in page
