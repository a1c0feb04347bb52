"""A small fake Kubernetes API server, because no real one can run here: the `kubernetes` target is
tested against it at the HTTP boundary, with the real client library doing the talking.

It keeps objects by resource, namespace and name and answers the REST paths the client uses:
create (201, or 409 AlreadyExists), read, replace (PUT, with resourceVersion checks), patch
(JSON merge patch; strategic merge patch as merge patch plus lists of named items merged by
name), delete (200 or 404) and list with equality label selectors. Namespaced objects need their
namespace, as on a real server. A Deployment is ready at once (status.readyReplicas =
spec.replicas) unless told to stall; pods and EndpointSlices are derived from Deployments and
Services, with 127.0.0.1 addresses. Every request is recorded, and any path can be made to fail.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import yaml

KINDS = {"namespaces": "Namespace", "secrets": "Secret", "services": "Service", "pods": "Pod",
         "deployments": "Deployment", "horizontalpodautoscalers": "HorizontalPodAutoscaler",
         "ingresses": "Ingress", "endpointslices": "EndpointSlice"}
# API discovery, as kubectl reads it: group/version -> its resources
RESOURCES = {"v1": ["namespaces", "secrets", "services", "pods"], "apps/v1": ["deployments"],
             "autoscaling/v2": ["horizontalpodautoscalers"], "networking.k8s.io/v1": ["ingresses"],
             "discovery.k8s.io/v1": ["endpointslices"]}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict
    headers: dict  # lowercase names
    body: object = None

    @property
    def resource(self) -> str:
        path = Path.parse(self.path)
        return path.resource if path else ""


@dataclass
class Path:
    api_version: str
    namespace: str | None
    resource: str
    name: str | None = None
    subresource: str | None = None

    @classmethod
    def parse(cls, path: str) -> Path | None:
        """None for what is not a resource path (/version, /openapi/v2...)."""
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) >= 3:
            api_version, rest = parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 4:
            api_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        else:
            return None
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        return cls(api_version, namespace, rest[0], *rest[1:3])


@dataclass
class Failure:
    method: str
    pattern: str
    status: int
    message: str


@dataclass
class Stall:
    reason: str
    message: str


@dataclass
class FakeKubernetes:
    host: str = ""
    store: dict = field(default_factory=dict)  # (resource, namespace, name) -> object
    requests: list[Recorded] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    stalled: dict = field(default_factory=dict)  # deployment name -> Stall
    pod_ips: tuple = ("127.0.0.1",)  # pod i gets pod_ips[i % len]: loopback addresses only
    version: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------ what tests use

    def add_namespace(self, name: str) -> None:
        self.store[("namespaces", None, name)] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}

    def fail(self, method: str, pattern: str, status: int, message: str = "") -> None:
        """Answer requests whose method matches and whose path contains `pattern` (a regex) with `status`."""
        self.failures.append(Failure(method.upper(), pattern, status, message or f"injected failure {status}"))

    def stall(self, name: str, reason: str, message: str) -> None:
        """Keep the Deployment `name` unready, its pods waiting with this reason."""
        self.stalled[name] = Stall(reason, message)

    def get(self, resource: str, namespace: str | None, name: str) -> dict | None:
        return copy.deepcopy(self.store.get((resource, namespace, name)))

    def names(self, resource: str, namespace: str | None = None) -> list[str]:
        return sorted(k[2] for k in self.store if k[0] == resource and k[1] == namespace)

    def sent(self, method: str, resource: str = "") -> list[Recorded]:
        return [r for r in self.requests if r.method == method and (not resource or r.resource == resource)]

    # ------------------------------------------------------------ answering

    def handle(self, method: str, raw_path: str, headers: dict, body: bytes) -> tuple[int, dict]:
        split = urlsplit(raw_path)
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        payload = json.loads(body) if body else None
        with self.lock:
            if discovered := discovery(split.path):
                return 200, discovered
            self.requests.append(Recorded(method, split.path, query, headers, payload))
            failure = next((f for f in self.failures if f.method == method and re.search(f.pattern, split.path)), None)
            if failure:
                return failure.status, status_body(failure.status, "Forbidden" if failure.status == 403 else
                                                   "InternalError", failure.message)
            return self._answer(method, Path.parse(split.path), query, headers, payload)

    def _answer(self, method, path: Path | None, query, headers, payload) -> tuple[int, dict]:
        if path is None:
            return 404, status_body(404, "NotFound", "the server could not find the requested resource")
        if path.namespace and ("namespaces", None, path.namespace) not in self.store:
            return 404, status_body(404, "NotFound", f'namespaces "{path.namespace}" not found')
        if path.name is None:
            return self._collection(method, path, query, payload)
        key = (path.resource, path.namespace, path.name)
        if method == "GET":
            return self._read(key)
        if method == "DELETE":
            return self._delete(key)
        return self._update(method, key, headers, payload)

    def _collection(self, method, path: Path, query, payload) -> tuple[int, dict]:
        if method == "POST":
            return self._create(path, payload)
        items = self._list(path.resource, path.namespace, selector(query.get("labelSelector", "")))
        kind = KINDS.get(path.resource, path.resource)
        return 200, {"apiVersion": path.api_version, "kind": f"{kind}List", "metadata": {"resourceVersion":
                     str(self.version)}, "items": items}

    def _create(self, path: Path, payload: dict) -> tuple[int, dict]:
        key = (path.resource, path.namespace, payload["metadata"]["name"])
        if key in self.store:
            return 409, status_body(409, "AlreadyExists", f'{path.resource} "{key[2]}" already exists')
        stored = copy.deepcopy(payload)
        stored["metadata"].update(uid=str(uuid.uuid4()), namespace=path.namespace, generation=1,
                                  creationTimestamp="2026-01-01T00:00:00Z")
        stored["metadata"] = {k: v for k, v in stored["metadata"].items() if v is not None}
        if path.resource == "services":  # the cluster gives a Service its address, for good
            address = f"10.96.0.{len(self.store) % 250 + 2}"
            stored["spec"].update(clusterIP=address, clusterIPs=[address])
        return 201, self._save(key, stored)

    def _read(self, key) -> tuple[int, dict]:
        if key not in self.store:
            return 404, status_body(404, "NotFound", f'{key[0]} "{key[2]}" not found')
        return 200, copy.deepcopy(self.store[key])

    def _delete(self, key) -> tuple[int, dict]:
        deleted = self.store.pop(key, None)
        if deleted is None:
            return 404, status_body(404, "NotFound", f'{key[0]} "{key[2]}" not found')
        if key[0] in ("services", "namespaces"):  # as the real server does: these answer with the object
            return 200, deleted
        return 200, {"apiVersion": "v1", "kind": "Status", "status": "Success", "metadata": {}}

    def _update(self, method, key, headers, payload) -> tuple[int, dict]:
        current = self.store.get(key)
        if current is None:
            return 404, status_body(404, "NotFound", f'{key[0]} "{key[2]}" not found')
        if method == "PUT":
            wanted = payload["metadata"].get("resourceVersion")
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                return 409, status_body(409, "Conflict", "the object has been modified")
            if key[0] == "services" and payload["spec"].get("clusterIP") != current["spec"]["clusterIP"]:
                return 422, status_body(422, "Invalid", f'Service "{key[2]}" is invalid: spec.clusterIP: '
                                        f'Invalid value: "{payload["spec"].get("clusterIP") or ""}": '
                                        f'field is immutable')
            updated = copy.deepcopy(payload)
            updated["metadata"] = {**current["metadata"], **{k: v for k, v in payload["metadata"].items() if v}}
        else:
            content_type = headers.get("content-type", "")
            if "merge-patch" not in content_type:
                return 415, status_body(415, "UnsupportedMediaType", f"the fake does not take {content_type}")
            updated = merge(copy.deepcopy(current), payload, by_name="strategic" in content_type)
        if updated.get("spec") != current.get("spec"):
            updated["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        return 200, self._save(key, updated)

    def _save(self, key, stored: dict) -> dict:
        self.version += 1
        stored["metadata"]["resourceVersion"] = str(self.version)
        if key[0] == "deployments":
            stored["status"] = self._deployment_status(stored)
        self.store[key] = stored
        return copy.deepcopy(stored)

    def _deployment_status(self, deployment: dict) -> dict:
        want = deployment["spec"].get("replicas", 1)
        ready = 0 if deployment["metadata"]["name"] in self.stalled else want
        status = {"observedGeneration": deployment["metadata"]["generation"], "replicas": want,
                  "updatedReplicas": want, "readyReplicas": ready, "availableReplicas": ready}
        return {k: v for k, v in status.items() if v}  # as a real server does, zero counts are left out

    # ------------------------------------------------------------ derived objects

    def _list(self, resource, namespace, wanted: dict) -> list[dict]:
        if resource == "pods":
            found = self._pods(namespace)
        elif resource == "endpointslices":
            found = self._endpoint_slices(namespace)
        else:
            found = [copy.deepcopy(v) for k, v in self.store.items() if k[0] == resource and k[1] == namespace]
        return [item for item in found if matches(item["metadata"].get("labels") or {}, wanted)]

    def _pods(self, namespace) -> list[dict]:
        pods = []
        for (resource, ns, name), item in self.store.items():
            if resource == "deployments" and ns == namespace:
                template = item["spec"]["template"]
                pods += [pod(f"{name}-{i}", template, self.stalled.get(name), self.pod_ips[i % len(self.pod_ips)])
                         for i in range(item["spec"].get("replicas", 1))]
        return pods

    def _endpoint_slices(self, namespace) -> list[dict]:
        slices = []
        for (resource, ns, name), item in self.store.items():
            if resource == "services" and ns == namespace:
                ready = [p for p in self._pods(namespace) if matches(p["metadata"]["labels"], item["spec"]["selector"])
                         and p["status"]["phase"] == "Running"]
                slices.append(endpoint_slice(name, namespace, item, ready))
        return slices


def discovery(path: str) -> dict | None:
    """The legacy discovery documents (kubectl falls back to them from aggregated discovery)."""
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/apis":
        groups = [{"name": gv.split("/")[0], "versions": [{"groupVersion": gv, "version": gv.split("/")[1]}],
                   "preferredVersion": {"groupVersion": gv, "version": gv.split("/")[1]}}
                  for gv in RESOURCES if "/" in gv]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
    version = path.removeprefix("/api/").removeprefix("/apis/")
    if path.startswith("/api") and version in RESOURCES:
        resources = [{"name": name, "singularName": "", "kind": KINDS[name], "namespaced": name != "namespaces",
                      "verbs": ["create", "delete", "get", "list", "patch", "update"]} for name in RESOURCES[version]]
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": version, "resources": resources}
    return None


def status_body(code: int, reason: str, message: str) -> dict:
    return {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


def selector(text: str) -> dict:
    return dict(part.split("=", 1) for part in text.split(",") if part)


def matches(labels: dict, wanted: dict) -> bool:
    return all(labels.get(k) == v for k, v in wanted.items())


def merge(target, patch, *, by_name: bool):
    """RFC 7386 merge patch; with by_name, lists of named mappings merge item by item, as a
    strategic merge patch does for containers, env and the like."""
    if isinstance(patch, list) and by_name and isinstance(target, list) and _named(patch) and _named(target):
        merged = {item["name"]: item for item in target}
        for item in patch:
            merged[item["name"]] = merge(merged.get(item["name"], {}), item, by_name=True)
        return list(merged.values())
    if not isinstance(patch, dict) or not isinstance(target, dict):
        return patch
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = merge(target.get(key), value, by_name=by_name)
    return target


def _named(items: list) -> bool:
    return all(isinstance(i, dict) and "name" in i for i in items)


def pod(name: str, template: dict, stall: Stall | None, ip: str = "127.0.0.1") -> dict:
    container = template["spec"]["containers"][0]["name"]
    if stall:
        state = {"waiting": {"reason": stall.reason, "message": stall.message}}
        status = {"phase": "Pending", "containerStatuses": [{"name": container, "ready": False, "restartCount": 0,
                                                             "image": "", "imageID": "", "state": state}]}
    else:
        status = {"phase": "Running", "podIP": ip,
                  "conditions": [{"type": "Ready", "status": "True"}]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": template["metadata"]["labels"]},
            "spec": copy.deepcopy(template["spec"]), "status": status}


def endpoint_slice(service: str, namespace: str, item: dict, pods: list[dict]) -> dict:
    port = item["spec"]["ports"][0]
    endpoints = [{"addresses": [p["status"]["podIP"]], "conditions": {"ready": True},
                  "targetRef": {"kind": "Pod", "name": p["metadata"]["name"], "namespace": namespace}} for p in pods]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": f"{service}-abcde", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service}},
            "endpoints": endpoints, "ports": [{"name": port.get("name"), "port": port["targetPort"],
                                               "protocol": "TCP"}]}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKubernetes

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        headers = {k.lower(): v for k, v in self.headers.items()}  # names are case-insensitive in HTTP
        status, body = self.fake.handle(self.command, self.path, headers, self.rfile.read(length))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, *args) -> None:  # the recorded requests say it better
        pass


class FakeServer:
    """`with FakeServer() as fake:` a FakeKubernetes answering on 127.0.0.1:<free port>."""

    def __init__(self, namespaces=("default",)):
        self.fake = FakeKubernetes()
        for name in namespaces:
            self.fake.add_namespace(name)
        handler = type("Handler", (_Handler,), {"fake": self.fake})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.fake.host = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeKubernetes:
        self.thread.start()
        return self.fake

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def kubeconfig(server: str, token: str = "fake-token") -> str:
    """A kubeconfig for `server` with token authentication, as a target's secret holds it."""
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "tester", "user": {"token": token}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester"}}]})
