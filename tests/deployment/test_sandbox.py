"""Hostile models deployed to the `local` target, for real: each runner in its sandbox (bubblewrap,
pasta, cgroup limits). An ordinary user's model looks for the portal's secrets, other users'
deployments (their files, environments, admin tokens, ports) and the host's services, forks without
end, leaves a detached child, allocates past its memory. It reaches nothing, another user's
deployment goes on serving what it served, the portal keeps serving, and a stop leaves nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest
import requests
from django.conf import settings as django_settings

from acumos_portal import sandbox
from acumos_portal.choices import JobStatus
from deployment import runner_client, services
from deployment.backends.local import LocalBackend
from deployment.choices import DeploymentStatus
from deployment.models import Deployment

from ..bundles import builders
from ..conftest import REPO
from ..factories import DeploymentFactory, TargetFactory
from ..hostile import Canaries, Listener, assert_reached_nothing, hostile_bundle, processes_with
from .conftest import free_port, onboarded, post, run


def deployed(user, revision, target):
    deployment = services.deploy(revision=revision, target=target, user=user)
    operation = run(deployment.operations.get())
    assert operation.status == JobStatus.SUCCEEDED, operation.error
    deployment.refresh_from_db()
    return deployment


def ask(deployment, cmd: str) -> dict:
    """One call of the hostile model; its report."""
    answer = post(deployment, "probe", {"cmd": cmd})
    return json.loads(answer["out"])


def gone(marker: str, wait: float = 5.0) -> bool:
    deadline = time.monotonic() + wait
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not processes_with(marker)


@pytest.mark.django_db
@pytest.mark.parametrize("network", ["landlock", "pasta"])
def test_a_deployed_model_reaches_nothing_and_cannot_touch_another_users_deployment(
        owner, other_user, local_target, example_bundle, inline_jobs, tmp_path, deployments_dir, monkeypatch,
        settings, network):
    settings.ACUMOS_SANDBOX_NETWORK = network  # both fences: Landlock (Linux 6.12+) and pasta's namespace
    victim = deployed(other_user, onboarded(other_user, example_bundle, inline_jobs), local_target)
    portal = Listener()
    canaries = Canaries()
    monkeypatch.setenv("CANARY_PORTAL_ENV", canaries.secret)
    folder = deployments_dir / str(victim.pk)
    canaries.files = [str(folder / "runner.log"), str(folder / "bundle" / "modelpackage.zip"),
                      str(folder / "work" / "state" / "control.json"), str(REPO / "acumos_portal" / "settings.py"),
                      str(sandbox.records_dir() / f"runner-{victim.pk.hex}.json"), "/etc/shadow"]
    canaries.ports = [("127.0.0.1", victim.handle["port"]), ("127.0.0.1", 5432), ("127.0.0.1", 6379)]
    portal.plant(canaries)
    canaries.writes = [str(folder / "work" / "state" / f"pwned-{uuid.uuid4().hex}"),
                       str(django_settings.DATA_DIR / f"written-{uuid.uuid4().hex}")]
    mine = deployed(owner, onboarded(owner, hostile_bundle(tmp_path / "probe", canaries, None), inline_jobs),
                    local_target)

    report = ask(mine, "look")

    assert_reached_nothing(report, canaries, victim.admin_token(), mine.admin_token())
    assert "RUNNER_ADMIN_TOKEN_SHA256" in report["own_environment"]  # its own token's hash, never a token
    made = (deployments_dir / str(mine.pk) / "work" / "setuid").stat()  # a setuid file it left is not root's
    assert made.st_uid != 0 and made.st_uid == (sandbox.host_uid(f"runner-{mine.pk.hex}") or os.getuid())
    portal.close()
    assert portal.accepted == 0
    # The other user's deployment serves what it served, unswapped, and says so to the status check.
    assert post(victim, "classify", builders.IRIS_SAMPLE) == {"species": 0}
    assert runner_client.active(victim.endpoint_url)["active"]["generation"] == 1
    assert services.check_deployment(victim).endswith("(serving IrisClassifier (generation 1))")
    # Its runner refuses a swap without the token, which the model could not have found.
    swap = requests.put(f"{victim.endpoint_url}/model", headers={"Authorization": "Bearer guessed"}, timeout=10)
    assert swap.status_code == 401
    for deployment in (mine, victim):
        run(services.stop(deployment, deployment.created_by))
    assert sandbox.all_records(sandbox.records_dir()) == []


@pytest.mark.django_db
def test_a_deployed_fork_bomb_and_detached_child_are_held_and_gone_after_stop(
        owner, local_target, inline_jobs, tmp_path, settings):
    settings.ACUMOS_SANDBOX_TASKS = 64
    canaries = Canaries(forks=200)
    mine = deployed(owner, onboarded(owner, hostile_bundle(tmp_path / "bomb", canaries, None), inline_jobs),
                    local_target)

    assert ask(mine, "detach") == {"detached": True}
    forked = ask(mine, "fork")
    assert 0 < forked["forked"] < 64 and forked["error"] == "BlockingIOError"
    assert processes_with(canaries.marker), "the model's children run (inside its sandbox) until it stops"

    stopped = run(services.stop(mine, owner))

    assert stopped.status == JobStatus.SUCCEEDED, stopped.error
    assert gone(canaries.marker), "a process of the model outlived its deployment"
    assert sandbox.all_records(sandbox.records_dir()) == []


@pytest.mark.django_db
def test_a_deployed_model_past_its_memory_is_stopped_and_the_portal_keeps_serving(
        owner, inline_jobs, tmp_path, client_for):
    target = TargetFactory(name="small host", kind="local", options={"memory_mb": 160})
    canaries = Canaries()
    mine = deployed(owner, onboarded(owner, hostile_bundle(tmp_path / "memory", canaries, None), inline_jobs), target)

    with pytest.raises(requests.RequestException):
        answer = requests.post(f"{mine.endpoint_url}/model/methods/probe", json={"cmd": "memory"}, timeout=30)
        answer.raise_for_status()

    assert client_for(owner).get("/").status_code == 200  # the portal goes on
    deadline = time.monotonic() + 10
    while "down" not in services.check_deployment(mine) and time.monotonic() < deadline:
        time.sleep(0.2)
    mine.refresh_from_db()
    assert mine.status == DeploymentStatus.DOWN
    assert run(services.stop(mine, owner)).status == JobStatus.SUCCEEDED
    assert sandbox.all_records(sandbox.records_dir()) == []


@pytest.mark.django_db
def test_a_runner_whose_deployment_is_gone_is_swept(owner, local_target, example_bundle, inline_jobs):
    """`make run` and the schedule sweep: a runner left by a portal that died mid-destroy goes; a
    live deployment's runner stays."""
    kept = deployed(owner, onboarded(owner, example_bundle, inline_jobs), local_target)
    orphan = services.deploy(revision=kept.revision, target=local_target, user=owner)
    run(orphan.operations.get())
    orphan.refresh_from_db()
    Deployment.objects.filter(pk=orphan.pk).update(status=DeploymentStatus.DESTROYED)  # the row says gone

    swept = services.sweep_sandboxes()

    assert swept == [f"sandbox runner-{orphan.pk.hex}: removed (nothing wants it any more: its deployment is not live)"]
    assert not LocalBackend({}).is_running(orphan) and LocalBackend({}).is_running(kept)
    assert post(kept, "classify", builders.IRIS_SAMPLE) == {"species": 0}
    run(services.stop(kept, owner))


@pytest.mark.django_db
def test_without_bubblewrap_the_local_target_refuses_to_start_a_runner(owner, local_target, example_bundle,
                                                                       inline_jobs, tmp_path, monkeypatch):
    iris = onboarded(owner, example_bundle, inline_jobs)
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap, no pasta

    deployment = services.deploy(revision=iris, target=local_target, user=owner)
    operation = run(deployment.operations.get())

    assert operation.status == JobStatus.FAILED
    assert operation.error.startswith("the local target refuses to start a runner: model code runs only in a sandbox")
    assert "apt-get install -y bubblewrap passt" in operation.error
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.FAILED and sandbox.all_records(sandbox.records_dir()) == []


@pytest.mark.django_db
def test_a_swap_made_past_the_portal_is_flagged_by_the_status_check(owner, local_target, example_bundle,
                                                                     inline_jobs, tmp_path):
    """Had anyone got a runner's token (the sandbox keeps it from every model), what they swapped in
    would not pass as the revision the portal deployed: the status check says so and tells the owner."""
    deployment = deployed(owner, onboarded(owner, example_bundle, inline_jobs), local_target)
    assert services.check_deployment(deployment).endswith("(serving IrisClassifier (generation 1))")

    runner_client.swap(deployment.endpoint_url, deployment.admin_token(), builders.text_bundle(tmp_path / "text"))
    services.check_deployment(deployment)

    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.RUNNING
    assert deployment.health == (f"serving TextMeasure (generation 2); NOT what the portal deployed: its model and "
                                 f"proto differ from {deployment.revision}'s (changed past the portal: swap or roll "
                                 "back from here to serve a known revision)")
    assert owner.notifications.filter(message=deployment.health).exists()
    run(services.stop(deployment, owner))


@pytest.mark.django_db
def test_a_runner_started_before_the_sandbox_is_still_seen_and_stopped(owner, local_target, example_bundle,
                                                                       inline_jobs, tmp_path, deployments_dir):
    """An upgrade: a runner the earlier portal started as a plain process (no sandbox record) is found
    by its pid and stopped; starting the deployment again runs it in the sandbox."""
    revision = onboarded(owner, example_bundle, inline_jobs)
    port = free_port()
    deployment = DeploymentFactory(name="old", target=local_target, revision=revision, created_by=owner,
                                   status=DeploymentStatus.RUNNING, endpoint_url=f"http://127.0.0.1:{port}",
                                   admin_token="old-token")
    folder = deployments_dir / str(deployment.pk)  # as the earlier portal laid it out: bundle/, state/
    shutil.copytree(example_bundle, folder / "bundle")
    plain = subprocess.Popen([sys.executable, "-m", "runner_image", "serve", str(folder / "bundle"), "--port",
                              str(port), "--state-dir", str(folder / "state")], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        Deployment.objects.filter(pk=deployment.pk).update(handle={"pid": plain.pid, "port": port})
        deployment.refresh_from_db()
        assert LocalBackend({}).is_running(deployment)

        assert run(services.stop(deployment, owner)).status == JobStatus.SUCCEEDED
        assert plain.wait(timeout=20) is not None
        started = run(services.start(deployment, owner))
        assert started.status == JobStatus.SUCCEEDED, started.error
        deployment.refresh_from_db()
        assert deployment.handle["sandbox"] == f"runner-{deployment.pk.hex}"
        assert (folder / "work" / "state").is_dir() and not (folder / "state").exists()  # its state moved in
        assert post(deployment, "classify", builders.IRIS_SAMPLE) == {"species": 0}
        run(services.stop(deployment, owner))
    finally:
        if plain.poll() is None:
            os.killpg(plain.pid, signal.SIGKILL)
            plain.wait()
