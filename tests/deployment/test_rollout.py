"""Guarded rollouts with real local runners: a deployment that follows its solution takes a new revision as a
canary raised in steps and promoted once its gates hold, with no request failing on the way; a worse one (a
shadow that errors, a canary slower than its gate) is rolled back while the old model never stops serving;
promote and abort by hand; the settings' checks; who may do what (the API, every persona)."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from acumos_portal.choices import JobStatus
from deployment import runner_client, services
from deployment.choices import DeploymentStatus, OperationKind, RolloutMode, RolloutState, TargetKind, Trigger
from deployment.models import Deployment, Rollout
from marketplace.choices import NotificationKind
from marketplace.models import Notification
from monitoring import services as monitoring

from ..bundles import builders
from ..factories import DeploymentFactory, RevisionFactory, SolutionFactory, TargetFactory
from .conftest import onboarded, run
from .test_permissions import PERSONAS, _client

pytestmark = pytest.mark.django_db
QUICK_GATES = {"min_requests": 20, "step_rounds": 1}


# ---------------------------------------------------------------- with real runners

@pytest.fixture
def follower(owner, local_target, inline_jobs, tmp_path):
    """follower(mode, gates): the Scaler (y = 2x, tag v1) deployed on this host, following its solution."""

    def make(mode: str, steps=None, gates=None) -> Deployment:
        first = onboarded(owner, builders.scale_bundle(tmp_path / "v1", k=2, tag="v1"), inline_jobs)
        deployment = services.deploy(revision=first, target=local_target, user=owner, follow=True)
        assert run(deployment.operations.get()).status == JobStatus.SUCCEEDED
        deployment.refresh_from_db()
        services.set_rollout_settings(deployment, mode=mode, steps=steps, gates={**QUICK_GATES, **(gates or {})})
        return deployment

    return make


def pushed(owner, bundle, inline_jobs, deployment: Deployment) -> Rollout:
    """A new revision of the followed solution, onboarded for real: its readiness starts the rollout
    (follow_new_revision, after commit), whose first operation sets the candidate on the runner."""
    revision = onboarded(owner, bundle, inline_jobs)
    rollout = Rollout.objects.get(deployment=deployment, revision=revision)
    candidate = rollout.operations.get(kind=OperationKind.CANDIDATE)
    assert candidate.trigger == Trigger.FOLLOW
    assert run(candidate).status == JobStatus.SUCCEEDED, candidate.error
    rollout.refresh_from_db()
    return rollout


def held(deployment: Deployment) -> dict:
    return runner_client.candidate(deployment.endpoint_url, deployment.admin_token())


class Traffic:
    """Requests sent all along in a thread (x from -1 to 3, so that a model failing on x < 0 fails some),
    every answer kept: (status, tag)."""

    def __init__(self, deployment: Deployment, negative: bool = False):
        self.url = f"{deployment.endpoint_url}/model/methods/scale"
        self.negative = negative
        self.answers: list[tuple[int, str]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._send, daemon=True)

    def _send(self) -> None:
        n = 0
        with requests.Session() as session:
            while not self.stopped.is_set():
                x = (n % 4) - (1 if self.negative else 0) + 0.5
                response = session.post(self.url, json={"x": x}, timeout=10)
                self.answers.append((response.status_code, response.json().get("tag", "")))
                n += 1

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join(timeout=15)

    def failed(self) -> list:
        return [answer for answer in self.answers if answer[0] != 200]


def rounds_until(deployment: Deployment, rollout: Rollout, ended, most: int = 40) -> Rollout:
    """Collection rounds (each judges the rollout) and the operations they ask for, until `ended`."""
    for _ in range(most):
        time.sleep(0.4)  # traffic between rounds
        monitoring.collect_all()
        for operation in deployment.operations.filter(status=JobStatus.PENDING).order_by("created"):
            assert run(operation).status == JobStatus.SUCCEEDED, operation.error
        rollout.refresh_from_db()
        if ended(rollout):
            return rollout
    raise AssertionError(f"the rollout did not get there: {rollout.state}, {rollout.progress}")


def test_a_new_revision_rolls_out_as_a_canary_in_steps_and_is_promoted_with_no_request_failing(
        follower, owner, inline_jobs, tmp_path):
    deployment = follower(RolloutMode.CANARY, steps=[25, 50])
    rollout = pushed(owner, builders.scale_bundle(tmp_path / "v2", k=3, tag="v2"), inline_jobs, deployment)

    assert (rollout.state, rollout.mode, rollout.weights, rollout.step) == (RolloutState.RUNNING, "canary", [25, 50], 0)
    assert rollout.gates["min_requests"] == 20 and rollout.gates["max_error_rate"] == 0.05  # the rest: defaults
    described = held(deployment)
    assert described["candidate"]["state"] == "active" and described["candidate"]["weight"] == 25
    assert described["live"]["generation"] == 1 and rollout.candidate_generation == described["candidate"]["generation"]

    monitoring.collect_all()  # no traffic yet: the rollout waits and says so
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.RUNNING and "no traffic yet" in rollout.progress

    with Traffic(deployment) as traffic:
        rollout = rounds_until(deployment, rollout, lambda r: r.state != RolloutState.RUNNING)
        time.sleep(0.3)  # requests after the promotion too
    assert rollout.state == RolloutState.PROMOTED, rollout.reason
    assert "every gate held over" in rollout.reason and rollout.decided_by is None and rollout.finished
    assert traffic.failed() == [] and len(traffic.answers) > 100
    tags = [tag for _, tag in traffic.answers]
    assert {"v1", "v2"} <= set(tags) and tags[-1] == "v2"  # both answered; the candidate at the end

    deployment.refresh_from_db()
    assert deployment.revision == rollout.revision
    assert runner_client.active(deployment.endpoint_url)["active"]["generation"] == rollout.candidate_generation
    history = [(o.kind, o.trigger) for o in deployment.operations.order_by("created")]
    assert history == [(OperationKind.DEPLOY, Trigger.USER), (OperationKind.CANDIDATE, Trigger.FOLLOW),
                       (OperationKind.CANDIDATE, Trigger.GATES), (OperationKind.PROMOTE, Trigger.GATES)]
    promote = deployment.operations.get(kind=OperationKind.PROMOTE)
    assert promote.generation == rollout.candidate_generation and promote.revision == rollout.revision
    told = Notification.objects.filter(user=owner, kind=NotificationKind.DEPLOYMENT).values_list("title", flat=True)
    assert any("raised to 50 %" in title for title in told) and any(t.endswith("promoted") for t in told)


def test_a_shadow_that_fails_is_rolled_back_and_no_caller_sees_it(follower, owner, inline_jobs, tmp_path):
    deployment = follower(RolloutMode.SHADOW)
    rollout = pushed(owner, builders.failing_bundle(tmp_path / "bad"), inline_jobs, deployment)
    assert (rollout.mode, rollout.weights) == ("shadow", [100])

    with Traffic(deployment, negative=True) as traffic:  # a quarter of the inputs are negative: it fails those
        rollout = rounds_until(deployment, rollout, lambda r: r.state != RolloutState.RUNNING)
    assert rollout.state == RolloutState.ROLLED_BACK
    assert "error rate" in rollout.reason and "over the 5.0 % allowed" in rollout.reason
    assert traffic.failed() == [] and {tag for _, tag in traffic.answers} == {"v1"}  # the shadow never answered
    assert held(deployment)["candidate"]["state"] == "aborted"
    deployment.refresh_from_db()
    assert deployment.revision == rollout.previous_revision
    assert runner_client.active(deployment.endpoint_url)["active"]["generation"] == 1
    assert deployment.operations.filter(kind=OperationKind.ABORT, status=JobStatus.SUCCEEDED).count() == 1

    services.check_deployment(deployment)  # the status check catches up with the latest: not this one again
    assert deployment.rollouts.count() == 1 and not deployment.operations.filter(status=JobStatus.PENDING).exists()


def test_a_canary_slower_than_its_gate_is_rolled_back_with_the_figure(follower, owner, inline_jobs, tmp_path):
    deployment = follower(RolloutMode.CANARY, steps=[50], gates={"max_p99_ms": 0.001})
    rollout = pushed(owner, builders.scale_bundle(tmp_path / "v2", k=3, tag="v2"), inline_jobs, deployment)
    with Traffic(deployment) as traffic:
        rollout = rounds_until(deployment, rollout, lambda r: r.state != RolloutState.RUNNING)
    assert rollout.state == RolloutState.ROLLED_BACK
    assert "p99 latency" in rollout.reason and "over the 0.001 ms allowed" in rollout.reason
    assert traffic.failed() == []
    answer = requests.post(f"{deployment.endpoint_url}/model/methods/scale", json={"x": 1.0}, timeout=10).json()
    assert answer == {"tag": "v1", "y": 2.0}


def test_promote_and_abort_by_hand_and_a_newer_revision_replaces_a_running_rollout(
        follower, owner, operator, inline_jobs, tmp_path, client_for):
    deployment = follower(RolloutMode.CANARY, gates={"min_requests": 1_000_000})  # the gates never decide
    first = pushed(owner, builders.scale_bundle(tmp_path / "v2", k=3, tag="v2"), inline_jobs, deployment)

    # A newer revision while the first rolls out: the first is aborted (recorded), the newer one takes its place.
    second = pushed(owner, builders.scale_bundle(tmp_path / "v3", k=4, tag="v3"), inline_jobs, deployment)
    first.refresh_from_db()
    assert first.state == RolloutState.ABORTED and "rolled out in its place" in first.reason
    assert second.replaces == first and held(deployment)["candidate"]["generation"] == second.candidate_generation

    api = client_for(operator)
    url = f"/api/v1/deployments/{deployment.pk}/rollouts"
    listed = api.get(url).json()
    assert [r["id"] for r in listed] == [str(second.pk), str(first.pk)] and listed[0]["weight"] == 10
    response = api.post(f"{url}/{second.pk}/abort")
    assert response.status_code == 202, response.content
    assert run(deployment.operations.get(pk=response.json()["id"])).status == JobStatus.SUCCEEDED
    second.refresh_from_db()
    assert (second.state, second.decided_by, second.reason) == (RolloutState.ABORTED, operator,
                                                                 "aborted by operator at 10 % (step 1 of 2)")
    assert held(deployment)["candidate"]["state"] == "aborted"
    again = api.post(f"{url}/{second.pk}/promote")
    assert again.status_code == 409 and again.json()["error"]["code"] == "rollout_not_running"

    third = pushed(owner, builders.scale_bundle(tmp_path / "v4", k=5, tag="v4"), inline_jobs, deployment)
    response = client_for(owner).post(f"{url}/{third.pk}/promote")
    assert response.status_code == 202, response.content
    assert run(deployment.operations.get(pk=response.json()["id"])).status == JobStatus.SUCCEEDED
    third.refresh_from_db()
    assert third.state == RolloutState.PROMOTED and third.decided_by == owner and "promoted by owner" in third.reason
    answer = requests.post(f"{deployment.endpoint_url}/model/methods/scale", json={"x": 1.0}, timeout=10).json()
    assert answer == {"tag": "v4", "y": 5.0}
    deployment.refresh_from_db()
    assert deployment.revision == third.revision


def test_a_candidate_with_another_interface_fails_its_rollout_and_the_live_model_stays(
        follower, owner, local_target, inline_jobs, tmp_path):
    deployment = follower(RolloutMode.CANARY)
    other = onboarded(owner, builders.text_bundle(tmp_path / "text"), inline_jobs)  # another solution
    operation = services.start_rollout(deployment, other, owner, trigger=Trigger.USER)
    assert run(operation).status == JobStatus.FAILED
    rollout = operation.rollout
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.FAILED and "differs from the live model's" in rollout.reason
    answer = requests.post(f"{deployment.endpoint_url}/model/methods/scale", json={"x": 1.0}, timeout=10).json()
    assert answer == {"tag": "v1", "y": 2.0}


# ---------------------------------------------------------------- settings

@pytest.mark.parametrize(("body", "field", "says"), [
    ({"mode": "blue-green"}, "mode", "'mode' is one of swap, canary, shadow"),
    ({"mode": "canary", "steps": [50, 10]}, "steps", "rising weights"),
    ({"mode": "canary", "steps": [0, 10]}, "steps", "above 0 and at most 100"),
    ({"mode": "canary", "steps": "10,50"}, "steps", "a list of 1 to 10"),
    ({"mode": "canary", "gates": {"max_error_rate": 2}}, "gates.max_error_rate", "a number from 0 to 1"),
    ({"mode": "canary", "gates": {"min_requests": 1.5}}, "gates.min_requests", "a whole number from 1"),
    ({"mode": "canary", "gates": {"max_errors": 1}}, "gates.max_errors", "unknown gate 'max_errors'"),
])
def test_rollout_settings_are_checked_naming_the_field(owner, client_for, body, field, says):
    deployment = DeploymentFactory(created_by=owner, status=DeploymentStatus.RUNNING)
    response = client_for(owner).put(f"/api/v1/deployments/{deployment.pk}/rollout-settings", body,
                                     content_type="application/json")
    assert response.status_code == 400
    assert says in response.json()["error"]["details"][field][0]
    deployment.refresh_from_db()
    assert deployment.rollout_mode == RolloutMode.SWAP and deployment.rollout_gates == {}


def test_rollout_settings_are_kept_and_a_gate_left_out_takes_its_default(owner, client_for):
    deployment = DeploymentFactory(created_by=owner, status=DeploymentStatus.RUNNING)
    url = f"/api/v1/deployments/{deployment.pk}/rollout-settings"
    response = client_for(owner).put(url, {"mode": "shadow", "steps": [5, 20, 60],
                                           "gates": {"min_agreement": 0.99, "min_quality": None}},
                                     content_type="application/json")
    assert response.status_code == 200, response.content
    answer = client_for(owner).get(url).json()
    assert answer["mode"] == "shadow" and answer["steps"] == [5, 20, 60]
    assert answer["gates"]["min_agreement"] == 0.99 and answer["gates"]["max_error_rate"] == 0.05


def test_a_rolled_back_revision_is_not_rolled_out_again_but_a_newer_one_is(owner):
    solution = SolutionFactory(owner=owner, name="Iris")
    old, bad, newer = (RevisionFactory(solution=solution, version=v) for v in ("1.0.0", "2.0.0", "3.0.0"))
    deployment = DeploymentFactory(created_by=owner, revision=old, follows=old.solution, rollout_mode="canary",
                                   status=DeploymentStatus.RUNNING, endpoint_url="http://127.0.0.1:9")
    Rollout.objects.create(deployment=deployment, revision=bad, mode="canary", weights=[10],
                           state=RolloutState.ROLLED_BACK)
    assert services.follow_new_revision(bad) == []
    [operation] = services.follow_new_revision(newer)
    assert operation.kind == OperationKind.CANDIDATE and operation.rollout.revision == newer


# ---------------------------------------------------------------- who may

ROLLOUT_API = {  # (method, path, body): {persona: status}
    "list": ("get", "rollouts", None),
    "settings": ("get", "rollout-settings", None),
    "set": ("put", "rollout-settings", {"mode": "canary"}),
    "promote": ("post", "rollouts/{rollout}/promote", None),
    "abort": ("post", "rollouts/{rollout}/abort", None),
}
EXPECTED = {"list": 200, "settings": 200, "set": 200, "promote": 202, "abort": 202}


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("name", list(ROLLOUT_API))
def test_the_rollout_api_allows_only_operators_admins_and_the_creator(request, owner, persona, name):
    target = TargetFactory(kind=TargetKind.LOCAL)
    revision = RevisionFactory(solution=SolutionFactory(owner=owner, name="Iris"))
    deployment = DeploymentFactory(created_by=owner, target=target, revision=revision,
                                   status=DeploymentStatus.RUNNING, endpoint_url="http://127.0.0.1:9")
    rollout = Rollout.objects.create(deployment=deployment, revision=revision, mode="canary", weights=[10, 50],
                                     candidate_generation=2)
    method, path, body = ROLLOUT_API[name]
    client, headers = _client(request, persona, api=True)
    url = f"/api/v1/deployments/{deployment.pk}/{path.format(rollout=rollout.pk)}"
    response = getattr(client, method)(url, body, content_type="application/json", headers=headers)
    expected = {"anonymous": 401, "other_user": 404, "publisher": 404}.get(persona, EXPECTED[name])
    assert response.status_code == expected, response.content[:300]
    rollout.refresh_from_db()
    changed = rollout.state != RolloutState.RUNNING or rollout.operations.exists()
    assert changed == (name in ("promote", "abort") and expected == 202)
