"""The Kubernetes objects, the docker-compose.yml (deployment/manifests.py), their options
(deployment/options.py) and the deployment bundle (deployment/bundle.py).

No Kubernetes API server can run here. So the objects are checked three ways instead: against
the API schema, by a lossless round trip through the kubernetes client's models (they are
generated from the Kubernetes OpenAPI document, and unknown fields or wrong types do not survive
it); by `kubectl apply --dry-run=client`, which parses them and maps every kind through API
discovery (served by the fake API server of fake_kubernetes.py; kubectl's own schema check needs
a real server's OpenAPI document, so it is off); and for real: the iris image that onboarding
builds runs from the generated YAML with `podman kube play`, and answers.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import shutil
import subprocess
import time
import uuid
import zipfile

import pytest
import requests
import yaml
from kubernetes import client

from deployment import manifests
from deployment.bundle import NoImage, deployment_bundle, image_of
from deployment.options import BadOptions, check_options
from marketplace.choices import ArtifactKind
from marketplace.models import Artifact, Revision
from runner_image.settings import token_sha256

from ..bundles import builders
from ..images.conftest import free_port
from .conftest import onboarded
from .fake_kubernetes import FakeServer, kubeconfig

pytestmark = pytest.mark.django_db  # the package's autouse fixture reads the database after each test

IMAGE = "127.0.0.1:5000/acumos/iris@sha256:" + "b2" * 32
FULL_OPTIONS = {
    "namespace": "models", "port": 8080, "image_pull_secret": "registry-credentials",
    "node_selector": {"acumos.ai/pool": "models", "kubernetes.io/arch": "amd64"},
    "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": 2, "memory": "1Gi"}},
    "hpa": {"min": 2, "max": 6}, "ingress_host": "iris.example.org", "ingress_class": "nginx",
    "ingress_tls_secret": "iris-tls", "env": {"RUNNER_WORKERS": "2"},
}
MODELS = {"Namespace": client.V1Namespace, "Secret": client.V1Secret, "Deployment": client.V1Deployment,
          "Service": client.V1Service, "HorizontalPodAutoscaler": client.V2HorizontalPodAutoscaler,
          "Ingress": client.V1Ingress}


def spec(**options) -> manifests.Spec:
    return manifests.Spec(name="iris-1-0-0", image=IMAGE, replicas=3, deployment_id=str(uuid.uuid4()),
                          revision_id=str(uuid.uuid4()), options=check_options(options))


def by_kind(objects: list[dict]) -> dict[str, dict]:
    return {item["kind"]: item for item in objects}


# ---------------------------------------------------------------- the objects

def test_a_plain_spec_makes_a_secret_a_deployment_and_a_service():
    made = manifests.objects(spec(), "the-token")
    assert [item["kind"] for item in made] == ["Secret", "Deployment", "Service"]
    assert {item["metadata"]["namespace"] for item in made} == {"acumos-deployments"}
    secret, deployment, service = made
    # Only the token's hash, which the runner checks a bearer token against: not the token itself.
    hashed = base64.b64encode(token_sha256("the-token").encode()).decode()
    assert secret["data"] == {"RUNNER_ADMIN_TOKEN_SHA256": hashed}
    assert "the-token" not in json.dumps(made)
    assert base64.b64encode(b"the-token").decode() not in json.dumps(made)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["ports"] == [{"name": "http", "containerPort": 3330, "protocol": "TCP"}]
    assert container["resources"] == {"requests": manifests.DEFAULT_REQUESTS}
    assert "nodeSelector" not in pod and "imagePullSecrets" not in pod and "hostNetwork" not in pod
    assert {"name": "RUNNER_ADMIN_TOKEN_SHA256", "valueFrom": {"secretKeyRef": {
        "name": "iris-1-0-0-admin", "key": "RUNNER_ADMIN_TOKEN_SHA256"}}} in container["env"]
    assert not [item for item in container["env"] if item["name"] == "RUNNER_ADMIN_TOKEN"]
    assert_confined(pod)
    assert pod["automountServiceAccountToken"] is False
    assert service["spec"]["ports"][0]["port"] == 3330
    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert manifests.REVISION_LABEL not in deployment["spec"]["selector"]["matchLabels"]  # a selector is for good


def assert_confined(pod: dict) -> None:
    """A model is code from a stranger: the pod and its container say so, each on its own."""
    user = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["securityContext"] == {**user, "fsGroup": 10001}
    (container,) = pod["containers"]
    assert container["securityContext"] == {**user, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "privileged": False, "capabilities": {"drop": ["ALL"]}}
    # With a read-only root, the runner writes to its state and /tmp only: two volumes of the pod's own.
    assert container["volumeMounts"] == [{"name": "state", "mountPath": "/var/lib/runner"},
                                         {"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "state", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
    assert "hostPID" not in pod and "hostIPC" not in pod


def test_every_option_shows_where_it_belongs():
    made = by_kind(manifests.objects(spec(**FULL_OPTIONS), "t", with_namespace=True))
    assert made["Namespace"]["metadata"]["name"] == "models"
    pod = made["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080}
    assert {"name": "RUNNER_PORT", "value": "8080"} in container["env"]
    assert {"name": "RUNNER_WORKERS", "value": "2"} in container["env"]
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"},
                                      "limits": {"cpu": "2", "memory": "1Gi"}}
    assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert pod["nodeSelector"] == FULL_OPTIONS["node_selector"]
    assert made["Service"]["spec"]["ports"][0] == {"name": "http", "port": 3330, "targetPort": 8080,
                                                   "protocol": "TCP"}
    hpa = made["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"], hpa["scaleTargetRef"]["name"]) == (2, 6, "iris-1-0-0")
    assert hpa["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 80}
    ingress = made["Ingress"]["spec"]
    assert ingress["ingressClassName"] == "nginx"
    assert ingress["tls"] == [{"hosts": ["iris.example.org"], "secretName": "iris-tls"}]
    assert ingress["rules"][0]["http"]["paths"][0]["backend"]["service"] == {"name": "iris-1-0-0",
                                                                            "port": {"number": 3330}}


def test_preferred_placement_is_a_node_affinity_and_host_network_has_no_port_mapping():
    pod = manifests.pod_spec(spec(node_selector={"gpu": "yes"}, placement="preferred", host_network=True))
    assert "nodeSelector" not in pod
    preferred = pod["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred == [{"weight": 100, "preference": {"matchExpressions": [
        {"key": "gpu", "operator": "In", "values": ["yes"]}]}}]
    assert pod["hostNetwork"] is True and "ports" not in pod["containers"][0]
    assert_confined(pod)  # on the host's network too


@pytest.mark.parametrize("options", [{}, FULL_OPTIONS, {"host_network": True, "node_selector": {"a": "b"},
                                                        "placement": "preferred"}])
def test_the_objects_fit_the_kubernetes_api_schema(options):
    """The client's models come from the Kubernetes OpenAPI document: a field they do not know
    is dropped, a wrong type refused, so only a valid object comes back unchanged."""
    api = client.ApiClient()
    for item in manifests.objects(spec(**options), "t", with_namespace=True):
        assert api.sanitize_for_serialization(MODELS[item["kind"]].from_dict(item)) == item, item["kind"]


def test_the_yaml_is_the_objects_in_order():
    full = spec(**FULL_OPTIONS)
    documents = list(yaml.safe_load_all(manifests.kubernetes_yaml(full, "t")))
    assert documents == manifests.objects(full, "t", with_namespace=True)
    assert [d["kind"] for d in documents] == ["Namespace", "Secret", "Deployment", "Service",
                                              "HorizontalPodAutoscaler", "Ingress"]
    assert [d["kind"] for d in yaml.safe_load_all(manifests.kubernetes_yaml(spec()))] == [
        "Namespace", "Deployment", "Service"]  # no token given: no Secret


def test_compose_runs_the_image_with_the_token_from_the_env_file():
    compose = yaml.safe_load(manifests.compose_yaml(spec(port=8080, env={"RUNNER_WORKERS": "2"}), publish=9000))
    runner = compose["services"]["iris-1-0-0"]
    assert runner["image"] == IMAGE
    assert runner["env_file"] == [".env"]
    assert runner["environment"] == {"RUNNER_PORT": "8080", "RUNNER_WORKERS": "2"}
    assert runner["ports"] == ["9000:8080"]
    assert runner["healthcheck"]["test"][:3] == ["CMD", "python3", "-c"]
    assert "http://127.0.0.1:8080/v2/health/ready" in runner["healthcheck"]["test"][3]
    assert runner["volumes"] == ["runner-state:/var/lib/runner"] and "runner-state" in compose["volumes"]
    assert "RUNNER_ADMIN_TOKEN" not in json.dumps(runner)
    # As the docker target runs its containers (deployment/backends/docker.py).
    assert runner["user"] == "10001:10001"
    assert (runner["cap_drop"], runner["security_opt"], runner["read_only"]) == (
        ["ALL"], ["no-new-privileges:true"], True)
    assert runner["tmpfs"] == ["/tmp:rw,noexec,nosuid,nodev,size=512m,mode=1777"]
    assert runner["pids_limit"] == 1024


# ---------------------------------------------------------------- names, images, options

@pytest.mark.parametrize(("text", "unique", "name"), [
    ("Iris Classifier 1.0.0", "", "iris-classifier-1-0-0"),
    ("Iris Classifier", "1a2b3c4d", "iris-classifier-1a2b3c4d"),
    ("3D model", "", "m-3d-model"),
    ("Ünïcode ✓ only", "", "n-code-only"),
    ("", "1a2b3c4d", "m-1a2b3c4d"),
    ("x" * 100, "1a2b3c4d", "x" * 54 + "-1a2b3c4d"),
])
def test_object_names_are_dns_labels(text, unique, name):
    assert manifests.object_name(text, unique) == name
    assert len(name) <= 63


def with_image(revision: Revision, uri: str) -> Revision:
    Artifact.objects.create(revision=revision, kind=ArtifactKind.IMAGE, name="image", uri=uri)
    return revision


@pytest.fixture
def iris(owner, example_bundle, inline_jobs, settings) -> Revision:
    settings.ACUMOS_IMAGE_BUILDER = ""  # the image reference is given below; nothing is built
    return onboarded(owner, example_bundle, inline_jobs)


def test_the_image_is_pinned_by_digest_and_may_move_to_another_registry(iris):
    with_image(iris, "127.0.0.1:5000/acumos/iris:1.0.0@sha256:" + "c3" * 32)
    assert image_of(iris) == "127.0.0.1:5000/acumos/iris@sha256:" + "c3" * 32
    assert image_of(iris, "registry.example.org:5443") == (
        "registry.example.org:5443/acumos/iris@sha256:" + "c3" * 32)


def test_a_revision_without_an_image_says_to_build_it(iris):
    with pytest.raises(NoImage) as caught:
        deployment_bundle(iris)
    assert str(caught.value) == f"revision {iris} has no image yet: build it first (Create microservice)"


@pytest.mark.parametrize(("options", "error"), [
    ({"replicas": 2, "zone": "a"}, "unknown option 'replicas', 'zone': the allowed options are create_namespace, "),
    ({"namespace": "Models"}, "option 'namespace': 'Models' is not a namespace name (up to 63 lowercase letters"),
    ({"port": 80}, "option 'port': 80 is not a whole number from 1024 to 65535"),
    ({"port": "8080"}, "option 'port': '8080' is not a whole number from 1024 to 65535"),
    ({"resources": {"limits": {"memory": "lots"}}}, "option 'resources': 'lots' is not a Kubernetes quantity such "
                                                    "as 500m, 2, 512Mi or 1Gi"),
    ({"resources": {"limits": {"gpu": "1"}}}, "option 'resources': 'gpu' is not one of cpu, memory, ephemeral-storage"),
    ({"resources": {"maximum": {}}}, "option 'resources': 'maximum' is not one of requests, limits"),
    ({"node_selector": {"bad key!": "x"}}, "option 'node_selector': the label key 'bad key!' is not [prefix/]name"),
    ({"node_selector": ["pool=models"]}, "option 'node_selector': ['pool=models'] is not a mapping"),
    ({"placement": "anywhere"}, "option 'placement': 'anywhere' is not one of strict, preferred"),
    ({"hpa": {"min": 1}}, "option 'hpa': {'min': 1} is not {min, max, cpu_percent} (max is required)"),
    ({"hpa": {"max": 3, "cpu_percent": 0}}, "option 'hpa': 0 is not a whole number from 1 to 1000"),
    ({"ingress_host": "https://iris.example.org"}, "option 'ingress_host': 'https://iris.example.org' is not a DNS "
                                                   "name"),
    ({"env": {"RUNNER_ADMIN_TOKEN": "x"}}, "option 'env': 'RUNNER_ADMIN_TOKEN' is not a variable name, or it is "
                                           "one the portal sets"),
    ({"env": {"RUNNER_ADMIN_TOKEN_SHA256": "0" * 64}}, "option 'env': 'RUNNER_ADMIN_TOKEN_SHA256' is not a "
                                                        "variable name, or it is one the portal sets"),
    ({"host_network": "true"}, "option 'host_network': 'true' is not true or false"),
    ({"image_registry": "https://registry"}, "option 'image_registry': 'https://registry' is not a registry host"),
])
def test_wrong_options_say_which_what_and_what_is_allowed(options, error):
    with pytest.raises(BadOptions) as caught:
        check_options(options)
    assert str(caught.value).startswith(error)
    assert isinstance(caught.value, ValueError)


def test_options_must_be_a_mapping():
    with pytest.raises(BadOptions, match="the options must be a mapping of names to values, not list"):
        check_options(["namespace"])


# ---------------------------------------------------------------- the deployment bundle

def test_the_bundle_deploys_by_hand_and_holds_no_real_token(iris):
    with_image(iris, IMAGE)
    archive = zipfile.ZipFile(io.BytesIO(deployment_bundle(iris)))
    assert sorted(archive.namelist()) == [".env.example", "README.md", "docker-compose.yml", "kubernetes.yaml"]
    name = manifests.object_name(f"{iris.solution.name}-{iris.version}")

    documents = list(yaml.safe_load_all(archive.read("kubernetes.yaml")))
    assert [d["kind"] for d in documents] == ["Namespace", "Deployment", "Service"]  # the Secret is made by hand
    assert documents[1]["metadata"]["name"] == name
    assert documents[1]["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    # A person's own token, from the .env file the README makes the Secret from (the runner takes both).
    assert {"name": "RUNNER_ADMIN_TOKEN", "valueFrom": {"secretKeyRef": {"name": f"{name}-admin",
                                                                         "key": "RUNNER_ADMIN_TOKEN"}}} in (
        documents[1]["spec"]["template"]["spec"]["containers"][0]["env"])
    assert_confined(documents[1]["spec"]["template"]["spec"])
    compose = yaml.safe_load(archive.read("docker-compose.yml"))
    assert compose["services"][name]["image"] == IMAGE
    assert archive.read(".env.example").decode().splitlines()[-1] == "RUNNER_ADMIN_TOKEN=change-me"

    readme = archive.read("README.md").decode()
    assert "kubectl apply -f kubernetes.yaml" in readme
    assert f"create secret generic {name}-admin --from-env-file=.env" in readme
    assert "docker compose up -d" in readme
    assert "no capabilities, no new privileges, a read-only root filesystem" in readme
    assert "RUNNER_ADMIN_TOKEN_SHA256=$(printf %s \"$RUNNER_ADMIN_TOKEN\" | sha256sum | cut -d' ' -f1)" in readme
    sample = json.dumps(builders.IRIS_SAMPLE)
    assert "curl -X POST http://127.0.0.1:3330/model/methods/classify \\\n" in readme
    assert f"-d '{sample}'" in readme  # the model's own sample, which onboarding checked it answers
    assert 'curl -X PUT http://127.0.0.1:3330/model -H "Authorization: Bearer $RUNNER_ADMIN_TOKEN"' in readme
    assert "-F model=@modelpackage.zip -F proto=@model.proto -F metadata=@metadata.json" in readme


def test_the_revision_page_offers_the_bundle_once_there_is_an_image(iris, owner, other_user, client_for):
    url = f"/revisions/{iris.pk}/deployment-bundle.zip"
    page = client_for(owner).get(f"/revisions/{iris.pk}/").content.decode()
    assert url not in page
    missing = client_for(owner).get(url, follow=True)
    assert missing.redirect_chain == [(f"/revisions/{iris.pk}/#image", 302)]
    assert "The deployment bundle appears once an image of this version is built" in missing.content.decode()

    with_image(iris, IMAGE)
    assert url in client_for(owner).get(f"/revisions/{iris.pk}/").content.decode()
    response = client_for(owner).get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == f'attachment; filename="irisclassifier-{iris.version}-deployment.zip"'
    assert "kubernetes.yaml" in zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert client_for(other_user).get(url).status_code == 404
    assert client_for(None).get(url).status_code == 302  # to the sign-in page


def test_the_bundle_takes_a_name(iris):
    with_image(iris, IMAGE)
    archive = zipfile.ZipFile(io.BytesIO(deployment_bundle(iris, name="Iris in Production")))
    compose = yaml.safe_load(archive.read("docker-compose.yml"))
    assert list(compose["services"]) == ["iris-in-production"]


# ---------------------------------------------------------------- kubectl

def kubectl_dry_run(text: str, tmp_path) -> str:
    if not shutil.which("kubectl"):
        pytest.fail("this test needs kubectl: run `bash scripts/ensure-kubectl.sh`", pytrace=False)
    manifest = tmp_path / "kubernetes.yaml"
    manifest.write_text(text)
    with FakeServer() as fake:
        (tmp_path / "kubeconfig").write_text(kubeconfig(fake.host))
        result = subprocess.run(
            ["kubectl", "apply", "--dry-run=client", "--validate=false", "-f", str(manifest),
             "--cache-dir", str(tmp_path / "kube-cache")],
            env={**os.environ, "KUBECONFIG": str(tmp_path / "kubeconfig")}, capture_output=True, text=True,
            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_kubectl_takes_the_yaml(iris, tmp_path):
    out = kubectl_dry_run(manifests.kubernetes_yaml(spec(**FULL_OPTIONS), "t"), tmp_path)
    assert out.splitlines() == [
        "namespace/models created (dry run)", "secret/iris-1-0-0-admin created (dry run)",
        "deployment.apps/iris-1-0-0 created (dry run)", "service/iris-1-0-0 created (dry run)",
        "horizontalpodautoscaler.autoscaling/iris-1-0-0 created (dry run)",
        "ingress.networking.k8s.io/iris-1-0-0 created (dry run)"]

    with_image(iris, IMAGE)
    bundle = zipfile.ZipFile(io.BytesIO(deployment_bundle(iris)))
    assert "created (dry run)" in kubectl_dry_run(bundle.read("kubernetes.yaml").decode(), tmp_path)


# ---------------------------------------------------------------- for real, with podman

def podman(*args: str, check: bool = True, timeout: float = 300, stdin: str | None = None):
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False,
                            input=stdin)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({result.returncode}): {result.stderr[-3000:]}")
    return result


@pytest.fixture
def podman_kube(tmp_path):
    """`podman_kube(yaml_text, secret)` runs the YAML with `podman kube play` on the host's network;
    the pod, the podman secret and the pulled image are removed after, even when the test fails."""
    if not shutil.which("podman"):
        pytest.fail("this test needs podman: run `bash scripts/ensure-podman.sh`", pytrace=False)
    played: list[tuple] = []

    def play(text: str, secret: dict) -> None:
        manifest = tmp_path / f"podman-{len(played)}.yaml"
        manifest.write_text(text)
        played.append((manifest, secret["metadata"]["name"]))
        # podman 4.3 reads a secretKeyRef from a podman secret holding the Secret's data as JSON
        # (it stores a Secret document from the YAML in a form it then cannot read back).
        podman("secret", "create", secret["metadata"]["name"], "-", stdin=json.dumps(secret["data"]))
        podman("kube", "play", "--network", "host", "--tls-verify=false", str(manifest))

    yield play
    for manifest, secret_name in played:
        podman("kube", "down", str(manifest), check=False)
        podman("secret", "rm", secret_name, check=False)
        for document in yaml.safe_load_all(manifest.read_text()):
            if document["kind"] == "Deployment":
                podman("rmi", "--force", document["spec"]["template"]["spec"]["containers"][0]["image"], check=False)


def wait_ready(url: str, container: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    logs = podman("logs", "--tail", "40", container, check=False)
    raise AssertionError(f"{container} did not become ready at {url}: {logs.stdout[-2000:]} {logs.stderr[-2000:]}")


def test_the_generated_yaml_runs_the_onboarded_image_with_podman(
        image_settings, owner, example_bundle, inline_jobs, podman_kube):  # noqa: F811
    image_settings("daemonless")
    revision = onboarded(owner, example_bundle, inline_jobs)
    port = free_port()
    spec_for_podman = manifests.Spec(
        name=f"iris-podman-{uuid.uuid4().hex[:8]}", image=image_of(revision), revision_id=str(revision.pk),
        options=check_options({"host_network": True, "port": port,
                                         "env": {"RUNNER_HOST": "127.0.0.1"},  # this host's loopback only
                                         "resources": {"limits": {"memory": "1Gi"}}}))
    token = f"podman-token-{uuid.uuid4().hex}"  # as the portal makes one per deployment
    documents = manifests.objects(spec_for_podman, token, with_namespace=True)
    secret = next(d for d in documents if d["kind"] == "Secret")
    assert token not in json.dumps(documents)  # the Secret holds the hash, as for the portal's deployments
    podman_kube(yaml.safe_dump_all([d for d in documents if d["kind"] != "Secret"]), secret)

    url, container = f"http://127.0.0.1:{port}", f"{spec_for_podman.name}-pod-0-runner"  # podman's naming
    wait_ready(url, container)
    running = podman("inspect", "--format", "{{.ImageName}} {{.Config.User}} {{.HostConfig.ReadonlyRootfs}}",
                     container)
    assert running.stdout.split() == [spec_for_podman.image, "10001:10001", "true"]  # as the YAML says
    assert_confined_in(container, token)
    answer = requests.post(f"{url}/model/methods/classify", json=builders.IRIS_VIRGINICA, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"species": 2}

    # The admin token reached the runner from the Secret: a swap with it is taken, without it refused.
    files = {part: (example_bundle / name).read_bytes() for part, name in
             {"model": "modelpackage.zip", "proto": "model.proto", "metadata": "metadata.json"}.items()}
    assert requests.put(f"{url}/model", files=files, timeout=60,
                        headers={"Authorization": "Bearer wrong"}).status_code in (401, 403)
    swapped = requests.put(f"{url}/model", files=files, timeout=120, headers={"Authorization": f"Bearer {token}"})
    assert swapped.status_code == 200, swapped.text
    assert swapped.json()["generation"] == 2


def assert_confined_in(container: str, token: str) -> None:
    """What the securityContext made of the runner (pid 1 of its container), seen from inside."""
    status = {key: value.strip() for key, _, value in
              (line.partition(":") for line in podman("exec", container, "cat", "/proc/1/status").stdout.splitlines())}
    assert (status["Uid"].split()[0], status["Gid"].split()[0]) == ("10001", "10001")
    assert status["CapEff"] == status["CapPrm"] == status["CapBnd"] == "0" * 16  # drop ALL
    assert status["NoNewPrivs"] == "1"  # allowPrivilegeEscalation: false
    assert status["Seccomp"] == "2"  # a filtering seccomp profile
    environ = podman("exec", container, "cat", "/proc/1/environ").stdout.split("\0")
    assert f"RUNNER_ADMIN_TOKEN_SHA256={token_sha256(token)}" in environ
    assert not [item for item in environ if item.startswith("RUNNER_ADMIN_TOKEN=") or token in item]
    assert "Read-only file system" in podman("exec", container, "touch", "/app/bundle/changed", check=False).stderr
    podman("exec", container, "touch", "/var/lib/runner/written", "/tmp/written")  # its two writable places
