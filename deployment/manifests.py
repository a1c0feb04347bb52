"""The Kubernetes objects and the docker-compose.yml of a model deployment, as plain dicts and text.

Pure functions of a Spec: nothing here calls an API or reads a record. The `kubernetes` backend
sends these objects to a cluster; deployment/bundle.py makes the Spec from the records and puts the
same objects, a docker-compose.yml and a README in a zip for whoever deploys by hand; the options
they take are checked by deployment/options.py.

The runner's admin token only ever goes into a Secret (or an env file), never into the Deployment,
so reading a Deployment does not hand out the right to swap its model. For the portal's own
deployments the Secret holds only the token's sha256 (RUNNER_ADMIN_TOKEN_SHA256): the model runs in
the runner's process, and finds no token there to reuse.

A model is code from a stranger: the pod and its container run as the image's non-root user with no
capability, no privilege escalation, the runtime's default seccomp profile and a read-only root
filesystem; the runner writes only to its state volume and /tmp. The compose file takes the same stance.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml

from runner_image.settings import token_sha256

RUNNER_PORT = 3330  # the Service's port, whatever port the runner listens on inside the pod
DEFAULT_NAMESPACE = "acumos-deployments"
TOKEN_KEY = "RUNNER_ADMIN_TOKEN"  # the Secret's key is the variable's name: `--from-env-file` makes it so
TOKEN_SHA256_KEY = "RUNNER_ADMIN_TOKEN_SHA256"  # what the portal's Secrets hold: the token's sha256, in hex
# A licensed model's metering (licensing.entitlements.runner_environment): the portal's to set, per deployment.
METERING_KEYS = ("RUNNER_REQUIRE_ENTITLEMENT", "RUNNER_DEPLOYMENT_ID", "RUNNER_ENTITLEMENT_KEYS")
RUNNER_UID = 10001  # the image's `runner` user (runner_image/Dockerfile)
PIDS_LIMIT = 1024  # processes and threads (compose; Kubernetes sets it per node, in the kubelet)
TMP_SIZE = "512m"  # a hot swap spools the upload in /tmp: about twice the package's size
CONTAINER = "runner"
STATE_DIR = "/var/lib/runner"
MANAGED_BY = "acumos-portal"
DEPLOYMENT_LABEL = "ai.acumos.deployment.id"
REVISION_LABEL = "ai.acumos.revision.id"
NAME_LABEL = "app.kubernetes.io/name"
DEFAULT_REQUESTS = {"cpu": "100m", "memory": "256Mi"}  # an autoscaler needs a cpu request to scale on


@dataclass(frozen=True)
class Spec:
    """What the objects are made from. `options` are checked ones (deployment.options.check_options)."""

    name: str  # every object's name: a DNS-1035 label
    image: str
    replicas: int = 1
    deployment_id: str = ""
    revision_id: str = ""
    options: Mapping = field(default_factory=dict)
    token_key: str = TOKEN_SHA256_KEY  # the Secret's key and the variable: TOKEN_KEY for a person's own token
    environment: Mapping = field(default_factory=dict)  # the portal's own variables: a licensed model's metering

    @property
    def namespace(self) -> str:
        return self.options.get("namespace", DEFAULT_NAMESPACE)

    @property
    def port(self) -> int:
        return self.options.get("port", RUNNER_PORT)

    @property
    def secret_name(self) -> str:
        return secret_name(self.name)


# ---------------------------------------------------------------- names and labels

def object_name(text: str, unique: str = "") -> str:
    """A DNS-1035 label (Services need one) from a human name, with `unique` appended to keep two
    deployments of the same name apart."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    suffix = f"-{unique}" if unique else ""
    slug = slug[: 63 - len(suffix)].strip("-")
    if not slug or not slug[0].isalpha():
        slug = f"m-{slug}"[: 63 - len(suffix)].strip("-")
    return slug + suffix


def deployment_name(deployment) -> str:
    """The objects' name for a Deployment record: the user's name for it, else what it serves (when the
    objects are made: the name stays after a swap), made unique by its id."""
    return object_name(deployment.name or deployment.serving_name, deployment.pk.hex[:8])


def secret_name(name: str) -> str:
    return f"{name}-admin"


def selector(spec: Spec) -> dict:
    """The pods' identity; a Deployment's selector cannot change, so no revision in it."""
    labels = {NAME_LABEL: spec.name}
    if spec.deployment_id:
        labels[DEPLOYMENT_LABEL] = spec.deployment_id
    return labels


def labels(spec: Spec) -> dict:
    extra = {REVISION_LABEL: spec.revision_id} if spec.revision_id else {}
    return {**selector(spec), "app.kubernetes.io/component": "model-runner",
            "app.kubernetes.io/managed-by": MANAGED_BY, **extra}


def _metadata(spec: Spec, name: str = "") -> dict:
    return {"name": name or spec.name, "namespace": spec.namespace, "labels": labels(spec)}


# ---------------------------------------------------------------- objects

def namespace(spec: Spec) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": spec.namespace, "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}}}


def secret(spec: Spec, admin_token: str) -> dict:
    """The admin token's sha256 (or, for spec.token_key TOKEN_KEY, the token): what the runner checks
    a bearer token against."""
    value = admin_token if spec.token_key == TOKEN_KEY else token_sha256(admin_token)
    encoded = base64.b64encode(value.encode()).decode()
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": _metadata(spec, spec.secret_name), "data": {spec.token_key: encoded}}


def _probe(path: str, spec: Spec, **timing) -> dict:
    return {"httpGet": {"path": path, "port": spec.port}, "timeoutSeconds": 3, **timing}


def _environment(spec: Spec) -> list[dict]:
    """The port, the token from the Secret, the target's `env` option, then the portal's own variables
    (a metered deployment's: public keys and ids, nothing secret)."""
    token = {"secretKeyRef": {"name": spec.secret_name, "key": spec.token_key}}
    given = {**spec.options.get("env", {}), **spec.environment}
    extra = [{"name": k, "value": v} for k, v in given.items()]
    return [{"name": "RUNNER_PORT", "value": str(spec.port)}, {"name": spec.token_key, "valueFrom": token}, *extra]


def _user() -> dict:
    return {"runAsNonRoot": True, "runAsUser": RUNNER_UID, "runAsGroup": RUNNER_UID,
            "seccompProfile": {"type": "RuntimeDefault"}}


def _resources_of(spec: Spec) -> dict:
    given = spec.options.get("resources", {})
    return {"requests": {**DEFAULT_REQUESTS, **given.get("requests", {})},
            **({"limits": given["limits"]} if given.get("limits") else {})}


def container(spec: Spec) -> dict:
    body = {
        "name": CONTAINER, "image": spec.image, "imagePullPolicy": "IfNotPresent", "env": _environment(spec),
        # Model loading can take minutes: the startup probe holds the liveness probe off until then.
        "startupProbe": _probe("/v2/health/live", spec, periodSeconds=5, failureThreshold=60),
        "readinessProbe": _probe("/v2/health/ready", spec, periodSeconds=5, failureThreshold=3),
        "livenessProbe": _probe("/v2/health/live", spec, periodSeconds=10, failureThreshold=3),
        "resources": _resources_of(spec),
        # The pod's user and seccomp profile again, so that the container holds them on its own.
        "securityContext": {**_user(), "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "privileged": False, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "state", "mountPath": STATE_DIR}, {"name": "tmp", "mountPath": "/tmp"}],
    }
    if not spec.options.get("host_network"):  # on the host's network podman refuses port mappings
        body["ports"] = [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}]
    return body


def _placement(spec: Spec) -> dict:
    wanted = spec.options.get("node_selector")
    if not wanted:
        return {}
    if spec.options.get("placement", "strict") == "strict":
        return {"nodeSelector": dict(wanted)}
    terms = [{"key": k, "operator": "In", "values": [v]} for k, v in wanted.items()]
    preferred = [{"weight": 100, "preference": {"matchExpressions": terms}}]
    return {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": preferred}}}


def pod_spec(spec: Spec) -> dict:
    security = {**_user(), "fsGroup": RUNNER_UID}  # fsGroup: the state volume is the runner's to write
    body = {"automountServiceAccountToken": False,  # the runner never calls the Kubernetes API
            "securityContext": security, "containers": [container(spec)],
            "volumes": [{"name": "state", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
            **_placement(spec)}
    if spec.options.get("image_pull_secret"):
        body["imagePullSecrets"] = [{"name": spec.options["image_pull_secret"]}]
    if spec.options.get("host_network"):
        body["hostNetwork"] = True
    return body


def deployment(spec: Spec) -> dict:
    # A new pod must be ready before an old one goes: a restart or image change drops no request.
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _metadata(spec),
            "spec": {"replicas": spec.replicas, "selector": {"matchLabels": selector(spec)}, "strategy": strategy,
                     "template": {"metadata": {"labels": labels(spec)}, "spec": pod_spec(spec)}}}


def service(spec: Spec) -> dict:
    port = {"name": "http", "port": RUNNER_PORT, "targetPort": spec.port, "protocol": "TCP"}
    return {"apiVersion": "v1", "kind": "Service", "metadata": _metadata(spec),
            "spec": {"type": "ClusterIP", "selector": selector(spec), "ports": [port]}}


def autoscaler(spec: Spec) -> dict | None:
    hpa = spec.options.get("hpa")
    if not hpa:
        return None
    target = {"type": "Utilization", "averageUtilization": hpa["cpu_percent"]}
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": _metadata(spec),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
                     "minReplicas": hpa["min"], "maxReplicas": hpa["max"],
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": target}}]}}


def ingress(spec: Spec) -> dict | None:
    host = spec.options.get("ingress_host")
    if not host:
        return None
    backend = {"service": {"name": spec.name, "port": {"number": RUNNER_PORT}}}
    body = {"rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}]}
    if spec.options.get("ingress_class"):
        body["ingressClassName"] = spec.options["ingress_class"]
    if spec.options.get("ingress_tls_secret"):
        body["tls"] = [{"hosts": [host], "secretName": spec.options["ingress_tls_secret"]}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": _metadata(spec), "spec": body}


def objects(spec: Spec, admin_token: str | None = None, *, with_namespace: bool = False) -> list[dict]:
    """In the order they are applied: a Deployment's pods need the Secret first."""
    made = [namespace(spec) if with_namespace else None, secret(spec, admin_token) if admin_token else None,
            deployment(spec), service(spec), autoscaler(spec), ingress(spec)]
    return [item for item in made if item is not None]


def kubernetes_yaml(spec: Spec, admin_token: str | None = None, *, with_namespace: bool = True) -> str:
    """Multi-document YAML for `kubectl apply -f`. Without a token, no Secret: it is made by hand."""
    return yaml.safe_dump_all(objects(spec, admin_token, with_namespace=with_namespace), sort_keys=False)


def compose_yaml(spec: Spec, *, publish: int = RUNNER_PORT) -> str:
    """A docker-compose.yml running the image with the admin token from `.env`. The state volume
    keeps the swap history, so `docker compose up` after a `down` serves what it served last. The
    container is confined as the docker target's are (deployment/backends/docker.py)."""
    check = (f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{spec.port}/v2/health/ready', "
             f"timeout=2)")
    runner = {
        "image": spec.image, "restart": "unless-stopped", "env_file": [".env"],
        "environment": {"RUNNER_PORT": str(spec.port), **spec.options.get("env", {})},
        "ports": [f"{publish}:{spec.port}"],
        "user": f"{RUNNER_UID}:{RUNNER_UID}", "read_only": True,
        "tmpfs": [f"/tmp:rw,noexec,nosuid,nodev,size={TMP_SIZE},mode=1777"], "volumes": [f"runner-state:{STATE_DIR}"],
        "cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"], "pids_limit": PIDS_LIMIT,
        "healthcheck": {"test": ["CMD", "python3", "-c", check], "interval": "10s", "timeout": "3s",
                        "retries": 3, "start_period": "60s"},
    }
    return yaml.safe_dump({"services": {spec.name: runner}, "volumes": {"runner-state": {}}}, sort_keys=False)
