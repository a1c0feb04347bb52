"""Deployments driven from the portal, for real on the `local` target (runner processes): the
revision page's Deploy, the deployment page's "try it", hot swap and roll back, the REST API, the
grace period of decommissioning, "follow latest" (a newly onboarded version is swapped in by
itself), the periodic status check, and a hammer of requests through a swap started from the
portal that must see zero failed requests."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from acumos_portal.choices import JobStatus
from deployment import services
from deployment.choices import DeploymentStatus, OperationKind, TargetDeployers, Trigger
from deployment.models import Deployment, Operation

from ..bundles import builders
from .conftest import docker_target, onboarded, post, run


@pytest.fixture
def local_target(local_target):
    """Like the "This host" of `make run`: model owners deploy their own models there too (a new
    target takes operators and admins only)."""
    local_target.deployers = TargetDeployers.OWNERS
    local_target.save(update_fields=["deployers"])
    return local_target


def deployment_of(revision) -> Deployment:
    return Deployment.objects.get(revision=revision)


@pytest.mark.django_db
def test_deploy_try_swap_and_roll_back_from_the_pages(owner, local_target, example_bundle, inline_jobs, tmp_path,
                                                      client_for):
    iris = onboarded(owner, example_bundle, inline_jobs)
    text = onboarded(owner, builders.text_bundle(tmp_path / "text", tag="page"), inline_jobs)
    client = client_for(owner)

    page = client.get(f"/revisions/{iris.pk}/").content.decode()
    assert f'action="/revisions/{iris.pk}/deploy/"' in page and "this host" in page
    with inline_jobs():
        response = client.post(f"/revisions/{iris.pk}/deploy/", {"target": local_target.pk, "replicas": 1})
    deployment = Deployment.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/deployments/{deployment.pk}/"
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.RUNNING

    detail = client.get(f"/deployments/{deployment.pk}/").content.decode()
    assert deployment.endpoint_url in detail and "Running" in detail and "classify" in detail
    assert '&quot;sepal_length&quot;' in detail  # the try-it box holds the model's own sample
    answer = client.post(f"/deployments/{deployment.pk}/try/",
                         {"method": "classify", "body": '{"sepal_length": 6.7, "sepal_width": 3.0, '
                                                        '"petal_length": 5.2, "petal_width": 2.3}'})
    assert '&quot;species&quot;: 2' in answer.content.decode()
    bad = client.post(f"/deployments/{deployment.pk}/try/", {"method": "classify", "body": "{not json"})
    assert "not valid JSON" in bad.content.decode()
    path = client.post(f"/deployments/{deployment.pk}/try/", {"method": "../../model/rollback", "body": "{}"})
    assert "&#x27;../../model/rollback&#x27; is not a method this deployment serves: classify" in path.content.decode()

    with inline_jobs():
        client.post(f"/deployments/{deployment.pk}/swap/", {"revision": text.pk})
    assert post(deployment, "measure", {"text": "four"}) == {"length": 4, "tag": "page"}
    missing = client.post(f"/deployments/{deployment.pk}/try/", {"method": "classify", "body": "{}"})
    assert "&#x27;classify&#x27; is not a method this deployment serves: measure" in missing.content.decode()

    history = client.get(f"/deployments/{deployment.pk}/").content.decode()
    assert "Roll back to this" in history and "TextMeasure" in history and " ms<" in history
    with inline_jobs():
        client.post(f"/deployments/{deployment.pk}/rollback/", {"generation": 1})
    assert post(deployment, "classify", builders.IRIS_VIRGINICA) == {"species": 2}
    deployment.refresh_from_db()
    assert deployment.revision == iris
    kinds = list(deployment.operations.order_by("created").values_list("kind", "requested_by__username"))
    assert kinds == [("deploy", "owner"), ("swap", "owner"), ("rollback", "owner")]
    with inline_jobs():
        client.post(f"/deployments/{deployment.pk}/stop/")


@pytest.mark.django_db
def test_the_api_deploys_swaps_stops_and_destroys_after_the_grace_period(
        owner, admin_user, local_target, example_bundle, inline_jobs, tmp_path, client_for, settings):
    iris = onboarded(owner, example_bundle, inline_jobs)
    text = onboarded(owner, builders.text_bundle(tmp_path / "text", tag="api"), inline_jobs)
    client = client_for(owner)

    with inline_jobs():
        created = client.post("/api/v1/deployments", {"revision": str(iris.pk), "target": str(local_target.pk)},
                              content_type="application/json")
    assert created.status_code == 202, created.content
    url = f"/api/v1/deployments/{created.json()['id']}"
    assert client.get(url).json()["status"] == "running"

    with inline_jobs():
        swapped = client.post(f"{url}/swap", {"revision": str(text.pk)}, content_type="application/json")
    operation = client.get(f"/api/v1/deployment-operations/{swapped.json()['id']}").json()
    assert operation["status"] == "succeeded" and operation["generation"] == 2 and operation["swap_ms"] > 0
    assert operation["previous_revision"] == str(iris.pk) and operation["revision"] == str(text.pk)

    refused = client.post(f"{url}/destroy", {}, content_type="application/json")
    assert refused.status_code == 400 and "stop the deployment first" in refused.content.decode()
    with inline_jobs():
        assert client.post(f"{url}/stop").status_code == 202
    kept = client.post(f"{url}/destroy", {}, content_type="application/json")
    assert kept.status_code == 409 and "kept, restartable, until" in kept.content.decode()
    assert kept.json()["error"]["code"] == "grace_period_not_over"
    assert client.get(url).json()["status"] == "stopped"

    with inline_jobs():  # an admin may end the grace period early
        forced = client_for(admin_user).post(f"{url}/destroy", {"force": True}, content_type="application/json")
    assert forced.status_code == 202, forced.content
    assert client.get(url).json()["status"] == "destroyed"
    gone = client.post(f"{url}/start")
    assert gone.status_code == 400 and "destroyed" in gone.content.decode()


@pytest.mark.django_db
def test_bad_requests_say_which_field_and_change_nothing(owner, local_target, client_for):
    client = client_for(owner)
    cases = [({}, "revision"), ({"revision": "nope", "target": str(local_target.pk)}, "revision"),
             ({"revision": "00000000-0000-0000-0000-000000000000", "target": str(local_target.pk)}, "revision")]
    for body, field in cases:
        response = client.post("/api/v1/deployments", body, content_type="application/json")
        assert response.status_code == 400 and field in response.json()["error"]["details"], response.content
    malformed = client.generic("POST", "/api/v1/deployments", "{oops", content_type="application/json")
    assert malformed.status_code == 400
    assert not Deployment.objects.exists() and not Operation.objects.exists()


@pytest.mark.django_db
def test_a_stopped_deployment_is_destroyed_when_its_grace_period_ends(owner, local_target, example_bundle,
                                                                      inline_jobs, deployments_dir, settings):
    settings.ACUMOS_DEPLOYMENT_GRACE_SECONDS = 3600
    iris = onboarded(owner, example_bundle, inline_jobs)
    deployment = services.deploy(revision=iris, target=local_target, user=owner)
    run(deployment.operations.get())
    run(services.stop(deployment, owner))
    deployment.refresh_from_db()
    assert deployment.destroy_after > timezone.now() + timedelta(minutes=59)

    assert services.decommission_due() == []  # not yet
    Deployment.objects.filter(pk=deployment.pk).update(destroy_after=timezone.now() - timedelta(seconds=1))
    assert len(services.decommission_due()) == 1
    destroyed = run(deployment.operations.get(kind=OperationKind.DESTROY))
    assert destroyed.status == JobStatus.SUCCEEDED and destroyed.trigger == Trigger.SCHEDULE
    assert destroyed.requested_by is None and not (deployments_dir / str(deployment.pk)).exists()


@pytest.mark.django_db
def test_a_following_deployment_takes_each_newly_ready_version_by_itself(owner, local_target, inline_jobs,
                                                                           tmp_path):
    first = onboarded(owner, builders.text_bundle(tmp_path / "v1", tag="v1"), inline_jobs)
    deployment = services.deploy(revision=first, target=local_target, user=owner, follow=True)
    run(deployment.operations.get())
    assert post(deployment, "measure", {"text": "ab"}) == {"length": 2, "tag": "v1"}

    with inline_jobs():  # retrained: a new version of the same model is onboarded
        second = onboarded(owner, builders.text_bundle(tmp_path / "v2", tag="v2"), inline_jobs)
    assert second.solution_id == first.solution_id and second.pk != first.pk
    swap = deployment.operations.get(kind=OperationKind.SWAP)
    assert swap.trigger == Trigger.FOLLOW and swap.requested_by is None and swap.revision == second
    assert run(swap).status == JobStatus.SUCCEEDED or swap.status == JobStatus.SUCCEEDED
    assert post(deployment, "measure", {"text": "ab"}) == {"length": 2, "tag": "v2"}
    run(services.stop(deployment, owner))


@pytest.mark.django_db
def test_the_status_check_marks_a_dead_runner_down_and_a_restarted_one_running(
        owner, local_target, example_bundle, inline_jobs):
    iris = onboarded(owner, example_bundle, inline_jobs)
    deployment = services.deploy(revision=iris, target=local_target, user=owner)
    run(deployment.operations.get())
    deployment.refresh_from_db()
    assert "serving" in services.check_deployment(deployment)
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.RUNNING and "generation 1" in deployment.health

    os.killpg(deployment.handle["pid"], signal.SIGKILL)
    _wait_dead(deployment)
    services.check_deployments()
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.DOWN and "not running" in deployment.health

    assert run(services.start(deployment, owner)).status == JobStatus.SUCCEEDED
    services.check_deployments()
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.RUNNING
    run(services.stop(deployment, owner))


def _wait_dead(deployment, timeout=10) -> None:
    from deployment.backends.local import LocalBackend

    deadline = time.monotonic() + timeout
    while LocalBackend({}).is_running(deployment) and time.monotonic() < deadline:
        time.sleep(0.05)


# ---------------------------------------------------------------- zero failed requests


class Hammer:
    """Clients sending requests as fast as they can; each answer is recorded as (sent, answered,
    status, tag)."""

    def __init__(self, url: str, body: dict, clients: int = 4):
        self.url, self.body = url, body
        self.answers: list[tuple[float, float, int, str]] = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(clients)]

    def _loop(self) -> None:
        with requests.Session() as session:
            while not self.stopping.is_set():
                sent = time.monotonic()
                try:
                    response = session.post(self.url, json=self.body, timeout=10)
                    tag = response.json().get("tag", "") if response.status_code == 200 else response.text[:200]
                    self.answers.append((sent, time.monotonic(), response.status_code, tag))
                except requests.RequestException as exc:
                    self.answers.append((sent, time.monotonic(), 0, str(exc)))

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=15)


@pytest.fixture(params=["local", "docker"])
def any_target(request, db):
    """Each kind of target that runs here for real: a runner process, and a container on the
    private Docker engine (its images built at onboarding)."""
    if request.param == "local":
        return request.getfixturevalue("local_target")
    request.getfixturevalue("builds_images")
    request.getfixturevalue("remove_containers")
    return docker_target(request.getfixturevalue("docker_host"))


@pytest.mark.django_db(transaction=True)
def test_a_swap_started_from_the_portal_fails_no_request(owner, any_target, tmp_path, client_for, inline_jobs):
    old = onboarded(owner, builders.text_bundle(tmp_path / "old", tag="old"), inline_jobs)
    new = onboarded(owner, builders.text_bundle(tmp_path / "new", tag="new"), inline_jobs)
    deployment = services.deploy(revision=old, target=any_target, user=owner)
    assert run(deployment.operations.get()).status == JobStatus.SUCCEEDED
    deployment.refresh_from_db()
    client = client_for(owner)

    with Hammer(f"{deployment.endpoint_url}/model/methods/measure", {"text": "hammer"}) as hammer:
        time.sleep(1.0)
        with inline_jobs():
            response = client.post(f"/api/v1/deployments/{deployment.pk}/swap", {"revision": str(new.pk)},
                                   content_type="application/json")
        assert response.status_code == 202, response.content
        time.sleep(1.0)

    answers = sorted(hammer.answers)
    failed = [answer for answer in answers if answer[2] != 200]
    assert failed == [], failed[:5]
    assert len(answers) > 100 and answers[0][3] == "old" and answers[-1][3] == "new"
    # Requests in flight during the switch may finish on the old model; one sent after a new answer may not.
    first_new = min(answered for sent, answered, status, tag in answers if tag == "new")
    assert {tag for sent, answered, status, tag in answers if sent > first_new} == {"new"}
    old = sum(tag == "old" for *_, tag in answers)
    print(f"\n{any_target.kind}: {len(answers)} requests through the swap, 0 failed; {old} old, "
          f"{len(answers) - old} new")
    run(services.stop(deployment, owner))
