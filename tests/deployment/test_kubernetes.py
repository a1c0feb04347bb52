"""Deployments on a `kubernetes` target. No Kubernetes API server can run here, so the API is faked
at the HTTP boundary (tests/deployment/fake_kubernetes.py) and everything above it is real: the
kubernetes client library, the backend, the operations. The fake answers with what a server
would store; the tests read what was sent. The runner part of a deploy (its active model, hot
swaps) is a real runner process on 127.0.0.1, reached through the option `endpoint_base`.
That the generated manifests run for real is shown by `podman kube play` in test_manifests.py.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import requests

from acumos_portal.choices import JobStatus
from deployment import manifests, runner_client, services
from deployment.backends import BackendError
from deployment.backends.kubernetes import KubernetesBackend, checked_options
from deployment.choices import DeploymentStatus, RolloutMode, RolloutState, TargetKind, Trigger
from deployment.models import Deployment, Target
from deployment.options import BadOptions
from deployment.runner_client import RunnerError
from marketplace.choices import ArtifactKind
from marketplace.models import Artifact, Revision
from runner_image.settings import token_sha256

from ..bundles import builders
from ..factories import DeploymentFactory, TargetFactory
from ..images.conftest import free_port
from .conftest import onboarded, post, run
from .fake_kubernetes import FakeServer, kubeconfig

pytestmark = pytest.mark.django_db  # the package's autouse fixture reads the database after each test

NAMESPACE = manifests.DEFAULT_NAMESPACE
DIGEST = "sha256:" + "a1" * 32


@pytest.fixture
def fake():
    with FakeServer(namespaces=("default", NAMESPACE)) as server:
        yield server


@pytest.fixture(autouse=True)
def kubernetes_settings(settings):
    """These tests give revisions an image reference themselves: onboarding builds none."""
    settings.ACUMOS_IMAGE_BUILDER = ""
    settings.ACUMOS_DEPLOYMENT_GRACE_SECONDS = 0  # the grace period has its own tests


def with_image(revision: Revision, repository: str) -> Revision:
    Artifact.objects.create(revision=revision, kind=ArtifactKind.IMAGE, name="image",
                            uri=f"127.0.0.1:5000/{repository}:{revision.version}@{DIGEST}")
    return revision


def kubernetes_target(fake, **options) -> Target:
    return TargetFactory(name="cluster", kind=TargetKind.KUBERNETES, options=options, secret=kubeconfig(fake.host))


@pytest.fixture
def runner_process(tmp_path):
    """`runner_process(bundle, token, port)`: a real runner on 127.0.0.1:<port>, stopped after. It is
    given the token's hash, as the pods are (from the Secret)."""
    started: list[subprocess.Popen] = []

    def start(bundle: Path, token: str, port: int, host: str = "127.0.0.1") -> str:
        log = open(tmp_path / f"runner-{host}-{port}.log", "wb")  # noqa: SIM115 (the process writes it)
        command = [sys.executable, "-m", "runner_image", "serve", str(bundle), "--host", host,
                   "--port", str(port), "--state-dir", str(tmp_path / f"state-{host}-{port}")]
        environment = {**os.environ, "RUNNER_ADMIN_TOKEN_SHA256": token_sha256(token)}
        environment.pop("RUNNER_ADMIN_TOKEN", None)
        started.append(subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True))
        log.close()
        url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        wait_ready(url, started[-1])
        return url

    yield start
    for process in started:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the runner at {url} did not become ready")


def stored(fake, resource: str, name: str) -> dict:
    item = fake.get(resource, NAMESPACE, name)
    assert item is not None, f"no {resource}/{name} in {NAMESPACE}"
    return item


# ---------------------------------------------------------------- the whole flow

def test_deploy_swap_stop_start_and_destroy_on_a_cluster(
        owner, fake, example_bundle, inline_jobs, tmp_path, runner_process):
    iris = with_image(onboarded(owner, example_bundle, inline_jobs), "acumos/iris")
    text = with_image(onboarded(owner, builders.text_bundle(tmp_path / "text", tag="v-text"), inline_jobs),
                      "acumos/text")
    port = free_port()
    target = kubernetes_target(
        fake, endpoint_base=f"http://127.0.0.1:{port}", image_pull_secret="registry-credentials",
        node_selector={"acumos.ai/pool": "models"}, resources={"limits": {"cpu": "2", "memory": "1Gi"}},
        hpa={"min": 2, "max": 5, "cpu_percent": 70}, ingress_host="iris.models.example.org", ingress_class="nginx")
    deployment = services.deploy(revision=iris, target=target, user=owner, replicas=2)
    runner_process(example_bundle, deployment.admin_token(), port)  # what the cluster's pods would be

    first = run(deployment.operations.get())

    assert first.status == JobStatus.SUCCEEDED, first.error
    assert first.generation == 1
    deployment.refresh_from_db()
    name = manifests.deployment_name(deployment)
    assert deployment.status == DeploymentStatus.RUNNING
    assert deployment.endpoint_url == f"http://127.0.0.1:{port}"
    assert deployment.handle == {"namespace": NAMESPACE, "name": name,
                                 "image": f"127.0.0.1:5000/acumos/iris@{DIGEST}"}
    assert post(deployment, "classify", builders.IRIS_VIRGINICA) == {"species": 2}
    assert {r.headers.get("authorization") for r in fake.requests} == {"Bearer fake-token"}
    check_objects(fake, deployment, name)
    check_token_only_in_the_secret(fake, deployment.admin_token())

    swapped = run(services.swap(deployment, text, owner))  # the runner's own API, as on any target
    assert swapped.status == JobStatus.SUCCEEDED, swapped.error
    assert post(deployment, "measure", {"text": "four"}) == {"length": 4, "tag": "v-text"}

    assert run(services.stop(deployment, owner)).status == JobStatus.SUCCEEDED
    assert stored(fake, "deployments", name)["spec"]["replicas"] == 0  # kept, scaled to nothing
    assert fake.names("services", NAMESPACE) == [name]

    started = run(services.start(deployment, owner))
    assert started.status == JobStatus.SUCCEEDED, started.error
    pods = stored(fake, "deployments", name)
    # It serves what it served when it stopped: the image of the revision swapped in.
    assert pods["spec"]["replicas"] == 2
    assert pods["spec"]["template"]["spec"]["containers"][0]["image"] == f"127.0.0.1:5000/acumos/text@{DIGEST}"
    assert pods["spec"]["template"]["metadata"]["labels"][manifests.REVISION_LABEL] == str(text.pk)
    replaced = fake.sent("PUT", "deployments")[-1].body
    assert replaced["metadata"]["resourceVersion"]  # a replace that checks nobody changed it meanwhile
    service_put = fake.sent("PUT", "services")[-1].body
    assert service_put["spec"]["clusterIP"] == stored(fake, "services", name)["spec"]["clusterIP"]

    run(services.stop(deployment, owner))
    deployment.refresh_from_db()
    destroyed = run(services.destroy(deployment, owner))
    assert destroyed.status == JobStatus.SUCCEEDED, destroyed.error
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.DESTROYED
    for resource in ("deployments", "services", "secrets", "horizontalpodautoscalers", "ingresses"):
        assert fake.names(resource, NAMESPACE) == [], resource
    assert fake.names("namespaces") == sorted(["default", NAMESPACE])  # a namespace may be shared: it stays


def check_objects(fake, deployment: Deployment, name: str) -> None:
    made = stored(fake, "deployments", name)
    labels = made["metadata"]["labels"]
    assert labels[manifests.NAME_LABEL] == name
    assert labels[manifests.DEPLOYMENT_LABEL] == str(deployment.pk)
    assert labels[manifests.REVISION_LABEL] == str(deployment.revision_id)
    assert made["spec"]["replicas"] == 2
    pod = made["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == f"127.0.0.1:5000/acumos/iris@{DIGEST}"
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 3330}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 3330}
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "1Gi"}
    assert container["resources"]["requests"] == manifests.DEFAULT_REQUESTS
    assert {"name": "RUNNER_PORT", "value": "3330"} in container["env"]
    assert {"name": "RUNNER_ADMIN_TOKEN_SHA256", "valueFrom": {"secretKeyRef": {
        "name": f"{name}-admin", "key": "RUNNER_ADMIN_TOKEN_SHA256"}}} in container["env"]
    assert not [item for item in container["env"] if item["name"] == "RUNNER_ADMIN_TOKEN"]
    assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert pod["nodeSelector"] == {"acumos.ai/pool": "models"}
    check_confined(pod)

    service = stored(fake, "services", name)
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 3330, "targetPort": 3330, "protocol": "TCP"}]
    assert service["spec"]["selector"] == made["spec"]["selector"]["matchLabels"]
    hpa = stored(fake, "horizontalpodautoscalers", name)["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 5)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    ingress = stored(fake, "ingresses", name)["spec"]
    assert ingress["ingressClassName"] == "nginx"
    assert ingress["rules"][0]["host"] == "iris.models.example.org"


def check_confined(pod: dict) -> None:
    """The securityContext as the API server received it: the pod's and the container's, each whole."""
    user = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["securityContext"] == {**user, "fsGroup": 10001}
    (container,) = pod["containers"]
    assert container["securityContext"] == {**user, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "privileged": False, "capabilities": {"drop": ["ALL"]}}
    assert pod["automountServiceAccountToken"] is False


def check_token_only_in_the_secret(fake, token: str) -> None:
    """The cluster gets the token's hash, in the Secret; the token itself is never sent, not even there."""
    secret = stored(fake, "secrets", fake.names("secrets", NAMESPACE)[0])
    assert secret["data"] == {"RUNNER_ADMIN_TOKEN_SHA256": base64.b64encode(token_sha256(token).encode()).decode()}
    hashed = [base64.b64encode(token_sha256(token).encode()).decode(), token_sha256(token)]
    for request in fake.requests:
        sent = json.dumps(request.body)
        assert token not in sent and base64.b64encode(token.encode()).decode() not in sent
        assert not any(value in sent for value in hashed) or request.resource == "secrets"


# ---------------------------------------------------------------- the backend directly

@pytest.fixture
def ready_revision(owner, example_bundle, inline_jobs):
    return with_image(onboarded(owner, example_bundle, inline_jobs), "acumos/iris")


def placed(backend: KubernetesBackend, deployment: Deployment) -> Deployment:
    placement = backend.start(deployment, Path("/nonexistent"), "token-for-the-backend-tests")
    Deployment.objects.filter(pk=deployment.pk).update(endpoint_url=placement.endpoint_url, handle=placement.handle)
    deployment.refresh_from_db()
    return deployment


def new_deployment(revision: Revision, target: Target, replicas: int = 1) -> Deployment:
    return DeploymentFactory(name="Iris for tests", target=target, revision=revision, replicas=replicas,
                             admin_token="")


def test_admin_urls_reach_every_ready_pod_when_the_portal_runs_in_the_cluster(fake, ready_revision):
    options = {"admin_via": "pods", "port": 18080}
    target = kubernetes_target(fake, **options)
    backend = KubernetesBackend(options, target.secret())
    deployment = placed(backend, new_deployment(ready_revision, target, replicas=2))

    assert deployment.endpoint_url == f"http://{deployment.handle['name']}.{NAMESPACE}.svc.cluster.local:3330"
    assert backend.admin_urls(deployment) == ["http://127.0.0.1:18080"]  # the fake gives every pod 127.0.0.1
    assert backend.is_running(deployment)
    listed = fake.sent("GET", "endpointslices")[-1]
    assert listed.query == {"labelSelector": f"kubernetes.io/service-name={deployment.handle['name']}"}

    backend.stop(deployment)
    assert not backend.is_running(deployment)
    with pytest.raises(BackendError, match="no pod of the Service .* is ready"):
        backend.admin_urls(deployment)
    assert KubernetesBackend({}, target.secret()).admin_urls(deployment) == [deployment.endpoint_url]


def two_pods(owner, fake, example_bundle, inline_jobs, tmp_path, runner_process, second_token=None):
    """A deployment of two pods, as two real runners on the two loopback addresses (127.0.0.1 and
    ::1) at one port; the second may hold another token (a replica that will refuse)."""
    iris = with_image(onboarded(owner, example_bundle, inline_jobs), "acumos/iris")
    text = with_image(onboarded(owner, builders.text_bundle(tmp_path / "text", tag="both"), inline_jobs),
                      "acumos/text")
    fake.pod_ips = ("127.0.0.1", "::1")
    port = free_port()
    target = kubernetes_target(fake, admin_via="pods", port=port, endpoint_base=f"http://127.0.0.1:{port}")
    deployment = services.deploy(revision=iris, target=target, user=owner, replicas=2)
    urls = [runner_process(example_bundle, deployment.admin_token(), port),
            runner_process(example_bundle, second_token or deployment.admin_token(), port, host="::1")]
    assert run(deployment.operations.get()).status == JobStatus.SUCCEEDED
    return deployment, text, urls


def serving(url: str) -> tuple[str, int]:
    active = requests.get(f"{url}/model", timeout=10).json()["active"]
    return active["name"], active["generation"]


def test_a_swap_reaches_every_replica(owner, fake, example_bundle, inline_jobs, tmp_path, runner_process):
    deployment, text, urls = two_pods(owner, fake, example_bundle, inline_jobs, tmp_path, runner_process)

    swapped = run(services.swap(deployment, text, owner))

    assert swapped.status == JobStatus.SUCCEEDED, swapped.error
    assert swapped.log.count("serving TextMeasure") == 2  # one line per replica
    assert [serving(url) for url in urls] == [("TextMeasure", 2), ("TextMeasure", 2)]
    back = run(services.rollback(deployment, owner))
    assert back.status == JobStatus.SUCCEEDED and [serving(url)[0] for url in urls] == ["IrisClassifier"] * 2


def test_a_replica_that_refuses_a_swap_takes_the_others_back(owner, fake, example_bundle, inline_jobs, tmp_path,
                                                              runner_process):
    deployment, text, urls = two_pods(owner, fake, example_bundle, inline_jobs, tmp_path, runner_process,
                                      second_token="not-this-deployments-token")

    refused = run(services.swap(deployment, text, owner))

    assert refused.status == JobStatus.FAILED and refused.error.startswith("the runner refused")
    # The first replica had switched; it went back, so the replicas never disagree.
    assert [serving(url)[0] for url in urls] == ["IrisClassifier"] * 2
    deployment.refresh_from_db()
    assert deployment.revision != text



# ---------------------------------------------------------------- a rollout on every replica

def canary_on_two_pods(owner, fake, example_bundle, inline_jobs, tmp_path, runner_process, second_token=None):
    """Two pods serving Iris 1.0.0 and a newer Iris (1.1.0, the same interface) started as a canary at 50 %:
    (deployment, rollout, the candidate operation, the two runners' URLs)."""
    deployment, _, urls = two_pods(owner, fake, example_bundle, inline_jobs, tmp_path, runner_process,
                                   second_token=second_token)
    services.set_rollout_settings(deployment, mode=RolloutMode.CANARY, steps=[50])
    newer_bundle = builders.iris_bundle(tmp_path / "iris-1.1")
    metadata = json.loads((newer_bundle / "metadata.json").read_text())
    (newer_bundle / "metadata.json").write_text(json.dumps({**metadata, "modelVersion": "1.1.0"}))
    newer = with_image(onboarded(owner, newer_bundle, inline_jobs), "acumos/iris")
    operation = run(services.start_rollout(deployment, newer, owner, trigger=Trigger.USER))
    return deployment, deployment.rollouts.get(revision=newer), operation, urls


def candidate_on(url: str, deployment) -> dict | None:
    """The candidate the runner holds (one that ended is described too, with its end: not held)."""
    try:
        candidate = runner_client.candidate(url, deployment.admin_token()).get("candidate")
    except RunnerError:
        return None
    return candidate if candidate and candidate.get("ended_at") is None else None


def test_a_canary_is_set_and_promoted_on_every_replica(owner, fake, example_bundle, inline_jobs, tmp_path,
                                                       runner_process):
    deployment, rollout, operation, urls = canary_on_two_pods(owner, fake, example_bundle, inline_jobs, tmp_path,
                                                              runner_process)
    assert operation.status == JobStatus.SUCCEEDED, operation.error
    assert operation.log.count("canary") == 2  # one line per replica
    assert [(c["state"], c["weight"], c["generation"]) for c in (candidate_on(u, deployment) for u in urls)] == \
        [("active", 50, 2)] * 2

    rollout.refresh_from_db()
    promoted = run(services.promote_rollout(rollout, owner))

    assert promoted.status == JobStatus.SUCCEEDED, promoted.error
    assert [serving(url) for url in urls] == [("IrisClassifier", 2)] * 2
    rollout.refresh_from_db()
    deployment.refresh_from_db()
    assert rollout.state == RolloutState.PROMOTED and deployment.revision == rollout.revision


def test_a_replica_that_refuses_the_candidate_leaves_none_on_the_others(owner, fake, example_bundle, inline_jobs,
                                                                       tmp_path, runner_process):
    deployment, rollout, operation, urls = canary_on_two_pods(owner, fake, example_bundle, inline_jobs, tmp_path,
                                                              runner_process, second_token="not-this-deployments")

    assert operation.status == JobStatus.FAILED and operation.error.startswith("the runner refused")
    # The first replica had taken the candidate; it dropped it, so that the replicas never disagree.
    assert [candidate_on(urls[0], deployment), serving(urls[0])] == [None, ("IrisClassifier", 1)]
    assert serving(urls[1]) == ("IrisClassifier", 1)
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.FAILED and "refused" in rollout.reason


def test_a_replica_that_refuses_the_promotion_takes_the_others_back(owner, fake, example_bundle, inline_jobs,
                                                                    tmp_path, runner_process):
    deployment, rollout, operation, urls = canary_on_two_pods(owner, fake, example_bundle, inline_jobs, tmp_path,
                                                              runner_process)
    assert operation.status == JobStatus.SUCCEEDED, operation.error
    runner_client.abort_candidate(urls[1], deployment.admin_token())  # the second one lost it meanwhile
    rollout.refresh_from_db()

    refused = run(services.promote_rollout(rollout, owner))

    assert refused.status == JobStatus.FAILED, refused.log
    # The first replica had promoted; it went back to the generation it served, and holds no candidate.
    assert [serving(url) for url in urls] == [("IrisClassifier", 1)] * 2
    assert [candidate_on(url, deployment) for url in urls] == [None, None]
    rollout.refresh_from_db()
    deployment.refresh_from_db()
    assert rollout.state == RolloutState.FAILED and deployment.revision == rollout.previous_revision

def test_options_dropped_since_the_last_start_take_their_objects_with_them(fake, ready_revision):
    target = kubernetes_target(fake)
    full = {"hpa": {"max": 3}, "ingress_host": "iris.example.org"}
    deployment = placed(KubernetesBackend(full, target.secret()), new_deployment(ready_revision, target))
    name = deployment.handle["name"]
    assert fake.names("horizontalpodautoscalers", NAMESPACE) == [name]
    assert deployment.endpoint_url == "https://iris.example.org"

    KubernetesBackend({}, target.secret()).restart(deployment, "token-for-the-backend-tests")

    assert fake.names("horizontalpodautoscalers", NAMESPACE) == []
    assert fake.names("ingresses", NAMESPACE) == []
    assert fake.names("deployments", NAMESPACE) == [name]


def test_a_namespace_is_created_only_when_asked(fake, ready_revision):
    target = kubernetes_target(fake)
    deployment = new_deployment(ready_revision, target)
    with pytest.raises(BackendError, match='creating Secret models/.*: the Kubernetes API answered 404 Not Found: '
                                           'namespaces "models" not found'):
        KubernetesBackend({"namespace": "models"}, target.secret()).start(deployment, Path("."), "t")

    KubernetesBackend({"namespace": "models", "create_namespace": True}, target.secret()).start(
        deployment, Path("."), "t")
    assert "models" in fake.names("namespaces")
    assert fake.get("deployments", "models", manifests.deployment_name(deployment))


# ---------------------------------------------------------------- failures say what and where

def test_a_forbidden_create_fails_the_operation_and_says_what_the_cluster_said(owner, fake, ready_revision):
    target = kubernetes_target(fake)
    message = ('deployments.apps is forbidden: User "system:serviceaccount:acumos:portal" cannot create '
               'resource "deployments" in API group "apps" in the namespace "acumos-deployments"')
    fake.fail("POST", "/deployments$", 403, message)
    deployment = services.deploy(revision=ready_revision, target=target, user=owner)

    failed = run(deployment.operations.get())

    assert failed.status == JobStatus.FAILED
    name = manifests.deployment_name(deployment)
    assert failed.error == (f"creating Deployment {NAMESPACE}/{name}: the Kubernetes API answered 403 Forbidden: "
                            f"{message}")
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.FAILED

    fake.failures.clear()
    assert run(services.destroy(deployment, owner)).status == JobStatus.SUCCEEDED  # what it did make goes
    assert fake.names("secrets", NAMESPACE) == []


def test_an_unreachable_api_server_fails_the_operation_clearly(owner, ready_revision):
    closed = free_port()  # nothing listens there
    target = TargetFactory(name="gone", kind=TargetKind.KUBERNETES, secret=kubeconfig(f"http://127.0.0.1:{closed}"))
    deployment = services.deploy(revision=ready_revision, target=target, user=owner)

    failed = run(deployment.operations.get())

    assert failed.status == JobStatus.FAILED
    assert failed.error.startswith(f"creating Secret {NAMESPACE}/{manifests.deployment_name(deployment)}-admin: "
                                   f"the Kubernetes API at http://127.0.0.1:{closed} could not be reached")
    assert "Connection refused" in failed.error


def test_pods_that_never_get_ready_fail_the_deploy_with_their_reasons(owner, fake, ready_revision):
    target = kubernetes_target(fake, timeout=1)
    deployment = services.deploy(revision=ready_revision, target=target, user=owner)
    name = manifests.deployment_name(deployment)
    fake.stall(name, "ImagePullBackOff", 'Back-off pulling image "127.0.0.1:5000/acumos/iris"')

    failed = run(deployment.operations.get())

    assert failed.status == JobStatus.FAILED
    assert failed.error == (f"the Deployment {NAMESPACE}/{name} was not ready after 1 s (0 of 1 pods ready): "
                            f'{name}-0: ImagePullBackOff (Back-off pulling image "127.0.0.1:5000/acumos/iris")')


def test_a_revision_without_an_image_is_refused_with_what_to_do(owner, fake, example_bundle, inline_jobs):
    revision = onboarded(owner, example_bundle, inline_jobs)
    deployment = services.deploy(revision=revision, target=kubernetes_target(fake), user=owner)

    failed = run(deployment.operations.get())

    assert failed.status == JobStatus.FAILED
    assert failed.error == f"revision {revision} has no image yet: build it first (Create microservice)"
    assert not fake.sent("POST")


def test_bad_options_are_refused_before_anything_is_sent(owner, fake, ready_revision):
    target = kubernetes_target(fake, hpa={"min": 4, "max": 2})
    deployment = services.deploy(revision=ready_revision, target=target, user=owner)

    failed = run(deployment.operations.get())

    assert failed.status == JobStatus.FAILED
    assert failed.error == "the target's options are wrong: option 'hpa': min 4 is more than max 2"
    assert not fake.requests


@pytest.mark.parametrize(("options", "error"), [
    ({"admin_via": "proxy"}, "option 'admin_via': 'proxy' is not one of endpoint, pods"),
    ({"timeout": 0}, "option 'timeout': 0 is not a whole number from 1 to 3600"),
    ({"endpoint_base": "127.0.0.1:8080"}, "option 'endpoint_base': '127.0.0.1:8080' is not an http:// or https://"),
    ({"endpoint_base": "http://{service}.example.org"}, "may use only the placeholders {name} and {namespace}"),
    ({"in_cluster": "yes"}, "option 'in_cluster': 'yes' is not true or false"),
    ({"replicas": 3}, "unknown option 'replicas': the allowed options are admin_via, create_namespace, "),
])
def test_backend_options_are_checked(options, error):
    with pytest.raises(BadOptions) as caught:
        checked_options(options)
    assert error in str(caught.value)


def test_endpoint_base_is_a_template_of_name_and_namespace():
    assert checked_options({"endpoint_base": "https://{name}.{namespace}.models.example.org/"}) == {
        "endpoint_base": "https://{name}.{namespace}.models.example.org"}


def test_a_target_without_credentials_says_how_to_give_them():
    with pytest.raises(BackendError, match="the target has no kubeconfig: set one as its secret, or set the option "
                                           "in_cluster: true"):
        _ = KubernetesBackend({}, "").api
    with pytest.raises(BackendError, match="the target's kubeconfig cannot be used"):
        _ = KubernetesBackend({}, "apiVersion: v1\nkind: Config\nclusters: []\n").api
    with pytest.raises(BackendError, match="the target's kubeconfig cannot be used: Service host/port is not set"):
        _ = KubernetesBackend({"in_cluster": True}, "").api
