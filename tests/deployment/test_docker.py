"""Deployments on the `docker` target, for real: the private Docker engine, images onboarding built
and pushed to the test registry, host networking on 127.0.0.1. Deploy, predict, hot-swap to another
solution with another proto, predict through the new interface, roll back, stop, start again (the
same container, serving what it served when it stopped), destroy; and what is refused, and why."""

from __future__ import annotations

import uuid

import docker
import pytest
import requests

from acumos_portal.choices import JobStatus
from deployment import services
from deployment.backends.base import BackendError
from deployment.backends.docker import MANAGED_BY, MANAGER, DockerBackend, container_name
from deployment.choices import DeploymentStatus, OperationKind
from deployment.models import Deployment, Target
from marketplace import storage
from marketplace.choices import ArtifactKind, RevisionStatus
from marketplace.models import Artifact, Revision

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


def assert_destroyed(deployment: Deployment, owner, backend: DockerBackend, docker_client) -> None:
    """Destroying removes the container; stopping or destroying what is gone does nothing."""
    deployment.refresh_from_db()
    handle = dict(deployment.handle)
    assert run(services.destroy(deployment, owner)).status == JobStatus.SUCCEEDED
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.DESTROYED
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(handle["container_id"])
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
    return docker_client.containers.list(all=True, filters={"label": f"ai.acumos.deployment.id={deployment.pk}"})


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
