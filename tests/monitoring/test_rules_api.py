"""The alert rules and alerts API: GET /api/v1/deployments/{id}/alert-rules (the effective rules, saved or
default), PUT and DELETE .../alert-rules/{kind} (set; back to the default), GET .../alerts (what fired). Who may,
as a table over the personas (as tests/deployment/test_permissions.py: whoever does not see the deployment gets
404, never 403; anonymous callers 401); and what set_rule refuses, answered 400 naming the field."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from acumos_portal.accounts import services as account_services
from deployment.choices import DeploymentStatus
from monitoring import alerts
from monitoring.choices import AlertState, RuleKind
from monitoring.models import Alert, AlertRule

from ..factories import DeploymentFactory, RevisionFactory, SolutionFactory

pytestmark = pytest.mark.django_db
PERSONAS = ("owner", "other_user", "publisher", "operator", "admin_user", "anonymous")
# The owner created the deployment; operators and admins run every deployment; the others do not see it.
READ = {"owner": 200, "other_user": 404, "publisher": 404, "operator": 200, "admin_user": 200, "anonymous": 401}
CHANGE = READ


@pytest.fixture
def deployment(owner):
    revision = RevisionFactory(solution=SolutionFactory(owner=owner, name="Iris"), version="1.0.0")
    return DeploymentFactory(name="iris", revision=revision, created_by=owner, status=DeploymentStatus.RUNNING,
                             endpoint_url="http://127.0.0.1:9")


def caller(request, persona: str) -> tuple[Client, dict]:
    if persona == "anonymous":
        return Client(), {}
    key = account_services.token_create(user=request.getfixturevalue(persona), name="rules")[1]
    return Client(), {"Authorization": f"Bearer {key}"}


def rules_url(deployment, kind: str = "") -> str:
    return f"/api/v1/deployments/{deployment.pk}/alert-rules" + (f"/{kind}" if kind else "")


def put(client, headers, deployment, kind, body):
    return client.put(rules_url(deployment, kind), body, content_type="application/json", headers=headers)


# ---------------------------------------------------------------- who may


@pytest.mark.parametrize("persona", PERSONAS)
def test_whoever_sees_the_deployment_reads_its_rules_and_alerts(request, deployment, persona):
    client, headers = caller(request, persona)
    for url in (rules_url(deployment), f"/api/v1/deployments/{deployment.pk}/alerts"):
        response = client.get(url, headers=headers)
        assert response.status_code == READ[persona], (url, response.content[:300])
        if response.status_code == 404:
            assert "Iris" not in response.content.decode() and "iris" not in response.content.decode()


@pytest.mark.parametrize("persona", PERSONAS)
def test_whoever_manages_the_deployment_sets_and_resets_its_rules(request, deployment, persona):
    client, headers = caller(request, persona)
    response = put(client, headers, deployment, RuleKind.P99, {"threshold": 250, "windows": 2, "enabled": True})
    assert response.status_code == CHANGE[persona], response.content[:300]
    saved = AlertRule.objects.filter(deployment=deployment, kind=RuleKind.P99).first()
    assert (saved is not None) == (CHANGE[persona] == 200)
    if saved is not None:
        assert (saved.threshold, saved.windows, saved.created_by.username) == (250.0, 2, response.json()["created_by"])
    response = client.delete(rules_url(deployment, RuleKind.P99), headers=headers)
    assert response.status_code == CHANGE[persona], response.content[:300]
    assert not AlertRule.objects.filter(deployment=deployment).exists()


def test_one_who_sees_but_may_not_manage_is_refused_403(client_for, owner, deployment, monkeypatch):
    """No persona sees a deployment it may not manage today (visible_deployments and can_manage agree); the day
    they differ, set_rule's own check (can_manage) answers 403 rather than changing the rule."""
    monkeypatch.setattr(alerts, "can_manage", lambda user, deployment: False)
    response = client_for(owner).put(rules_url(deployment, RuleKind.P99), {"threshold": 250},
                                     content_type="application/json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert "only whoever created this deployment" in response.json()["error"]["message"]
    assert not AlertRule.objects.exists()


# ---------------------------------------------------------------- what it answers


def test_the_rules_are_the_defaults_until_one_is_set_and_again_after_it_is_reset(client_for, owner, deployment):
    client = client_for(owner)
    rules = client.get(rules_url(deployment)).json()
    assert [(r["kind"], r["threshold"], r["windows"], r["enabled"], r["default"]) for r in rules] == [
        ("drift", 0.0, 3, True, True), ("quality", 0.8, 3, True, True), ("error_rate", 0.05, 3, True, True),
        ("p99", 1000.0, 3, True, True)]
    assert rules[2]["label"] == "Error rate" and rules[2]["created_by"] is None

    answer = client.put(rules_url(deployment, "error_rate"), {"threshold": 0.1, "windows": 5, "enabled": False},
                        content_type="application/json")
    assert answer.status_code == 200
    assert answer.json() | {"modified": None} == {"kind": "error_rate", "label": "Error rate", "threshold": 0.1,
                                                  "windows": 5, "enabled": False, "default": False,
                                                  "created_by": "owner", "modified": None}
    listed = {r["kind"]: r for r in client.get(rules_url(deployment)).json()}
    assert (listed["error_rate"]["threshold"], listed["error_rate"]["default"]) == (0.1, False)
    assert listed["p99"]["default"] is True

    reset = client.delete(rules_url(deployment, "error_rate"))
    assert reset.status_code == 200
    assert (reset.json()["threshold"], reset.json()["windows"], reset.json()["default"]) == (0.05, 3, True)
    assert all(r["default"] for r in client.get(rules_url(deployment)).json())


def test_what_is_not_sent_takes_the_defaults(client_for, owner, deployment):
    answer = client_for(owner).put(rules_url(deployment, "p99"), {"threshold": "750"}, content_type="application/json")
    assert answer.status_code == 200
    assert (answer.json()["threshold"], answer.json()["windows"], answer.json()["enabled"]) == (750.0, 3, True)


@pytest.mark.parametrize(("kind", "body", "field", "says"), [
    ("error_rate", {"threshold": 5}, "threshold", "from 0 up to but not including 1 (0.05 is 5 %); got 5"),
    ("drift", {"threshold": 1}, "threshold", "a share of a method's input fields"),
    ("p99", {"threshold": 0}, "threshold", "milliseconds, more than 0"),
    ("p99", {"threshold": "fast"}, "threshold", "got 'fast'"),
    ("quality", {"threshold": -1}, "threshold", "0 or more"),
    ("p99", {"threshold": 500, "windows": 0}, "windows", "a whole number from 1 to 60; got 0"),
    ("p99", {"threshold": 500, "windows": 2.5}, "windows", "got 2.5"),
    ("p99", {"threshold": 500, "enabled": "yes"}, "enabled", "true or false; got 'yes'"),
    ("p99", {"windows": 3}, "threshold", "required"),
    ("p99", {"threshold": 500, "treshold": 400}, "treshold", "not a field of a rule"),
    ("p99", [500], "non_field_errors", "send a JSON object"),
    ("latency", {"threshold": 1}, "kind", "the kinds are drift, quality, error_rate, p99"),
])
def test_what_cannot_be_is_answered_400_naming_the_field(client_for, owner, deployment, kind, body, field, says):
    response = client_for(owner).put(rules_url(deployment, kind), body, content_type="application/json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert says in " ".join(error["details"][field]), error
    assert not AlertRule.objects.exists()


def test_an_unknown_kind_cannot_be_reset_either(client_for, owner, deployment):
    response = client_for(owner).delete(rules_url(deployment, "latency"))
    assert response.status_code == 400
    assert "kind" in response.json()["error"]["details"]


def test_the_alerts_say_what_fired_them_newest_first(client_for, owner, deployment):
    rule = AlertRule.objects.create(deployment=deployment, kind=RuleKind.ERROR_RATE, threshold=0.05)
    now = timezone.now()
    old = Alert.objects.create(rule=rule, deployment=deployment, state=AlertState.RESOLVED,
                               fired_at=now - timedelta(hours=2), resolved_at=now - timedelta(hours=1),
                               summary="Error rate 9% over 5%", evidence={"samples": [{"error_rate": 0.09}]})
    firing = Alert.objects.create(rule=rule, deployment=deployment, fired_at=now - timedelta(minutes=5),
                                  summary="Error rate 12% over 5%", evidence={"samples": [{"error_rate": 0.12}]})
    other = DeploymentFactory(created_by=owner)
    Alert.objects.create(rule=AlertRule.objects.create(deployment=other, kind=RuleKind.P99, threshold=1),
                         deployment=other, fired_at=now, summary="not this deployment's")
    client = client_for(owner)
    listed = client.get(f"/api/v1/deployments/{deployment.pk}/alerts").json()["results"]
    assert [a["id"] for a in listed] == [firing.pk, old.pk]
    assert listed[0] | {"fired_at": None} == {"id": firing.pk, "kind": "error_rate", "state": "firing",
                                              "fired_at": None, "resolved_at": None,
                                              "summary": "Error rate 12% over 5%",
                                              "evidence": {"samples": [{"error_rate": 0.12}]}}
    assert listed[1]["state"] == "resolved" and listed[1]["resolved_at"] is not None
    only_firing = client.get(f"/api/v1/deployments/{deployment.pk}/alerts?state=firing").json()["results"]
    assert [a["id"] for a in only_firing] == [firing.pk]
    assert client.get(f"/api/v1/deployments/{deployment.pk}/alerts?state=loud").status_code == 400


def test_turning_a_rule_off_by_the_api_resolves_its_alert(client_for, owner, deployment):
    rule = AlertRule.objects.create(deployment=deployment, kind=RuleKind.P99, threshold=100)
    alert = Alert.objects.create(rule=rule, deployment=deployment, fired_at=timezone.now(), summary="slow")
    response = client_for(owner).put(rules_url(deployment, "p99"), {"threshold": 100, "enabled": False},
                                     content_type="application/json")
    assert response.status_code == 200
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED


def test_the_schema_documents_the_endpoints(client_for):
    paths = client_for(None).get("/api/v1/schema/", headers={"Accept": "application/json"}).json()["paths"]
    assert {"get"} <= set(paths["/api/v1/deployments/{id}/alert-rules"])
    assert {"put", "delete"} <= set(paths["/api/v1/deployments/{id}/alert-rules/{kind}"])
    assert {"get"} <= set(paths["/api/v1/deployments/{id}/alerts"])
