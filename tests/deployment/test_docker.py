"""Deployments on the `docker` target, for real: the private Docker engine, images onboarding built
and pushed to the test registry, host networking on 127.0.0.1. Deploy, predict, hot-swap to another
solution with another proto, predict through the new interface, roll back, stop, start again (the
same container, serving what it served when it stopped), destroy; and what is refused, and why.
The container's confinement is read back from the engine and shown from the inside: a hostile model,
hot-swapped in, tries what a stranger's code would (write the image, run from /tmp, raise privileges,
read the admin token, fork without end) and reports what it found."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import docker
import pytest
import requests

from acumos_portal.choices import JobStatus
from deployment import services
from deployment.backends.base import BackendError
from deployment.backends.docker import MANAGED_BY, MANAGER, DockerBackend, container_name, volume_name
from deployment.choices import DeploymentStatus, OperationKind
from deployment.models import Deployment, Target
from marketplace import storage
from marketplace.choices import ArtifactKind, RevisionStatus
from marketplace.models import Artifact, Revision
from runner_image.pack import pack_bundle
from runner_image.settings import token_sha256

from ..bundles import builders, parts_of
from ..factories import RevisionFactory, SolutionFactory
from .conftest import docker_target, onboarded, post, run

PORT_SPAN = 200
pytestmark = pytest.mark.django_db  # the package's autouse fixture looks for runner processes in the database


@pytest.fixture
def target(db, docker_host, builds_images, remove_containers):
    return docker_target(docker_host, memory="1g", cpus=1.5, labels={"team": "tests"})


def container_of(docker_client, deployment: Deployment):
    deployment.refresh_from_db()
    return docker_client.containers.get(deployment.handle["container_id"])


def active_generation(deployment: Deployment) -> int:
    return requests.get(f"{deployment.endpoint_url}/model", timeout=10).json()["active"]["generation"]


def test_deploy_swap_to_another_interface_roll_back_stop_start_and_destroy(
        owner, target, example_bundle, inline_jobs, tmp_path, docker_client, settings):
    settings.ACUMOS_DEPLOYMENT_GRACE_SECONDS = 0  # the grace period has its own tests
    iris = onboarded(owner, example_bundle, inline_jobs)
    text = onboarded(owner, builders.text_bundle(tmp_path / "text", tag="v-text"), inline_jobs)
    assert iris.artifacts.filter(kind=ArtifactKind.IMAGE).exists()

    deployment = services.deploy(revision=iris, target=target, user=owner)
    first = run(deployment.operations.get())
    assert first.status == JobStatus.SUCCEEDED, first.error
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.RUNNING
    port = deployment.handle["port"]
    assert deployment.endpoint_url == f"http://127.0.0.1:{port}"
    first, last = map(int, target.options["port_range"].split("-"))
    assert first <= port <= last
    container = container_of(docker_client, deployment)
    assert_configured(container, deployment, iris)
    assert_confined(container, deployment, docker_client)
    backend = DockerBackend(target.options)
    assert backend.is_running(deployment) and backend.admin_urls(deployment) == [deployment.endpoint_url]
    assert post(deployment, "classify", builders.IRIS_VIRGINICA) == {"species": 2}

    swapped = run(services.swap(deployment, text, owner))
    assert swapped.status == JobStatus.SUCCEEDED, swapped.error
    assert (swapped.generation, swapped.revision, swapped.previous_revision) == (2, text, iris)
    assert post(deployment, "measure", {"text": "four"}) == {"length": 4, "tag": "v-text"}
    assert requests.post(f"{deployment.endpoint_url}/model/methods/classify", json=builders.IRIS_SAMPLE,
                         timeout=10).status_code == 404

    back = run(services.rollback(deployment, owner))
    assert back.status == JobStatus.SUCCEEDED, back.error
    assert (back.generation, back.revision) == (1, iris)
    assert post(deployment, "classify", builders.IRIS_SAMPLE) == {"species": 0}
    # Serve something the image does not hold, so that starting again shows the kept state.
    assert run(services.swap(deployment, text, owner)).generation == 3

    assert run(services.stop(deployment, owner)).status == JobStatus.SUCCEEDED
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.STOPPED
    assert container_of(docker_client, deployment).status == "exited" and not backend.is_running(deployment)

    started = run(services.start(deployment, owner))
    assert started.status == JobStatus.SUCCEEDED, started.error
    assert container_of(docker_client, deployment).id == container.id  # the same container, not a new one
    assert post(deployment, "measure", {"text": "kept"}) == {"length": 4, "tag": "v-text"}
    assert active_generation(deployment) == 3
    assert run(services.rollback(deployment, owner)).revision == iris  # its history came back too
    assert post(deployment, "classify", builders.IRIS_VIRGINICA) == {"species": 2}

    run(services.stop(deployment, owner))
    assert_destroyed(deployment, owner, backend, docker_client)
    history = [o.kind for o in deployment.operations.order_by("created")]
    assert history == [OperationKind.DEPLOY, OperationKind.SWAP, OperationKind.ROLLBACK, OperationKind.SWAP,
                       OperationKind.STOP, OperationKind.START, OperationKind.ROLLBACK, OperationKind.STOP,
                       OperationKind.DESTROY]


def assert_configured(container, deployment: Deployment, revision: Revision) -> None:
    """Named and labelled for the deployment, with the target's options, on the image as built."""
    assert container.name == container_name(deployment) == f"acumos-{deployment.pk.hex[:12]}"
    assert container.labels | {"ai.acumos.deployment.id": str(deployment.pk), "ai.acumos.revision.id": str(revision.pk),
                               MANAGED_BY: MANAGER, "team": "tests"} == container.labels
    host_config = container.attrs["HostConfig"]
    assert (host_config["NetworkMode"], host_config["Memory"], host_config["NanoCpus"]) == ("host", 1 << 30, 1.5e9)
    assert host_config["RestartPolicy"]["Name"] == "unless-stopped"
    assert "@sha256:" in container.attrs["Config"]["Image"]  # pinned to what was built


def assert_confined(container, deployment: Deployment, docker_client, pids_limit: int = 1024,
                    tmp_size: str = "512m") -> None:
    """As the engine has it: non-root, no capability, no new privileges, a read-only root, bounded
    processes, a tmpfs /tmp and the deployment's own state volume; the admin token only as its hash."""
    host_config, config = container.attrs["HostConfig"], container.attrs["Config"]
    assert config["User"] == "10001:10001"
    assert host_config["SecurityOpt"] == ["no-new-privileges:true"]
    assert host_config["CapDrop"] == ["ALL"] and not host_config["CapAdd"] and not host_config["Privileged"]
    assert host_config["ReadonlyRootfs"] is True
    assert host_config["PidsLimit"] == pids_limit
    assert host_config["Tmpfs"] == {"/tmp": f"rw,noexec,nosuid,nodev,size={tmp_size},mode=1777"}
    (mount,) = container.attrs["Mounts"]
    assert (mount["Type"], mount["Name"], mount["Destination"], mount["RW"]) == (
        "volume", volume_name(deployment), "/var/lib/runner", True)
    assert volume_name(deployment) == f"acumos-state-{deployment.pk.hex[:12]}"
    volume = docker_client.volumes.get(mount["Name"])
    assert volume.attrs["Labels"]["ai.acumos.deployment.id"] == str(deployment.pk)
    assert volume.attrs["Labels"][MANAGED_BY] == MANAGER
    assert deployment.handle["volume"] == mount["Name"]
    environment = dict(item.split("=", 1) for item in config["Env"])
    assert environment["RUNNER_ADMIN_TOKEN_SHA256"] == token_sha256(deployment.admin_token())
    assert "RUNNER_ADMIN_TOKEN" not in environment
    assert deployment.admin_token() not in json.dumps(container.attrs)

    # The runner itself (pid 1), seen from a process in the container.
    status = proc_status(container.exec_run(["cat", "/proc/1/status"]).output.decode())
    assert (status["Uid"].split()[0], status["Gid"].split()[0]) == ("10001", "10001")
    assert (status["CapEff"], status["CapPrm"], status["CapBnd"]) == ("0" * 16,) * 3
    assert status["NoNewPrivs"] == "1"
    environ = container.exec_run(["cat", "/proc/1/environ"]).output.decode().split("\0")
    assert f"RUNNER_ADMIN_TOKEN_SHA256={token_sha256(deployment.admin_token())}" in environ
    assert not [item for item in environ if item.startswith("RUNNER_ADMIN_TOKEN=")]
    touched = container.exec_run(["touch", "/app/bundle/changed"])
    assert touched.exit_code != 0 and b"Read-only file system" in touched.output


def proc_status(text: str) -> dict[str, str]:
    return {key: value.strip() for key, _, value in (line.partition(":") for line in text.splitlines())}


def assert_destroyed(deployment: Deployment, owner, backend: DockerBackend, docker_client) -> None:
    """Destroying removes the container; stopping or destroying what is gone does nothing."""
    deployment.refresh_from_db()
    handle = dict(deployment.handle)
    assert run(services.destroy(deployment, owner)).status == JobStatus.SUCCEEDED
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.DESTROYED
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(handle["container_id"])
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(volume_name(deployment))
    assert not docker_client.volumes.list(filters={"label": f"ai.acumos.deployment.id={deployment.pk}"})
    deployment.handle = handle
    backend.stop(deployment)
    backend.destroy(deployment)
    assert not backend.is_running(deployment)


def ready_revision(owner, bundle, image: str = "") -> Revision:
    """A ready revision with the bundle's files and, if given, an image reference (not built)."""
    revision = RevisionFactory(solution=SolutionFactory(owner=owner), version="1.0.0", status=RevisionStatus.READY)
    kinds = {"model": ArtifactKind.MODEL, "metadata": ArtifactKind.METADATA, "schema": ArtifactKind.PROTO}
    for part, path in parts_of(bundle).items():
        Artifact.objects.create(revision=revision, kind=kinds[part], name=path.name, blob=storage.store_file(path)[0])
    if image:
        Artifact.objects.create(revision=revision, kind=ArtifactKind.IMAGE, name=image, uri=image)
    return revision


def failed_deploy(revision: Revision, target: Target, user, replicas: int = 1) -> tuple[Deployment, str]:
    deployment = services.deploy(revision=revision, target=target, user=user, replicas=replicas)
    operation = run(deployment.operations.get())
    assert operation.status == JobStatus.FAILED
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.FAILED
    return deployment, operation.error


def containers_of(docker_client, deployment: Deployment) -> list:
    """The deployment's containers and volumes: what a failed deploy must not leave."""
    owned = {"label": f"ai.acumos.deployment.id={deployment.pk}"}
    return docker_client.containers.list(all=True, filters=owned) + docker_client.volumes.list(filters=owned)


def test_a_revision_without_an_image_is_not_deployed_and_says_to_build_it(
        owner, docker_host, remove_containers, example_bundle, docker_client):
    revision = ready_revision(owner, example_bundle)
    deployment, error = failed_deploy(revision, docker_target(docker_host), owner)
    assert error == f"revision {revision} has no image yet: build it first (Create microservice)"
    assert not containers_of(docker_client, deployment)


def test_more_than_one_replica_is_refused_with_where_to_go_instead(owner, docker_host, remove_containers,
                                                                   example_bundle):
    revision = ready_revision(owner, example_bundle, image="127.0.0.1:5000/acumos-test/none:1")
    _, error = failed_deploy(revision, docker_target(docker_host), owner, replicas=3)
    assert "one container per deployment, not 3 replicas" in error and "kubernetes" in error


@pytest.mark.parametrize(("options", "message"), [
    ({"network": "overlay"}, "network 'overlay' is not allowed: use one of host, bridge"),
    ({"port_range": "31999-31000"}, "port_range '31999-31000' must be \"first-last\""),
    ({"port_range": "80-90"}, "port_range '80-90' must be \"first-last\", ports from 1024 to 65535"),
    ({"memory": "lots"}, "memory 'lots' must be a size"),
    ({"cpus": "many"}, "cpus 'many' must be a number of CPUs"),
    ({"cpus": 0}, "cpus 0 must be a number of CPUs"),
    ({"restart_policy": "sometimes"}, "restart_policy 'sometimes' is not allowed: use one of no, always, "
                                      "unless-stopped, on-failure"),
    ({"labels": {"ai.acumos.managed-by": "me"}}, "label 'ai.acumos.managed-by' is not allowed"),
    ({"labels": ["a"]}, "labels must be an object of strings"),
    ({"docker_host": "/var/run/docker.sock"}, "docker_host '/var/run/docker.sock' must be an engine address"),
    ({"advertise_host": "http://example.org/"}, "advertise_host 'http://example.org/' must be a host name"),
    ({"pids_limit": 0}, "pids_limit 0 must be a whole number from 32 to 65536: the processes and threads"),
    ({"pids_limit": "256"}, "pids_limit '256' must be a whole number from 32 to 65536"),
    ({"pids_limit": True}, "pids_limit True must be a whole number from 32 to 65536"),
    ({"tmp_size": "lots"}, "tmp_size 'lots' must be a size with a unit k, m or g, e.g. \"512m\" (the tmpfs at /tmp)"),
    ({"tmp_size": 512}, "tmp_size 512 must be a size with a unit k, m or g"),
    ({"colour": "blue"}, "unknown docker target option 'colour': allowed are docker_host, network,"),
])
def test_bad_target_options_are_refused_by_name_with_what_is_allowed(options, message):
    with pytest.raises(BackendError) as refused:
        DockerBackend(options, "")
    assert str(refused.value).startswith(message)


def test_a_secret_that_is_not_registry_credentials_is_refused_without_repeating_it():
    with pytest.raises(BackendError, match="secret must be JSON") as refused:
        DockerBackend({}, "hunter2")
    assert "hunter2" not in str(refused.value)
    assert DockerBackend({}, '{"username": "u", "password": "p"}').auth == {"username": "u", "password": "p"}


def test_a_target_with_a_bad_option_fails_the_deploy_with_the_reason(owner, docker_host, remove_containers,
                                                                     example_bundle):
    revision = ready_revision(owner, example_bundle, image="127.0.0.1:5000/acumos-test/none:1")
    _, error = failed_deploy(revision, docker_target(docker_host, network="overlay"), owner)
    assert error == "network 'overlay' is not allowed: use one of host, bridge"


def test_an_unreachable_engine_and_an_image_that_cannot_be_pulled_say_so(
        owner, docker_host, remove_containers, example_bundle, unique_repository, tmp_path):
    missing = f"127.0.0.1:5000/{unique_repository}:1.0.0@sha256:{'0' * 64}"
    revision = ready_revision(owner, example_bundle, image=missing)
    socket_path = f"unix://{tmp_path}/no-engine.sock"
    _, error = failed_deploy(revision, docker_target(socket_path, name="nowhere"), owner)
    assert error.startswith(f"the Docker engine at {socket_path} could not be used: ")
    _, error = failed_deploy(revision, docker_target(docker_host), owner)
    assert error.startswith(f"the engine {docker_host} could not pull {missing}: ")


def test_bridge_networking_on_an_engine_without_a_bridge_says_so(owner, docker_host, remove_containers,
                                                                  example_bundle, docker_client):
    if docker_client.networks.list(names=["bridge"]):
        pytest.skip("this engine has a bridge network (tests use host networking only)")
    revision = ready_revision(owner, example_bundle, image="127.0.0.1:5000/acumos-test/none:1")
    backend = DockerBackend({"docker_host": docker_host, "network": "bridge"})
    deployment = Deployment(pk=uuid.uuid4(), revision=revision, replicas=1)
    with pytest.raises(BackendError, match="has no bridge network .* use network host"):
        backend.start(deployment, None, "token")
    assert not containers_of(docker_client, deployment)


def test_a_runner_that_exits_fails_the_deploy_with_its_log_and_leaves_no_container(
        owner, docker_host, remove_containers, base_image, example_bundle, docker_client):
    revision = ready_revision(owner, example_bundle, image=base_image)  # the base image: no model in it
    deployment, error = failed_deploy(revision, docker_target(docker_host, ready_timeout=60), owner)
    assert error.startswith(f"the runner's container {container_name(deployment)} exited (status 1")
    assert "/app/bundle is not a model bundle: missing metadata.json" in error
    assert not containers_of(docker_client, deployment)


# ---------------------------------------------------------------- confinement, from the inside

def test_the_container_options_confine_the_runner_on_either_network():
    """The same stance with host or bridge networking (this engine has no bridge to run one on)."""
    deployment = Deployment(pk=uuid.uuid4(), revision_id=uuid.uuid4(), replicas=1)
    for network, port in (("host", 31001), ("bridge", None)):
        backend = DockerBackend({"docker_host": "unix:///nowhere.sock", "network": network, "pids_limit": 300,
                                 "tmp_size": "64m"})
        options = backend._run_options(deployment, "the-token", port, "acumos-state-x")
        assert options["network_mode"] == network
        assert options["environment"]["RUNNER_ADMIN_TOKEN_SHA256"] == token_sha256("the-token")
        assert "the-token" not in json.dumps(options, default=str)
        assert (options["user"], options["cap_drop"], options["security_opt"], options["read_only"]) == (
            "10001:10001", ["ALL"], ["no-new-privileges:true"], True)
        assert options["pids_limit"] == 300
        assert options["tmpfs"] == {"/tmp": "rw,noexec,nosuid,nodev,size=64m,mode=1777"}
        assert options["mounts"] == [{"Target": "/var/lib/runner", "Source": "acumos-state-x", "Type": "volume",
                                      "ReadOnly": False}]


def hostile_bundle(out: Path) -> Path:
    """A model that, asked to "probe", tries what a stranger's code could, from inside the runner's
    process, and says what happened; its sample ("hello") does nothing, so the swap check passes."""

    def probe(what: str):
        import errno
        import json
        import os
        import subprocess
        import threading

        if what != "probe":
            return {"report": "{}"}

        def attempt(action, *args) -> str:
            """What happened: the error's name, or what the action returned."""
            try:
                return action(*args)
            except OSError as exc:
                return errno.errorcode.get(exc.errno, str(exc.errno))

        def write(path: str, size: int = 1, keep: bool = False) -> str:
            try:
                with open(path, "wb") as handle:
                    for _ in range(0, size, 1 << 20):
                        handle.write(b"x" * min(size, 1 << 20))
                return "written"
            finally:
                if not keep and os.path.exists(path):
                    os.remove(path)

        def status(pid: str) -> dict:
            with open(f"/proc/{pid}/status") as handle:
                lines = dict(line.split(":", 1) for line in handle.read().splitlines())
            return {key: lines[key].split()[0] for key in ("Uid", "Gid", "CapEff", "CapPrm", "CapBnd", "NoNewPrivs",
                                                           "Seccomp")}

        def environ(pid: str) -> dict:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                items = handle.read().decode().split("\0")
            return dict(item.split("=", 1) for item in items if "=" in item)

        def run_from_tmp() -> str:
            with open("/tmp/run.sh", "w") as handle:
                handle.write("#!/bin/sh\necho ran\n")
            os.chmod("/tmp/run.sh", 0o755)
            try:
                return subprocess.run(["/tmp/run.sh"], capture_output=True, text=True, check=False).stdout.strip()
            finally:
                os.remove("/tmp/run.sh")

        def threads(most: int = 4096) -> int:
            release, started = threading.Event(), []
            try:
                for _ in range(most):
                    thread = threading.Thread(target=release.wait, daemon=True)
                    thread.start()
                    started.append(thread)
            except RuntimeError:  # can't start new thread: the pids limit
                pass
            finally:
                release.set()
                for thread in started:
                    thread.join()
            return len(started)

        kept = {path: os.path.exists(path) for path in ("/var/lib/runner/kept", "/tmp/kept")}
        report = {
            "pid": os.getpid(), "kept_before": kept,
            "write": {path: attempt(write, path) for path in ("/probe", "/app/probe", "/app/bundle/probe", "/etc/probe",
                                                              "/var/lib/runner/probe", "/tmp/probe", "/dev/shm/probe")},
            "keep": {path: attempt(write, path, 1, True) for path in kept},
            "tmp_20mb": attempt(write, "/tmp/big", 20 << 20),
            "run_from_tmp": attempt(run_from_tmp), "setuid_0": attempt(os.setuid, 0),
            "status": {pid: status(pid) for pid in ("self", "1")},
            "environ": {pid: environ(pid) for pid in ("self", "1")},
            "threads": threads(),
        }
        return {"report": json.dumps(report)}

    return pack_bundle(model=probe, flavour="python", name="Prober", method="probe", inputs="what:string",
                       outputs="report:string", out=out, sample={"what": "hello"})


def hostile_report(deployment: Deployment) -> dict:
    return json.loads(post(deployment, "probe", {"what": "probe"})["report"])


def test_a_hostile_model_swapped_into_the_container_finds_it_confined(
        owner, db, docker_host, builds_images, remove_containers, example_bundle, inline_jobs, tmp_path,
        docker_client, base_image, settings):
    settings.ACUMOS_DEPLOYMENT_GRACE_SECONDS = 0
    target = docker_target(docker_host, pids_limit=64, tmp_size="16m")
    iris = onboarded(owner, example_bundle, inline_jobs)
    hostile = ready_revision(owner, hostile_bundle(tmp_path / "hostile"))
    deployment = services.deploy(revision=iris, target=target, user=owner)

    # What a deploy that failed half-way could have left: a container and a volume of this deployment.
    labels = {"ai.acumos.deployment.id": str(deployment.pk), MANAGED_BY: MANAGER}
    stale_volume = docker_client.volumes.create(volume_name(deployment), labels={**labels, "stale": "yes"})
    stale = docker_client.containers.create(base_image, name=container_name(deployment), labels=labels,
                                            volumes={stale_volume.name: {"bind": "/var/lib/runner", "mode": "rw"}})
    assert run(deployment.operations.get()).status == JobStatus.SUCCEEDED
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(stale.id)
    assert "stale" not in docker_client.volumes.get(volume_name(deployment)).attrs["Labels"]  # a new one
    container = container_of(docker_client, deployment)
    assert_confined(container, deployment, docker_client, pids_limit=64, tmp_size="16m")

    swapped = run(services.swap(deployment, hostile, owner))
    assert swapped.status == JobStatus.SUCCEEDED, swapped.error
    report = hostile_report(deployment)
    assert report["kept_before"] == {"/var/lib/runner/kept": False, "/tmp/kept": False}
    # /app and /app/bundle (the image's model) belong to the runner user: only the read-only root stops it.
    assert report["write"] == {"/probe": "EROFS", "/app/probe": "EROFS", "/app/bundle/probe": "EROFS",
                               "/etc/probe": "EROFS", "/var/lib/runner/probe": "written", "/tmp/probe": "written",
                               "/dev/shm/probe": "written"}
    assert report["keep"] == {"/var/lib/runner/kept": "written", "/tmp/kept": "written"}
    assert report["tmp_20mb"] == "ENOSPC"  # the tmpfs is bounded (16m here)
    assert report["run_from_tmp"] == "EACCES"  # noexec: a dropped binary does not run
    assert report["setuid_0"] == "EPERM"
    assert report["pid"] == 1  # the model runs in the runner's own process
    for status in report["status"].values():
        assert (status["Uid"], status["Gid"], status["NoNewPrivs"]) == ("10001", "10001", "1")
        assert status["CapEff"] == status["CapPrm"] == status["CapBnd"] == "0" * 16
        assert status["Seccomp"] == "2"  # the engine's default seccomp profile, filtering
    token = deployment.admin_token()
    for environment in report["environ"].values():
        assert environment["RUNNER_ADMIN_TOKEN_SHA256"] == token_sha256(token)
        assert "RUNNER_ADMIN_TOKEN" not in environment and token not in json.dumps(environment)
    assert 0 < report["threads"] < 64  # the pids limit stops a fork (or thread) bomb

    # The runner still serves, and a swap needs the token: the hash it was given does not pass for it.
    unauthorised = requests.post(f"{deployment.endpoint_url}/model/rollback", timeout=10,
                                 headers={"Authorization": f"Bearer {token_sha256(token)}"})
    assert unauthorised.status_code == 401

    # Stopped and started again: the swapped-in model is back, with what it kept in the state volume;
    # /tmp starts empty.
    assert run(services.stop(deployment, owner)).status == JobStatus.SUCCEEDED
    started = run(services.start(deployment, owner))
    assert started.status == JobStatus.SUCCEEDED, started.error
    assert container_of(docker_client, deployment).id == container.id
    assert hostile_report(deployment)["kept_before"] == {"/var/lib/runner/kept": True, "/tmp/kept": False}
    assert run(services.rollback(deployment, owner)).revision == iris
    assert post(deployment, "classify", builders.IRIS_VIRGINICA) == {"species": 2}

    run(services.stop(deployment, owner))
    assert_destroyed(deployment, owner, DockerBackend(target.options), docker_client)
