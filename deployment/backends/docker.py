"""The `docker` target: one container per deployment, of the revision's image (built by "Create
microservice" or onboarding), on a Docker engine, through the docker SDK. Hot swaps then go to the
runner inside, as for every backend; the runner keeps what it serves in its state directory
(/var/lib/runner, a named volume of the deployment's own), so a stopped container started again serves
what it served when it stopped.

A model is code from a stranger, and it runs in the runner's process. So the container runs as the
image's non-root user (10001:10001) with every capability dropped, no-new-privileges, a read-only root
filesystem, a pids limit, and only two places to write: the state volume and a size-bounded tmpfs at
/tmp (noexec). It is given the sha256 of the deployment's admin token (RUNNER_ADMIN_TOKEN_SHA256), never
the token: a model that reads the runner's environment finds nothing it could send back as a token.

Target options (all optional; anything else is refused, naming the option and what is allowed):

    docker_host     the engine: "unix:///var/run/docker.sock", "tcp://host:2376"...; default DOCKER_HOST
                    from the settings or the environment, else the local socket
    network         "host" (default): the runner listens on a port of the engine's host, from port_range;
                    "bridge": the runner's port 3330 is published on a host port the engine chooses
    advertise_host  the host name put in the endpoint URL (default 127.0.0.1); when it is a loopback
                    address the runner listens on loopback only, and a port is used only if it is free here
    port_range      host networking: the ports to choose from, "31000-31999" (default); a port is never
                    given to two acumos deployment containers of the same engine (found by their labels)
    memory          memory limit, e.g. "512m" or "2g"
    cpus            CPU limit, e.g. 1.5
    restart_policy  "unless-stopped" (default), "no", "always" or "on-failure"
    labels          extra container labels, {"name": "value"} (not under ai.acumos.)
    workers         runner worker processes (default 1)
    ready_timeout   seconds to wait for the runner to answer /v2/health/ready (default 120)
    pids_limit      processes and threads the container may have, from 32 to 65536 (default 1024: threads
                    count, and thread pools of BLAS, OpenMP or onnxruntime take one per core per process)
    tmp_size        size of the tmpfs at /tmp, e.g. "512m" (default). A hot swap spools the uploaded model
                    there (about twice the package's size); it counts against the memory limit

The target's secret, when set, is registry credentials for the pull: {"username": ..., "password": ...}.

Containers are named acumos-<first 12 hex digits of the deployment id> and labelled
ai.acumos.deployment.id, ai.acumos.revision.id (the revision deployed; swaps do not relabel) and
ai.acumos.managed-by=acumos-portal. Its state volume is acumos-state-<the same 12 hex digits>, with
the same labels; destroying the deployment removes both, and a deploy run again after failing half-way
removes what the first attempt left. One container per deployment: replicas are Kubernetes' job.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import re
import socket
import time
from dataclasses import dataclass

import docker
import requests
from django.conf import settings

from deployment.backends.base import BackendError, Placement
from deployment.bundle import runner_environment
from images.oci import ImageRef
from images.selectors import image_artifact
from runner_image.settings import token_sha256

RUNNER_PORT = 3330
STATE_DIR = "/var/lib/runner"
RUNNER_USER = "10001:10001"  # the image's `runner` user and group (runner_image/Dockerfile)
TOKEN_SHA256_VARIABLE = "RUNNER_ADMIN_TOKEN_SHA256"
DEFAULT_PIDS_LIMIT = 1024
PIDS_LIMITS = (32, 65536)
DEFAULT_TMP_SIZE = "512m"
MANAGED_BY = "ai.acumos.managed-by"
MANAGER = "acumos-portal"
DEPLOYMENT_LABEL = "ai.acumos.deployment.id"
REVISION_LABEL = "ai.acumos.revision.id"
PORT_LABEL = "ai.acumos.port"
LOCAL_SOCKET = "unix:///var/run/docker.sock"
NETWORKS = ("host", "bridge")
RESTART_POLICIES = ("no", "always", "unless-stopped", "on-failure")
DEFAULT_PORT_RANGE = "31000-31999"
STOP_GRACE = 15
API_TIMEOUT = 600  # a pull of a large image is one API call
OPTIONS = ("docker_host", "network", "advertise_host", "port_range", "memory", "cpus", "restart_policy", "labels",
           "workers", "ready_timeout", "pids_limit", "tmp_size")


@dataclass(frozen=True)
class Settings:
    docker_host: str
    network: str
    advertise_host: str
    ports: range
    memory: str | None
    nano_cpus: int | None
    restart_policy: str
    labels: dict
    workers: int
    ready_timeout: float
    pids_limit: int = DEFAULT_PIDS_LIMIT
    tmp_size: str = DEFAULT_TMP_SIZE

    @property
    def loopback(self) -> bool:
        return _is_loopback(self.advertise_host)

    @property
    def listen_host(self) -> str:
        # Host networking shares the host's interfaces: stay on loopback when only loopback is advertised.
        return "127.0.0.1" if self.loopback else "0.0.0.0"  # noqa: S104 (advertised beyond this host)


class DockerBackend:
    kind = "docker"
    uses_secret = True  # registry credentials for the pull

    def __init__(self, options: dict, secret: str = ""):
        self.settings = parse_options(options or {})
        self.auth = parse_secret(secret)

    @staticmethod
    def check_options(options: dict) -> None:
        parse_options(options)

    # ------------------------------------------------------------ the protocol

    def start(self, deployment, bundle, admin_token: str) -> Placement:
        """Pull the revision's image, run it in a new container, wait until the runner answers."""
        if deployment.replicas > 1:
            raise BackendError(f"the docker target runs one container per deployment, not {deployment.replicas} "
                               "replicas: deploy on a kubernetes target to run replicas")
        image = image_of(deployment.revision)
        with self._client() as client:
            self._check_network(client)
            self._pull(client, image)
            _remove_leftover(client, deployment)  # a deploy run again after failing half-way
            try:
                volume = self._create_volume(client, deployment)
                container = self._create(client, deployment, image, admin_token, volume)
                return self._run(container, self.settings.docker_host)
            except Exception:
                _remove_leftover(client, deployment)  # a failed deploy leaves nothing, running or not
                raise

    def restart(self, deployment, admin_token: str) -> Placement:
        """The same container again: its runner resumes the state it kept in STATE_DIR."""
        with self._client(deployment) as client:
            container = self._container(client, deployment)
            if container is None:
                raise BackendError(f"the container {container_name(deployment)} is gone from the engine "
                                   f"{self._host(deployment)}: destroy this deployment and deploy again")
            return self._run(container, self._host(deployment))

    def is_running(self, deployment) -> bool:
        with self._client(deployment) as client:
            container = self._container(client, deployment)
            return container is not None and container.status == "running"

    def admin_urls(self, deployment) -> list[str]:
        return [deployment.endpoint_url]

    def stop(self, deployment) -> None:
        with self._client(deployment) as client:
            container = self._container(client, deployment)
            if container is not None and container.status != "exited":
                with _gone_is_fine():
                    container.stop(timeout=STOP_GRACE)

    def destroy(self, deployment) -> None:
        """The container, then its state volume (a volume in use cannot go)."""
        with self._client(deployment) as client:
            container = self._container(client, deployment)
            if container is not None:
                with _gone_is_fine():
                    container.remove(force=True, v=True)
            _remove_leftover(client, deployment)

    # ------------------------------------------------------------ the engine

    def _host(self, deployment=None) -> str:
        """Where the deployment's container is (recorded at deploy), else where the target says."""
        handle = getattr(deployment, "handle", None) or {}
        return handle.get("docker_host") or self.settings.docker_host

    @contextlib.contextmanager
    def _client(self, deployment=None):
        host = self._host(deployment)
        with _engine_errors(host):
            client = docker.DockerClient(base_url=host, timeout=API_TIMEOUT)
            try:
                yield client
            finally:
                client.close()

    def _check_network(self, client) -> None:
        if self.settings.network == "bridge" and not client.networks.list(names=["bridge"]):
            # Without one the engine falls back to no network at all, and publishes nothing.
            raise BackendError(f"network 'bridge': the engine {self.settings.docker_host} has no bridge network "
                               "(dockerd --bridge=none?): use network host")

    def _pull(self, client, image: ImageRef) -> None:
        # By digest: what was built and tested, even if the tag moved since.
        try:
            client.images.pull(f"{image.registry}/{image.repository}", tag=image.digest or image.tag,
                               auth_config=self.auth)
        except docker.errors.APIError as exc:
            raise BackendError(f"the engine {self.settings.docker_host} could not pull {image}: "
                               f"{exc.explanation or exc}") from exc

    def _container(self, client, deployment):
        """The deployment's container: by the id recorded at deploy, else by its label (a deploy that
        failed before recording it), or None when it is gone."""
        with contextlib.suppress(docker.errors.NotFound):
            if deployment.handle.get("container_id"):
                return client.containers.get(deployment.handle["container_id"])
        found = client.containers.list(all=True, filters={"label": f"{DEPLOYMENT_LABEL}={deployment.pk}"})
        return found[0] if found else None

    def _labels(self, deployment) -> dict:
        return {**self.settings.labels, MANAGED_BY: MANAGER, DEPLOYMENT_LABEL: str(deployment.pk),
                REVISION_LABEL: str(deployment.revision_id)}

    def _create_volume(self, client, deployment) -> str:
        """The deployment's own state volume, new and empty: the engine fills it from the image's
        STATE_DIR (owned by the runner user) when the container first mounts it."""
        name = volume_name(deployment)
        try:
            client.volumes.get(name)
        except docker.errors.NotFound:
            pass
        else:  # not the deployment's (those went with the leftovers): someone else's state, keep out
            raise BackendError(f"the engine {self.settings.docker_host} has a volume {name} that this portal "
                               "did not make for this deployment: remove it, or destroy this deployment")
        try:
            return client.volumes.create(name, driver="local", labels=self._labels(deployment)).name
        except docker.errors.APIError as exc:
            raise BackendError(f"the engine {self.settings.docker_host} could not create the volume {name}: "
                               f"{exc.explanation or exc}") from exc

    def _create(self, client, deployment, image: ImageRef, admin_token: str, volume: str):
        port = self._choose_port(client) if self.settings.network == "host" else None
        try:
            return client.containers.create(_pinned(image), name=container_name(deployment),
                                            detach=True, **self._run_options(deployment, admin_token, port, volume))
        except docker.errors.APIError as exc:
            raise BackendError(f"the engine {self.settings.docker_host} could not create the container: "
                               f"{exc.explanation or exc}") from exc

    def _run_options(self, deployment, admin_token: str, port: int | None, volume: str) -> dict:
        s = self.settings
        # Only the hash: the model runs in the runner's process and can read its environment. A licensed
        # model deployed by a licensee is metered (fixed when the container is made: a restart keeps it).
        environment = {**runner_environment(deployment), TOKEN_SHA256_VARIABLE: token_sha256(admin_token),
                       "RUNNER_WORKERS": str(s.workers)}
        labels = self._labels(deployment)
        options = {"environment": environment, "labels": labels, "mem_limit": s.memory, "nano_cpus": s.nano_cpus,
                   "restart_policy": {"Name": s.restart_policy}, **self._confinement(volume)}
        if port is None:  # bridge: the engine picks the host port; loopback-only when so advertised
            published = ("127.0.0.1", None) if s.loopback else None
            return {**options, "network_mode": "bridge", "ports": {f"{RUNNER_PORT}/tcp": published}}
        # Host networking: no gRPC, as for local runners (one fixed port cannot be every runner's).
        environment.update(RUNNER_HOST=s.listen_host, RUNNER_PORT=str(port), RUNNER_GRPC_PORT="0")
        labels[PORT_LABEL] = str(port)
        return {**options, "network_mode": "host"}

    def _confinement(self, volume: str) -> dict:
        """What a model from a stranger may do: write its state and temporary files, nothing else;
        no capability, no privilege gained through setuid or file capabilities, bounded processes."""
        return {"user": RUNNER_USER, "cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"],
                "read_only": True, "pids_limit": self.settings.pids_limit,
                "tmpfs": {"/tmp": f"rw,noexec,nosuid,nodev,size={self.settings.tmp_size},mode=1777"},
                "mounts": [docker.types.Mount(target=STATE_DIR, source=volume, type="volume")]}

    def _choose_port(self, client) -> int:
        """A port of the range that no acumos container of this engine holds (running or stopped: a
        stopped one takes its port back when started) and, on loopback, that nothing here listens on."""
        taken = {int(c.labels[PORT_LABEL]) for c in _managed(client) if c.labels.get(PORT_LABEL, "").isdigit()}
        ports = list(self.settings.ports)
        offset = random.randrange(len(ports))  # noqa: S311 (two deploys at once rarely try the same port)
        for port in ports[offset:] + ports[:offset]:
            if port not in taken and (not self.settings.loopback or _free(self.settings.listen_host, port)):
                return port
        raise BackendError(f"no free port in port_range {self.settings.ports.start}-{self.settings.ports.stop - 1} "
                           f"on {self.settings.advertise_host}: widen it")

    # ------------------------------------------------------------ running

    def _run(self, container, docker_host: str) -> Placement:
        container.start()  # a no-op on a running container
        container.reload()
        port = self._port_of(container)
        url = f"http://{_url_host(self.settings.advertise_host)}:{port}"
        self._wait_ready(container, url)
        volumes = [m["Name"] for m in container.attrs.get("Mounts", []) if m.get("Destination") == STATE_DIR]
        handle = {"container_id": container.id, "name": container.name, "port": port, "docker_host": docker_host,
                  "network": container.attrs["HostConfig"]["NetworkMode"], "volume": next(iter(volumes), "")}
        return Placement(url, handle)

    def _port_of(self, container) -> int:
        if container.labels.get(PORT_LABEL):
            return int(container.labels[PORT_LABEL])
        published = (container.ports or {}).get(f"{RUNNER_PORT}/tcp") or []
        if not published:
            raise BackendError(f"the engine published no host port for the container {container.name}: "
                               f"{_tail(container)}")
        return int(published[0]["HostPort"])

    def _wait_ready(self, container, url: str) -> None:
        deadline = time.monotonic() + self.settings.ready_timeout
        restarts = container.attrs.get("RestartCount", 0)  # the restart policy hides a crash behind a restart
        while time.monotonic() < deadline:
            if _answers(f"{url}/v2/health/ready"):
                return
            container.reload()
            if container.status in ("exited", "dead") or container.attrs.get("RestartCount", 0) > restarts:
                raise BackendError(f"the runner's container {container.name} exited "
                                   f"({_exit_reason(container)}): {_tail(container)}")
            time.sleep(0.1)
        logs = _tail(container)
        container.stop(timeout=STOP_GRACE)
        raise BackendError(f"the runner did not become ready at {url} in {self.settings.ready_timeout:g} s: {logs}")


# ---------------------------------------------------------------- options

def parse_options(options: dict) -> Settings:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise BackendError(f"unknown docker target option {unknown[0]!r}: allowed are {', '.join(OPTIONS)}")
    return Settings(
        docker_host=_docker_host(options.get("docker_host")), network=_choice(options, "network", NETWORKS, "host"),
        advertise_host=_advertise_host(options.get("advertise_host", "127.0.0.1")),
        ports=_port_range(options.get("port_range", DEFAULT_PORT_RANGE)), memory=_memory(options.get("memory")),
        nano_cpus=_nano_cpus(options.get("cpus")),
        restart_policy=_choice(options, "restart_policy", RESTART_POLICIES, "unless-stopped"),
        labels=_labels(options.get("labels", {})), workers=_positive_int(options, "workers", 1),
        ready_timeout=_positive_number(options, "ready_timeout", 120), pids_limit=_pids_limit(options),
        tmp_size=_tmp_size(options.get("tmp_size", DEFAULT_TMP_SIZE)))


def _docker_host(value) -> str:
    host = value or getattr(settings, "DOCKER_HOST", "") or os.environ.get("DOCKER_HOST") or LOCAL_SOCKET
    if not isinstance(host, str) or not re.match(r"^(unix|tcp|ssh|npipe|http|https)://", host):
        raise BackendError(f"docker_host {host!r} must be an engine address: unix:///path/docker.sock, "
                           "tcp://host:port or ssh://user@host")
    return host


def _choice(options: dict, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = options.get(name, default)
    if value not in allowed:
        raise BackendError(f"{name} {value!r} is not allowed: use one of {', '.join(allowed)}")
    return value


def _advertise_host(value) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9.:\-\[\]]+", value):
        raise BackendError(f"advertise_host {value!r} must be a host name or an IP address (no scheme, no port)")
    return value.strip("[]")


def _port_range(value) -> range:
    match = re.fullmatch(r"\s*(\d{1,5})\s*-\s*(\d{1,5})\s*", str(value))
    first, last = (int(match[1]), int(match[2])) if match else (0, 0)
    if not match or not 1024 <= first <= last <= 65535:
        raise BackendError(f"port_range {value!r} must be \"first-last\", ports from 1024 to 65535, "
                           "e.g. \"31000-31999\"")
    return range(first, last + 1)


def _memory(value) -> str | None:
    if value is None:
        return None
    if not re.fullmatch(r"[1-9]\d*[bkmg]?", str(value).lower()):
        raise BackendError(f"memory {value!r} must be a size: a number with an optional unit b, k, m or g, "
                           "e.g. \"512m\"")
    return str(value).lower()


def _pids_limit(options: dict) -> int:
    value = options.get("pids_limit", DEFAULT_PIDS_LIMIT)
    low, high = PIDS_LIMITS
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BackendError(f"pids_limit {value!r} must be a whole number from {low} to {high}: the processes and "
                           "threads the container may have")
    return value


def _tmp_size(value) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[1-9]\d*[kmg]", value.lower()):
        raise BackendError(f"tmp_size {value!r} must be a size with a unit k, m or g, e.g. \"512m\" (the tmpfs "
                           "at /tmp)")
    return value.lower()


def _nano_cpus(value) -> int | None:
    if value is None:
        return None
    try:
        cpus = 0.0 if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        cpus = 0.0
    if not 0.01 <= cpus <= 1024:
        raise BackendError(f"cpus {value!r} must be a number of CPUs, e.g. 0.5 or 2")
    return int(cpus * 1e9)


def _labels(value) -> dict:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise BackendError("labels must be an object of strings: {\"name\": \"value\"}")
    reserved = [key for key in value if key.startswith("ai.acumos.")]
    if reserved:
        raise BackendError(f"label {reserved[0]!r} is not allowed: the portal sets the ai.acumos. labels")
    return dict(value)


def _positive_int(options: dict, name: str, default: int) -> int:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BackendError(f"{name} {value!r} must be a whole number, at least 1")
    return value


def _positive_number(options: dict, name: str, default: float) -> float:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise BackendError(f"{name} {value!r} must be a number of seconds above 0")
    return float(value)


def parse_secret(secret: str) -> dict | None:
    """Registry credentials, or None. The message never repeats the secret."""
    if not secret:
        return None
    try:
        auth = json.loads(secret)
    except ValueError:
        auth = None
    if not isinstance(auth, dict) or not isinstance(auth.get("username"), str) \
            or not isinstance(auth.get("password"), str):
        raise BackendError("the docker target's secret must be JSON: {\"username\": \"...\", \"password\": \"...\"} "
                           "(registry credentials for pulling)")
    return {"username": auth["username"], "password": auth["password"]}


# ---------------------------------------------------------------- helpers

def container_name(deployment) -> str:
    return f"acumos-{deployment.pk.hex[:12]}"


def volume_name(deployment) -> str:
    return f"acumos-state-{deployment.pk.hex[:12]}"


def image_of(revision) -> ImageRef:
    artifact = image_artifact(revision)
    if artifact is None or not artifact.uri:
        raise BackendError(f"revision {revision} has no image yet: build it first (Create microservice)")
    return ImageRef.parse(artifact.uri)


def _pinned(image: ImageRef) -> str:
    return f"{image.registry}/{image.repository}@{image.digest}" if image.digest else str(image)


def _managed(client) -> list:
    return client.containers.list(all=True, filters={"label": f"{MANAGED_BY}={MANAGER}"})


def _remove_leftover(client, deployment) -> None:
    """The deployment's containers, then its volumes (found by their labels)."""
    owned = {"label": f"{DEPLOYMENT_LABEL}={deployment.pk}"}
    for container in client.containers.list(all=True, filters=owned):
        with _gone_is_fine():
            container.remove(force=True, v=True)
    for volume in client.volumes.list(filters=owned):
        with _gone_is_fine():
            volume.remove(force=True)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _answers(url: str) -> bool:
    with requests.Session() as session:
        session.trust_env = False  # no proxy from the environment between the portal and its runner
        try:
            return session.get(url, timeout=2).status_code == 200
        except requests.RequestException:
            return False


def _exit_reason(container) -> str:
    state = container.attrs.get("State", {})
    restarts = container.attrs.get("RestartCount") or 0
    return f"status {state.get('ExitCode')}" + (f", restarted {restarts} times" if restarts else "")


def _tail(container) -> str:
    with contextlib.suppress(docker.errors.APIError):
        return container.logs(tail=40).decode(errors="replace")[-2000:]
    return "(no logs)"


@contextlib.contextmanager
def _gone_is_fine():
    """Stopping or removing what is already gone (or going) is done."""
    try:
        yield
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code != 409 or "in progress" not in str(exc):
            raise


@contextlib.contextmanager
def _engine_errors(host: str):
    """An engine that is down or refuses: say which one and why."""
    try:
        yield
    except BackendError:
        raise
    except (requests.ConnectionError, docker.errors.DockerException) as exc:
        raise BackendError(f"the Docker engine at {host} could not be used: {exc}") from exc
