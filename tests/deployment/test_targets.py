"""Targets, as admins configure them on the Targets page: options checked per kind before they are
saved (the message names the option and what is allowed), the secret stored encrypted, never shown
back, and kept when the form leaves it empty; who may deploy to each (operators only, the default,
or model owners too), shown and edited on the page, in the admin and shown by the API."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from deployment.choices import TargetDeployers
from deployment.models import Target


def submit(client, url: str, **fields):
    data = {"name": "edge", "kind": "docker", "options": "{}", "enabled": "on", "secret": "",
            "deployers": "operators", **fields}
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


@pytest.mark.django_db
def test_a_new_target_takes_deployments_from_operators_only_until_an_admin_opens_it(admin_user, client_for):
    assert Target.objects.create(name="made in code", kind="local").deployers == TargetDeployers.OPERATORS
    client = client_for(admin_user)
    form = client.get("/targets/new/").content.decode()
    assert "Who may deploy here" in form and '<option value="operators" selected>' in form

    assert submit(client, "/targets/new/", options={"network": "host"}, deployers="").status_code == 200
    assert not Target.objects.filter(name="edge").exists()  # the choice is required
    assert submit(client, "/targets/new/", options={"network": "host"}).status_code == 302
    target = Target.objects.get(name="edge")
    assert target.deployers == TargetDeployers.OPERATORS
    listing = client.get("/targets/").content.decode()
    assert "Operators and admins only" in listing

    assert submit(client, f"/targets/{target.pk}/", options={"network": "host"}, deployers="owners").status_code == 302
    target.refresh_from_db()
    assert target.deployers == TargetDeployers.OWNERS
    assert "Model owners and licensees too" in client.get("/targets/").content.decode()
    [listed] = [t for t in client.get("/api/v1/deployment-targets").json()["results"] if t["id"] == str(target.pk)]
    assert listed["deployers"] == "owners" and "options" not in listed


@pytest.mark.django_db
def test_the_admin_shows_and_edits_who_may_deploy(admin_user, client_for):
    admin_user.is_staff = admin_user.is_superuser = True
    admin_user.save()
    target = Target.objects.create(name="edge", kind="local")
    client = client_for(admin_user)
    assert "Operators and admins only" in client.get("/admin/deployment/target/").content.decode()
    response = client.post(f"/admin/deployment/target/{target.pk}/change/",
                           {"name": "edge", "kind": "local", "options": "{}", "enabled": "on", "secret": "",
                            "deployers": "owners"})
    assert response.status_code == 302, response.content.decode()[:2000]
    target.refresh_from_db()
    assert target.deployers == TargetDeployers.OWNERS


@pytest.mark.django_db(transaction=True)
def test_targets_made_before_the_field_keep_taking_deployments_from_owners():
    """The migration keeps what existing targets did (owners deployed to every enabled target); new
    ones are for operators only."""
    executor = MigrationExecutor(connection)
    executor.migrate([("deployment", "0002_health_grace_trigger")])
    old_target = executor.loader.project_state([("deployment", "0002_health_grace_trigger")]).apps.get_model(
        "deployment", "Target")
    made = old_target.objects.create(name="This host", kind="local")
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert Target.objects.get(pk=made.pk).deployers == TargetDeployers.OWNERS
    assert Target.objects.create(name="new", kind="local").deployers == TargetDeployers.OPERATORS
