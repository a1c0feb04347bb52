"""The deployment page follows the deployment without a reload: while an operation runs, its live part
(title badge and actions, status and history, Try it, Hot swap) asks for itself again; the answer
after the operation shows the deployment as it now is: what it serves, with that model's methods and
sample in Try it, and the actions open again."""

from __future__ import annotations

import html as html_text
import json
import re
import shlex
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from acumos_portal.choices import JobStatus
from deployment import selectors
from deployment.choices import DeploymentStatus, OperationKind

from ..bundles import builders
from ..factories import DeploymentFactory, OperationFactory
from .conftest import onboarded

pytestmark = pytest.mark.django_db


def live(client, deployment) -> str:
    response = client.get(f"/deployments/{deployment.pk}/panel/")
    assert response.status_code == 200
    return response.content.decode()


def methods_offered(html: str) -> list[str]:
    picker = re.search(r'<select name="method".*?</select>', html, re.S)
    return re.findall(r'<option value="([^"]+)"', picker.group(0)) if picker else []


def test_the_live_part_polls_during_a_swap_and_then_shows_the_new_model(owner, example_bundle, inline_jobs,
                                                                       tmp_path, client_for):
    iris = onboarded(owner, example_bundle, inline_jobs)
    text = onboarded(owner, builders.text_bundle(tmp_path / "text", tag="live"), inline_jobs)
    deployment = DeploymentFactory(revision=iris, created_by=owner, status=DeploymentStatus.RUNNING,
                                   endpoint_url="http://127.0.0.1:9")
    swap = OperationFactory(deployment=deployment, kind=OperationKind.SWAP, status=JobStatus.RUNNING,
                            requested_by=owner, revision=text)
    client = client_for(owner)

    during = live(client, deployment)
    assert 'id="deployment-live"' in during and 'hx-trigger="every 2s"' in during
    assert methods_offered(during) == ["classify"]
    assert re.search(r'<button class="button" type="submit" disabled>Swap in</button>', during)

    # The operation ends as the task would end it: the runner serves the text model now.
    swap.status = JobStatus.SUCCEEDED
    swap.save()
    deployment.revision = text
    deployment.save()
    after = live(client, deployment)
    assert "hx-trigger" not in after.split("<section", 1)[0]  # the polling stops
    assert methods_offered(after) == ["measure"] and "&quot;text&quot;" in after  # its method and sample
    assert re.search(r'<button class="button" type="submit">Swap in</button>', after)
    assert f"{text.solution.name} {text.version}" in after and "Running" in after
    assert 'hx-confirm="Stop ' in after  # Stop asks before it stops
    # "Call it" is a call to paste: the served model's method with its own sample.
    assert ("curl -X POST http://127.0.0.1:9/model/methods/measure -H &#x27;Content-Type: application/json&#x27; "
            "-d &#x27;{&quot;text&quot;:") in after


def test_the_page_itself_holds_the_live_part_once(owner, client_for):
    deployment = DeploymentFactory(revision__solution__owner=owner, created_by=owner,
                                   status=DeploymentStatus.STOPPED)
    page = client_for(owner).get(f"/deployments/{deployment.pk}/").content.decode()
    assert page.count('id="deployment-live"') == 1
    assert "every 2s" not in page  # nothing runs: it does not poll
    assert 'hx-confirm="Destroy ' in page


def test_a_stopped_deployment_in_its_grace_period_says_when_it_goes_instead_of_offering_destroy(
        owner, admin_user, client_for):
    due = timezone.now() + timedelta(days=2)
    deployment = DeploymentFactory(revision__solution__owner=owner, created_by=owner, destroy_after=due,
                                   status=DeploymentStatus.STOPPED)
    page = client_for(owner).get(f"/deployments/{deployment.pk}/").content.decode()
    assert f"Kept, restartable, until {due:%Y-%m-%d %H:%M} UTC; destroyed then." in page
    assert f"/deployments/{deployment.pk}/destroy/" not in page
    admins = client_for(admin_user).get(f"/deployments/{deployment.pk}/").content.decode()
    assert f"/deployments/{deployment.pk}/destroy/" in admins  # an admin may end the grace period early


def test_call_it_quotes_a_hostile_sample_for_the_shell_and_the_page(owner, client_for, monkeypatch):
    """A sample is the model author's text: in "Call it" it stays one shell argument and plain text."""
    hostile = {"text": "'; rm -rf ~; echo '<script>alert(1)</script>"}
    monkeypatch.setattr(selectors, "samples_of", lambda revision: {"measure": hostile})
    deployment = DeploymentFactory(revision__solution__owner=owner, created_by=owner,
                                   status=DeploymentStatus.RUNNING, endpoint_url="http://127.0.0.1:9")
    html = live(client_for(owner), deployment)
    call = re.search(r"<dt>Call it</dt><dd><code class=\"small\">(.*?)</code>", html, re.S).group(1)
    assert "<script>" not in call and "&lt;script&gt;" in call
    words = shlex.split(html_text.unescape(call))
    assert words[-2] == "-d" and json.loads(words[-1]) == hostile  # one argument, exactly the sample


def test_an_action_sent_by_htmx_answers_the_live_part_with_what_happened_as_a_toast(owner, client_for):
    """Stop, Swap in, Roll back... answer in place: the live part as it now is, and the message that a
    full page would show at its top as a toast (HX-Trigger), so the page is not loaded again."""
    deployment = DeploymentFactory(revision__solution__owner=owner, created_by=owner,
                                   status=DeploymentStatus.RUNNING, endpoint_url="http://127.0.0.1:9")
    client = client_for(owner)
    with mock.patch("deployment.services.jobs.enqueue"):  # the stop itself is the operation tests' business
        response = client.post(f"/deployments/{deployment.pk}/stop/", HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="deployment-live"') and "<html" not in html
    toasts = json.loads(response["HX-Trigger"])["toast"]
    toast = toasts if isinstance(toasts, dict) else toasts[0]
    assert toast == {"level": "success",
                     "text": "Stopping: it is kept and can be started again during the grace period."}
    assert 'hx-trigger="every 2s"' in html  # the stop is under way: the live part follows it
    # Without htmx it is the page, through a redirect, as before.
    with mock.patch("deployment.services.jobs.enqueue"):
        plain = client.post(f"/deployments/{deployment.pk}/check/")
    assert plain.status_code == 302 and plain["Location"] == f"/deployments/{deployment.pk}/"
