"""Kubernetes objects and a hand-deployable bundle for a model deployment, as plain dicts and text.

Pure functions: nothing here calls an API. The `kubernetes` backend sends these objects to a
cluster; `deployment_bundle` puts the same objects, a docker-compose.yml and a README in a zip for
whoever deploys by hand. The runner's admin token only ever goes into a Secret (or an env file),
never into the Deployment, so reading a Deployment does not hand out the right to swap its model.
For the portal's own deployments the Secret holds only the token's sha256 (RUNNER_ADMIN_TOKEN_SHA256):
the model runs in the runner's process, and finds no token there to reuse.

A model is code from a stranger: the pod and its container run as the image's non-root user with no
capability, no privilege escalation, the runtime's default seccomp profile and a read-only root
filesystem; the runner writes only to its state volume and /tmp. The compose file takes the same stance.
"""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import yaml

from images.oci import ImageRef
from runner_image.settings import token_sha256

RUNNER_PORT = 3330  # the Service's port, whatever port the runner listens on inside the pod
DEFAULT_NAMESPACE = "acumos-deployments"
TOKEN_KEY = "RUNNER_ADMIN_TOKEN"  # the Secret's key is the variable's name: `--from-env-file` makes it so
TOKEN_SHA256_KEY = "RUNNER_ADMIN_TOKEN_SHA256"  # what the portal's Secrets hold: the token's sha256, in hex
RUNNER_UID = 10001  # the image's `runner` user (runner_image/Dockerfile)
PIDS_LIMIT = 1024  # processes and threads (compose; Kubernetes sets it per node, in the kubelet)
TMP_SIZE = "512m"  # a hot swap spools the upload in /tmp: about twice the package's size
CONTAINER = "runner"
STATE_DIR = "/var/lib/runner"
MANAGED_BY = "acumos-portal"
DEPLOYMENT_LABEL = "ai.acumos.deployment.id"
REVISION_LABEL = "ai.acumos.revision.id"
NAME_LABEL = "app.kubernetes.io/name"


class BadOptions(ValueError):
    """A target option is wrong: the message names the option, what is wrong and what is allowed."""


class NoImage(ValueError):
    """The revision has no image to run yet."""


@dataclass(frozen=True)
class Spec:
    """What the objects are made from. `options` are checked ones (check_options)."""

    name: str  # every object's name: a DNS-1035 label
    image: str
    replicas: int = 1
    deployment_id: str = ""
    revision_id: str = ""
    options: Mapping = field(default_factory=dict)
    token_key: str = TOKEN_SHA256_KEY  # the Secret's key and the variable: TOKEN_KEY for a person's own token

    @property
    def namespace(self) -> str:
        return self.options.get("namespace", DEFAULT_NAMESPACE)

    @property
    def port(self) -> int:
        return self.options.get("port", RUNNER_PORT)

    @property
    def secret_name(self) -> str:
        return secret_name(self.name)


# ---------------------------------------------------------------- options

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(m|[kMGTPE]i?|Ki|[eE][0-9]+)?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REGISTRY = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?")
RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage")
DEFAULT_REQUESTS = {"cpu": "100m", "memory": "256Mi"}  # an autoscaler needs a cpu request to scale on


def _matching(pattern: re.Pattern, allowed: str) -> Callable:
    def check(value):
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not {allowed}")
        return value
    return check


def boolean(value):
    if not isinstance(value, bool):
        raise ValueError(f"{value!r} is not true or false")
    return value


def whole_number(low: int, high: int) -> Callable:
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{value!r} is not a whole number from {low} to {high}")
        return value
    return check


def one_of(*allowed: str) -> Callable:
    def check(value):
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return value
    return check


def _mapping(value, keys: Callable, values: Callable) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{value!r} is not a mapping")
    return {keys(k): values(v) for k, v in value.items()}


def _label_key(key):
    prefix, _, name = key.rpartition("/") if isinstance(key, str) else ("", "", "")
    if (prefix and not _DNS_SUBDOMAIN.fullmatch(prefix)) or not (name and _LABEL_VALUE.fullmatch(name)):
        raise ValueError(f"the label key {key!r} is not [prefix/]name (name: 1-63 letters, digits, - _ .)")
    return key


def _node_selector(value) -> dict:
    return _mapping(value, _label_key, _matching(_LABEL_VALUE, "a label value (up to 63 letters, digits, - _ .)"))


def _quantity(value):
    text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _QUANTITY.fullmatch(text):
        raise ValueError(f"{value!r} is not a Kubernetes quantity such as 500m, 2, 512Mi or 1Gi")
    return text


def _amounts(value) -> dict:
    return _mapping(value, one_of(*RESOURCE_NAMES), _quantity)


def _resources(value) -> dict:
    return _mapping(value, one_of("requests", "limits"), _amounts)


def _env(value) -> dict:
    def name(key):
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key) or key in (TOKEN_KEY, TOKEN_SHA256_KEY,
                                                                                "RUNNER_PORT"):
            raise ValueError(f"{key!r} is not a variable name, or it is one the portal sets "
                             f"({TOKEN_SHA256_KEY} or {TOKEN_KEY} from the Secret, RUNNER_PORT from the option "
                             "port)")
        return key
    return _mapping(value, name, lambda v: v if isinstance(v, str) else json.dumps(v))


def _autoscaler(value) -> dict:
    if not isinstance(value, dict) or set(value) - {"min", "max", "cpu_percent"} or "max" not in value:
        raise ValueError(f"{value!r} is not {{min, max, cpu_percent}} (max is required)")
    low = whole_number(1, 1000)(value.get("min", 1))
    high = whole_number(1, 1000)(value["max"])
    if low > high:
        raise ValueError(f"min {low} is more than max {high}")
    return {"min": low, "max": high, "cpu_percent": whole_number(1, 1000)(value.get("cpu_percent", 80))}


_DNS_SUBDOMAIN_TEXT = "a DNS name (lowercase letters, digits, - and .)"
MANIFEST_OPTIONS: dict[str, Callable] = {
    "namespace": _matching(_DNS_LABEL, "a namespace name (up to 63 lowercase letters, digits and -)"),
    "create_namespace": boolean,
    "port": whole_number(1024, 65535),  # the runner is not root: it cannot bind lower ports
    "resources": _resources,
    "image_pull_secret": _matching(_DNS_SUBDOMAIN, _DNS_SUBDOMAIN_TEXT),
    "image_registry": _matching(_REGISTRY, "a registry host with an optional :port"),
    "node_selector": _node_selector,
    "placement": one_of("strict", "preferred"),
    "hpa": _autoscaler,
    "ingress_host": _matching(_DNS_SUBDOMAIN, _DNS_SUBDOMAIN_TEXT),
    "ingress_class": _matching(_DNS_SUBDOMAIN, _DNS_SUBDOMAIN_TEXT),
    "ingress_tls_secret": _matching(_DNS_SUBDOMAIN, _DNS_SUBDOMAIN_TEXT),
    "host_network": boolean,
    "env": _env,
}


def check_options(options, extra: Mapping[str, Callable] | None = None) -> dict:
    """The options, checked and normalised; `extra` adds a backend's own rules."""
    rules = {**MANIFEST_OPTIONS, **(extra or {})}
    if not isinstance(options, dict):
        raise BadOptions(f"the options must be a mapping of names to values, not {type(options).__name__}")
    unknown = sorted(set(options) - set(rules))
    if unknown:
        raise BadOptions(f"unknown option {', '.join(map(repr, unknown))}: the allowed options are "
                         f"{', '.join(sorted(rules))}")
    checked = {}
    for name, value in options.items():
        try:
            checked[name] = rules[name](value)
        except ValueError as exc:
            raise BadOptions(f"option {name!r}: {exc}") from None
    return checked


# ---------------------------------------------------------------- names and images

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
    """The objects' name for a Deployment record: its name, made unique by its id."""
    return object_name(deployment.name, deployment.pk.hex[:8])


def secret_name(name: str) -> str:
    return f"{name}-admin"


def image_of(revision, registry: str = "") -> str:
    """The revision's image pinned by digest. The tag is dropped where there is a digest: some
    runtimes (podman, CRI-O) refuse a reference with both."""
    from images.selectors import image_artifact

    artifact = image_artifact(revision)
    if artifact is None or not artifact.uri:
        raise NoImage(f"revision {revision} has no image yet: build it first (Create microservice)")
    reference = ImageRef.parse(artifact.uri)
    if reference.digest:
        reference = replace(reference, tag="")
    return str(replace(reference, registry=registry) if registry else reference)


def spec_for(deployment, options: Mapping, name: str = "") -> Spec:
    """The spec of a Deployment record: its CURRENT revision (hot swaps change it) and replicas."""
    return Spec(name=name or deployment_name(deployment),
                image=image_of(deployment.revision, options.get("image_registry", "")),
                replicas=deployment.replicas, deployment_id=str(deployment.pk),
                revision_id=str(deployment.revision_id), options=options)


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
    token = {"secretKeyRef": {"name": spec.secret_name, "key": spec.token_key}}
    extra = [{"name": k, "value": v} for k, v in spec.options.get("env", {}).items()]
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


# ---------------------------------------------------------------- the deployment bundle

ENV_EXAMPLE = f"""\
# The runner's admin token: hot swaps and rollbacks need it (Authorization: Bearer <token>).
# Copy this file to .env and set a long random value, for example the output of
#   python3 -c "import secrets; print(secrets.token_urlsafe(32))"
# The runner refuses to start with a weaker one (under 24 characters, or fewer than 8 different), so with change-me.
{TOKEN_KEY}=change-me
"""


def deployment_bundle(revision, *, name: str | None = None) -> bytes:
    """A zip to deploy the revision's image by hand: kubernetes.yaml, docker-compose.yml,
    .env.example and README.md. It holds no real token: whoever deploys sets one."""
    spec = Spec(name=object_name(name or f"{revision.solution.name}-{revision.version}"),
                image=image_of(revision), revision_id=str(revision.pk), options=check_options({}),
                token_key=TOKEN_KEY)  # a person's own token, from .env
    files = {"kubernetes.yaml": kubernetes_yaml(spec), "docker-compose.yml": compose_yaml(spec),
             ".env.example": ENV_EXAMPLE, "README.md": bundle_readme(spec, revision, method_examples(revision))}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file_name, text in files.items():
            archive.writestr(file_name, text)
    return buffer.getvalue()


def method_examples(revision) -> dict[str, dict]:
    """Each method of the revision with a request it answers: its sample where the model package
    has one (onboarding checked the model answers it), else an empty body to fill in."""
    methods = (revision.metadata or {}).get("methods") or {}
    samples = _samples(revision)
    return {method: samples.get(method, {}) for method in methods}


def _samples(revision) -> dict:
    from marketplace import storage
    from marketplace.choices import ArtifactKind
    from runner_image.errors import PackageError
    from runner_image.package import read_manifest_from_zip

    package = revision.artifacts.filter(kind=ArtifactKind.MODEL).select_related("blob").first()
    if package is None or package.blob is None:
        return {}
    try:
        with storage.local_copy(package.blob.storage_key, ".zip") as path:
            return read_manifest_from_zip(path).samples
    except (OSError, PackageError):  # the README then shows empty bodies; the bundle is still useful
        return {}


def bundle_readme(spec: Spec, revision, examples: Mapping[str, dict]) -> str:
    return "\n".join([f"# {revision} — deploy it by hand\n",
                      f"Image: `{spec.image}` (the model and the runner; the digest pins it).\n",
                      _readme_kubernetes(spec), _readme_compose(spec), _readme_calls(examples),
                      _readme_swap(spec)])


def _readme_kubernetes(spec: Spec) -> str:
    ns, name = spec.namespace, spec.name
    return f"""## On Kubernetes

```sh
cp .env.example .env              # then set RUNNER_ADMIN_TOKEN in .env to a long random value
kubectl apply -f kubernetes.yaml  # the namespace {ns}, the Deployment and the Service {name}
kubectl -n {ns} create secret generic {spec.secret_name} --from-env-file=.env
kubectl -n {ns} rollout status deployment/{name}
kubectl -n {ns} port-forward service/{name} {RUNNER_PORT}:{RUNNER_PORT}   # to try it from here
```

The pods wait for the Secret (`CreateContainerConfigError`) and start once it exists. The image
must be pullable by the cluster: add `imagePullSecrets` to the pod spec for a private registry.
"""


def _readme_compose(spec: Spec) -> str:
    return f"""## With Docker Compose

```sh
cp .env.example .env   # then set RUNNER_ADMIN_TOKEN
docker compose up -d   # serves on http://127.0.0.1:{RUNNER_PORT}
```

The model is code run inside the runner, so the container is confined: the image's user
{RUNNER_UID}, no capabilities, no new privileges, a read-only root filesystem (the runner writes only
to the volume `runner-state` and a {TMP_SIZE} tmpfs at /tmp; a hot swap spools the upload there)
and at most {PIDS_LIMIT} processes and threads. To keep the token itself out of the container, put
only its sha256 in `.env`, in place of `RUNNER_ADMIN_TOKEN` (Docker Compose only: the Kubernetes
Deployment above reads `RUNNER_ADMIN_TOKEN` from its Secret):

```sh
echo "RUNNER_ADMIN_TOKEN_SHA256=$(printf %s "$RUNNER_ADMIN_TOKEN" | sha256sum | cut -d' ' -f1)"
```
"""


def _readme_calls(examples: Mapping[str, dict]) -> str:
    calls = [f"curl -X POST http://127.0.0.1:{RUNNER_PORT}/model/methods/{method} \\\n"
             f"     -H 'Content-Type: application/json' -d '{json.dumps(body)}'" for method, body in examples.items()]
    shown = "\n".join(calls) or f"curl http://127.0.0.1:{RUNNER_PORT}/openapi.json   # lists the methods"
    return f"""## Calling it

```sh
{shown}
```

`/docs` shows every method with its request and response. `/v2/health/ready` answers 200 once
the model is loaded.
"""


def _readme_swap(spec: Spec) -> str:
    return f"""## Hot swap: serve another model with no restart

The runner takes a new bundle (a retrained model, another proto, another configuration), checks
it with its own sample, and only then serves it; a bundle that fails leaves the old model serving.

```sh
curl -X PUT http://127.0.0.1:{RUNNER_PORT}/model -H "Authorization: Bearer $RUNNER_ADMIN_TOKEN" \\
     -F model=@modelpackage.zip -F proto=@model.proto -F metadata=@metadata.json
curl -X POST http://127.0.0.1:{RUNNER_PORT}/model/rollback -H "Authorization: Bearer $RUNNER_ADMIN_TOKEN"
curl http://127.0.0.1:{RUNNER_PORT}/model   # what it serves now, and its generation
```

Each replica is a runner of its own: swap every pod (`kubectl -n {spec.namespace} port-forward
pod/<pod> {RUNNER_PORT}:{spec.port}`, one at a time), not the Service, which reaches only one of
them. A pod that is recreated starts again from its image's model.
"""
