"""The `kubernetes` target: the revision's image as a Deployment with a Service (and, as configured,
an autoscaler and an Ingress), through the Kubernetes API. The objects are deployment/manifests.py's;
this module sends them, waits for the pods to be ready, and finds them again.

The target's secret is a kubeconfig; with none, option `in_cluster: true` uses the service account
of the pod the portal runs in. A stopped deployment is scaled to 0 and kept; starting it again
applies its current revision's image (hot swaps change it), so it serves what it served last.
"""

from __future__ import annotations

import re
import time

import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from deployment import bundle, manifests
from deployment.backends.base import BackendError, Placement
from deployment.options import BadOptions, boolean, one_of, whole_number
from deployment.options import check_options as check_manifest_options

DEFAULT_TIMEOUT = 300
POLL_SECONDS = 1.0
REQUEST_TIMEOUT = (5, 60)  # connect, read: an unreachable server is said so quickly
# kind -> the client API class and the snake_case name in its method names
KINDS = {"Secret": (client.CoreV1Api, "secret"), "Deployment": (client.AppsV1Api, "deployment"),
         "Service": (client.CoreV1Api, "service"),
         "HorizontalPodAutoscaler": (client.AutoscalingV2Api, "horizontal_pod_autoscaler"),
         "Ingress": (client.NetworkingV1Api, "ingress")}
MODELS = {"Secret": client.V1Secret, "Deployment": client.V1Deployment, "Service": client.V1Service,
          "HorizontalPodAutoscaler": client.V2HorizontalPodAutoscaler, "Ingress": client.V1Ingress}
OPTIONAL_KINDS = {"HorizontalPodAutoscaler": manifests.autoscaler, "Ingress": manifests.ingress}
MERGE_PATCH = "application/merge-patch+json"


def _endpoint_base(value):
    if not isinstance(value, str) or not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    try:
        value.format(name="name", namespace="namespace")
    except (KeyError, IndexError, ValueError):
        raise ValueError(f"{value!r} may use only the placeholders {{name}} and {{namespace}}") from None
    return value.rstrip("/")


BACKEND_OPTIONS = {
    "in_cluster": boolean,
    "timeout": whole_number(1, 3600),
    "endpoint_base": _endpoint_base,
    "admin_via": one_of("endpoint", "pods"),
}


def checked_options(options) -> dict:
    """A kubernetes target's options, checked (BadOptions says which and why)."""
    return check_manifest_options(options, BACKEND_OPTIONS)


class KubernetesBackend:
    kind = "kubernetes"
    uses_secret = True  # a kubeconfig

    def __init__(self, options: dict, secret: str):
        try:
            self.options = checked_options(options)
        except BadOptions as exc:
            raise BackendError(f"the target's options are wrong: {exc}") from exc
        self.secret = secret
        self._client = None

    @staticmethod
    def check_options(options: dict) -> None:
        try:
            checked_options(options)
        except BadOptions as exc:
            raise BackendError(str(exc)) from exc

    # ------------------------------------------------------------ the Backend protocol

    def start(self, deployment, bundle, admin_token: str) -> Placement:
        """The bundle is not used: the cluster runs the revision's image."""
        return self._apply(deployment, admin_token)

    def restart(self, deployment, admin_token: str) -> Placement:
        return self._apply(deployment, admin_token)

    def is_running(self, deployment) -> bool:
        namespace, name = self._where(deployment)
        current = self._send(f"reading Deployment {namespace}/{name}", self._verb("read", "Deployment"),
                             name, namespace, allow=(404,))
        ready = current.status.ready_replicas if current and current.status else 0
        return bool(current and current.spec.replicas and ready)

    def admin_urls(self, deployment) -> list[str]:
        """With `admin_via: pods` (the portal runs in the cluster) every ready pod, so a swap reaches
        each replica; otherwise the endpoint, the one address the portal can reach."""
        if self.options.get("admin_via") != "pods":
            return [deployment.endpoint_url]
        namespace, name = self._where(deployment)
        slices = self._send(f"listing the endpoints of Service {namespace}/{name}",
                            client.DiscoveryV1Api(self.api).list_namespaced_endpoint_slice, namespace,
                            label_selector=f"kubernetes.io/service-name={name}")
        urls = list(dict.fromkeys(url for item in slices.items for url in _ready_urls(item)))
        if not urls:
            raise BackendError(f"no pod of the Service {namespace}/{name} is ready")
        return urls

    def stop(self, deployment) -> None:
        namespace, name = self._where(deployment)
        self._send(f"scaling Deployment {namespace}/{name} to 0", self._verb("patch", "Deployment"), name, namespace,
                   {"spec": {"replicas": 0}}, _content_type=MERGE_PATCH, allow=(404,))

    def destroy(self, deployment) -> None:
        namespace, name = self._where(deployment)
        for kind in ("Ingress", "HorizontalPodAutoscaler", "Service", "Deployment"):
            self._delete(kind, namespace, name)
        self._delete("Secret", namespace, manifests.secret_name(name))

    # ------------------------------------------------------------ applying

    def _apply(self, deployment, admin_token: str) -> Placement:
        spec = self._spec(deployment)
        if self.options.get("create_namespace"):
            self._ensure_namespace(spec)
        for body in manifests.objects(spec, admin_token):
            self._create_or_replace(body)
        for kind, make in OPTIONAL_KINDS.items():
            if make(spec) is None:  # no longer configured: what an earlier start made goes
                self._delete(kind, spec.namespace, spec.name)
        self._wait_ready(spec)
        return Placement(self._endpoint_url(spec), {"namespace": spec.namespace, "name": spec.name,
                                                    "image": spec.image})

    def _spec(self, deployment) -> manifests.Spec:
        namespace, name = self._where(deployment)
        try:
            return bundle.spec_for(deployment, {**self.options, "namespace": namespace}, name)
        except bundle.NoImage as exc:
            raise BackendError(str(exc)) from exc

    def _where(self, deployment) -> tuple[str, str]:
        """Where its objects are: as recorded when it started (the options may change since)."""
        handle = deployment.handle or {}
        return (handle.get("namespace") or self.options.get("namespace", manifests.DEFAULT_NAMESPACE),
                handle.get("name") or manifests.deployment_name(deployment))

    def _ensure_namespace(self, spec: manifests.Spec) -> None:
        self._send(f"creating Namespace {spec.namespace}", client.CoreV1Api(self.api).create_namespace,
                   client.V1Namespace.from_dict(manifests.namespace(spec)), allow=(409,))

    def _create_or_replace(self, body: dict) -> None:
        kind, namespace, name = body["kind"], body["metadata"]["namespace"], body["metadata"]["name"]
        what = f"{kind} {namespace}/{name}"
        model = MODELS[kind].from_dict(body)
        if self._send(f"creating {what}", self._verb("create", kind), namespace, model, allow=(409,)) is not None:
            return
        current = self._send(f"reading {what}", self._verb("read", kind), name, namespace)
        model = MODELS[kind].from_dict(_replacing(body, current))
        self._send(f"replacing {what}", self._verb("replace", kind), name, namespace, model)

    def _delete(self, kind: str, namespace: str, name: str) -> None:
        self._send(f"deleting {kind} {namespace}/{name}", self._verb("delete", kind), name, namespace,
                   propagation_policy="Background", allow=(404,))

    def _wait_ready(self, spec: manifests.Spec) -> None:
        timeout = self.options.get("timeout", DEFAULT_TIMEOUT)
        deadline = time.monotonic() + timeout
        what = f"Deployment {spec.namespace}/{spec.name}"
        while True:
            current = self._send(f"reading {what}", self._verb("read", "Deployment"), spec.name, spec.namespace)
            if _rolled_out(current, spec.replicas):
                return
            if time.monotonic() >= deadline:
                ready = current.status.ready_replicas or 0
                raise BackendError(f"the {what} was not ready after {timeout} s ({ready} of {spec.replicas} pods "
                                   f"ready){self._pod_problems(spec)}")
            time.sleep(POLL_SECONDS)

    def _pod_problems(self, spec: manifests.Spec) -> str:
        """Why pods are not ready, as far as this account may read them."""
        selector = ",".join(f"{k}={v}" for k, v in manifests.selector(spec).items())
        try:
            pods = self._send("listing pods", client.CoreV1Api(self.api).list_namespaced_pod, spec.namespace,
                              label_selector=selector)
        except BackendError:
            return ""
        problems = sorted({problem for item in pods.items for problem in _waiting(item)})
        return f": {'; '.join(problems)}" if problems else ""

    def _endpoint_url(self, spec: manifests.Spec) -> str:
        """Where the portal reaches it: the admin's explicit template first, then the Ingress."""
        if self.options.get("endpoint_base"):
            return self.options["endpoint_base"].format(name=spec.name, namespace=spec.namespace)
        if self.options.get("ingress_host"):
            return f"https://{self.options['ingress_host']}"
        return f"http://{spec.name}.{spec.namespace}.svc.cluster.local:{manifests.RUNNER_PORT}"

    # ------------------------------------------------------------ talking to the API

    @property
    def api(self) -> client.ApiClient:
        if self._client is None:
            self._client = client.ApiClient(self._configuration())
        return self._client

    def _configuration(self) -> client.Configuration:
        configuration = client.Configuration()
        try:
            if self.secret.strip():
                config.load_kube_config_from_dict(yaml.safe_load(self.secret), client_configuration=configuration,
                                                  persist_config=False)
            elif self.options.get("in_cluster"):
                config.load_incluster_config(client_configuration=configuration)
            else:
                raise BackendError("the target has no kubeconfig: set one as its secret, or set the option "
                                   "in_cluster: true when the portal runs in the cluster")
        except (ConfigException, yaml.YAMLError, TypeError, AttributeError) as exc:
            raise BackendError(f"the target's kubeconfig cannot be used: {exc}") from exc
        return configuration

    def _verb(self, verb: str, kind: str):
        api_class, snake = KINDS[kind]
        return getattr(api_class(self.api), f"{verb}_namespaced_{snake}")

    def _send(self, doing: str, function, *args, allow: tuple[int, ...] = (), **kwargs):
        """The API's answer, or None when it answered a status in `allow`; any other failure is a
        BackendError saying what was being done and what the API said."""
        try:
            return function(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        except ApiException as exc:
            if exc.status in allow:
                return None
            raise BackendError(f"{doing}: the Kubernetes API answered {exc.status} {exc.reason}: "
                               f"{_api_message(exc)}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise BackendError(f"{doing}: the Kubernetes API at {self.api.configuration.host} could not be "
                               f"reached: {getattr(exc, 'reason', None) or exc}") from exc


def _api_message(exc: ApiException) -> str:
    try:
        return yaml.safe_load(exc.body or "")["message"]
    except (yaml.YAMLError, TypeError, KeyError):
        return (exc.body or "").strip()[:500] or "(no message)"


def _replacing(body: dict, current) -> dict:
    """The body for a PUT over `current`: its resourceVersion (the API checks no one changed it in
    between) and, for a Service, the cluster IP it was given, which cannot change."""
    metadata = {**body["metadata"], "resourceVersion": current.metadata.resource_version}
    spec = dict(body.get("spec") or {})
    if body["kind"] == "Service" and current.spec and current.spec.cluster_ip:
        spec.update(clusterIP=current.spec.cluster_ip, clusterIPs=current.spec.cluster_ips)
    return {**body, "metadata": metadata, **({"spec": spec} if "spec" in body else {})}


def _rolled_out(current, replicas: int) -> bool:
    """As `kubectl rollout status` decides: the controller has seen this spec, and that many pods
    run it and are ready."""
    status = current.status
    if status is None:
        return replicas == 0
    seen = (status.observed_generation or 0) >= (current.metadata.generation or 0)
    return seen and (status.updated_replicas or 0) >= replicas and (status.ready_replicas or 0) >= replicas


def _waiting(pod) -> list[str]:
    name = pod.metadata.name
    problems = [f"{name}: {condition.message}" for condition in (pod.status.conditions or [])
                if condition.type == "PodScheduled" and condition.status == "False" and condition.message]
    for status in pod.status.container_statuses or []:
        waiting = status.state.waiting if status.state else None
        if waiting and waiting.reason:
            problems.append(f"{name}: {waiting.reason}" + (f" ({waiting.message})" if waiting.message else ""))
    return problems


def _ready_urls(endpoint_slice) -> list[str]:
    port = next((p.port for p in endpoint_slice.ports or [] if p.name == "http" and p.port), None)
    if port is None:
        return []
    ready = [e for e in endpoint_slice.endpoints or [] if not e.conditions or e.conditions.ready is not False]
    return [f"http://{_host(address)}:{port}" for endpoint in ready for address in endpoint.addresses]


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address
