"""Targets, as admins configure them on the Targets page: options checked per kind before they are
saved (the message names the option and what is allowed), the secret stored encrypted, never shown
back, and kept when the form leaves it empty."""

from __future__ import annotations

import json

import pytest

from deployment.models import Target


def submit(client, url: str, **fields):
    data = {"name": "edge", "kind": "docker", "options": "{}", "enabled": "on", "secret": "", **fields}
    if isinstance(data["options"], dict):
        data["options"] = json.dumps(data["options"])
    return client.post(url, data)


@pytest.mark.django_db
@pytest.mark.parametrize(("kind", "options", "message"), [
    ("docker", {"network": "overlay"}, "Network &#x27;overlay&#x27; is not allowed: use one of host, bridge"),
    ("docker", {"port_range": "9-1"}, "port_range"),
    ("kubernetes", {"namespace": "Not_A_Name"}, "namespace"),
    ("kubernetes", {"replicas": 3}, "replicas"),
    ("local", {"port": 1}, "Unknown option &#x27;port&#x27; for a local target: allowed are host, workers"),
])
def test_bad_options_are_refused_naming_the_option(admin_user, client_for, kind, options, message):
    response = submit(client_for(admin_user), "/targets/new/", kind=kind, options=options)
    assert response.status_code == 200 and message in response.content.decode()
    assert not Target.objects.exists()


@pytest.mark.django_db
def test_options_that_are_not_json_are_refused(admin_user, client_for):
    response = submit(client_for(admin_user), "/targets/new/", options="{oops")
    assert response.status_code == 200 and "Enter a valid JSON" in response.content.decode()
    assert not Target.objects.exists()


@pytest.mark.django_db
def test_the_secret_is_stored_encrypted_never_shown_and_kept_when_left_empty(admin_user, client_for):
    client = client_for(admin_user)
    secret = '{"username": "robot", "password": "hunter2-registry"}'
    assert submit(client, "/targets/new/", options={"network": "host"}, secret=secret).status_code == 302
    target = Target.objects.get()
    assert target.secret() == secret and "hunter2" not in target.secret_encrypted

    page = client.get(f"/targets/{target.pk}/").content.decode()
    assert "hunter2" not in page and "A secret is set" in page
    assert submit(client, f"/targets/{target.pk}/", name="edge-2", options={"network": "host"}).status_code == 302
    target.refresh_from_db()
    assert target.name == "edge-2" and target.secret() == secret
    listing = client.get("/targets/").content.decode()
    assert "edge-2" in listing and "hunter2" not in listing
