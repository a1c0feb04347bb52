"""Real portal instances for federation tests: each started as `make run` starts it (tests/servers.py),
on a PostgreSQL database of its own, with a data directory, an image registry and a federation
identity of its own, behind its own nginx TLS terminator (`manage.py federation_terminator --run`).
Every identity is issued by one throwaway CA the cluster makes, so instances can register each other;
the cluster also issues client certificates that should be refused (expired, unknown names, from a
second CA nobody registered).

Everything a cluster starts or makes is stopped and removed when it closes, whatever happened:
nginx, portal, scheduler, registry, database, temporary directories.

    with running_cluster() as cluster:
        alpha, beta = cluster.make_instances(2)
        alpha.add_peer(beta)
        alpha.peer_session(beta.credentials).get(f"{alpha.federation_url}/federation/ping")
"""

from __future__ import annotations

import contextlib
import datetime
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.registries import throwaway_registry
from tests.servers import PYTHON, REPO, Portal, free_port
from tests.servers import _stop as stop_process

from .pki import ThrowawayCA

POSTGRES = "postgres://postgres@127.0.0.1:5432"
READY_SECONDS = 30
NAMES = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta")
# Where the image tests' registry keeps the runner base image (scripts/ensure-images.sh writes it).
IMAGES_ENV = REPO / "build" / "images.env"


# ---------------------------------------------------------------- certificates

@dataclass(frozen=True)
class Credentials:
    """A certificate and its private key, as files (what a TLS client presents)."""

    name: str
    certificate: x509.Certificate
    cert_path: Path
    key_path: Path

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def pair(self) -> tuple[str, str]:
        """(certificate, key) as requests' `cert=` wants them."""
        return str(self.cert_path), str(self.key_path)


class CertificateAuthority(ThrowawayCA):
    """A throwaway CA whose certificate and issued pairs are files in `directory`."""

    def __init__(self, name: str, directory: Path):
        super().__init__(name)
        self.name, self.directory = name, Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / f"{_slug(name)}.crt"
        self.path.write_text(self.pem)

    def issue(self, name: str, hosts: list[str] | None = None, *, days: int = 30,
              not_before: datetime.datetime | None = None) -> Credentials:
        """A certificate for CN=`name` (TLS server and client) and its key, written beside the CA's;
        `not_before` in the past and few `days` make an expired one."""
        from federation.identity import issue  # Django's settings are read only when a test runs

        key = ec.generate_private_key(ec.SECP256R1())
        certificate = issue(self.certificate, self.key, key.public_key(), name, hosts or [name], days=days,
                            not_before=not_before)
        stem = self.directory / f"{_slug(name)}-{uuid.uuid4().hex[:8]}"
        cert_path, key_path = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        key_path.chmod(0o600)
        return Credentials(name=name, certificate=certificate, cert_path=cert_path, key_path=key_path)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in name)


# ---------------------------------------------------------------- what each instance has of its own

class Database:
    """A PostgreSQL database of its own, created now and dropped (connections and all) by drop()."""

    def __init__(self, prefix: str):
        self.name = f"acumos_fed_{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self.url = f"{POSTGRES}/{self.name}"
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.name}"')

    def drop(self) -> None:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


# ---------------------------------------------------------------- one instance

class Instance:
    """One portal behind its terminator. `url` is the portal itself (plain HTTP, what its users and
    tests call); `federation_url` is its peer API as peers reach it (HTTPS through nginx)."""

    def __init__(self, name: str, root: Path, ca: CertificateAuthority):
        self.name, self.root, self.ca = name, Path(root), ca
        self.root.mkdir(parents=True, exist_ok=True)
        self.subject = f"{name}.federation.test"  # the CN peers register it by
        self.secret = secrets.token_urlsafe(32)
        self.federation_port = free_port()
        self.federation_url = f"https://127.0.0.1:{self.federation_port}"
        self.database: Database | None = None
        self.registry: str | None = None  # its image registry's host, 127.0.0.1:PORT
        self.terminator: subprocess.Popen | None = None
        self.portal: Portal | None = None
        self.terminator_log = self.root / "terminator.log"
        self.credentials = ca.issue(self.subject, [self.subject, "127.0.0.1", "localhost"], days=365)
        self.started_seconds: float | None = None  # how long start() took

    # ------------------------------------------------------------ what tests use

    @property
    def url(self) -> str:
        return self.portal.url

    @property
    def ca_pem(self) -> str:
        """The CA that issued its certificate: what a peer registers it with."""
        return self.ca.pem

    @property
    def ca_path(self) -> Path:
        return self.ca.path

    @property
    def cert_path(self) -> Path:
        return self.credentials.cert_path

    @property
    def key_path(self) -> Path:
        return self.credentials.key_path

    @property
    def data_dir(self) -> Path:
        return self.portal.data_dir

    def peer_session(self, credentials: Credentials | None = None) -> requests.Session:
        """A requests session that trusts the cluster's CA and presents `credentials` (by default this
        instance's own identity: the session it would call its peers with)."""
        session = requests.Session()
        # Not the environment's: REQUESTS_CA_BUNDLE would replace `verify`, a proxy would see the traffic.
        session.trust_env = False
        session.cert = (credentials or self.credentials).pair
        session.verify = str(self.ca.path)
        return session

    def manage(self, *args: str) -> str:
        return self.portal.manage(*args)

    def python(self, code: str) -> str:
        """Python run with this instance's settings and database (`manage.py shell -c`)."""
        return self.portal.python(code)

    def add_peer(self, other: Instance | Credentials, *, name: str | None = None, status: str = "AC",
                 certificate: str | None = None, api_url: str | None = None) -> None:
        """Register `other` (an instance, or a client certificate's owner) as a peer here, by its CN,
        with the CA pem (or `certificate`) and a PeerStatus code (AC active, IN inactive...)."""
        subject = other.subject if isinstance(other, Instance) else other.name
        pem = certificate or (other.ca_pem if isinstance(other, Instance) else self.ca.pem)
        url = api_url or (other.federation_url if isinstance(other, Instance) else "https://127.0.0.1:9")
        self.python("from federation.models import Peer\n"
                    f"Peer.objects.create(name={(name or subject)!r}, subject={subject!r}, api_url={url!r}, "
                    f"certificate={pem!r}, status={status!r})")

    def set_peer_status(self, subject: str, status: str) -> None:
        self.python("from federation.models import Peer\n"
                    f"assert Peer.objects.filter(subject={subject!r}).update(status={status!r}) == 1")

    def logs(self) -> str:
        """The portal's and the terminator's logs, for a failing test's message."""
        terminator = self.terminator_log.read_text(errors="replace") if self.terminator_log.exists() else ""
        return f"{self.portal.tail() if self.portal else ''}\nterminator log:\n{terminator[-4000:]}"

    # ------------------------------------------------------------ its life

    def start(self, stack: contextlib.ExitStack) -> None:
        """Make and start everything this instance has; each part is registered on `stack` for its
        removal as soon as it exists."""
        began = time.monotonic()
        self.database = Database(self.name)
        stack.callback(self.database.drop)
        self.registry = stack.enter_context(throwaway_registry())
        self.portal = Portal(self.root / "data", **self._environment())
        stack.callback(self.portal.log_path.unlink, missing_ok=True)
        stack.callback(self.portal.stop)
        self.manage("federation_identity", "--import-cert", str(self.cert_path), "--import-key", str(self.key_path),
                    "--import-ca", str(self.ca.path))
        self._start_terminator()
        stack.callback(self.stop_terminator)
        self.portal.start()
        self._wait_for_terminator()
        seed_base_image(self)
        self.started_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Stop its terminator and portal (the cluster stops its registry and removes its database
        and files when it closes)."""
        self.stop_terminator()
        if self.portal:
            self.portal.stop()

    def stop_terminator(self) -> None:
        if self.terminator is not None:
            stop_process(self.terminator)

    def restart_terminator(self) -> None:
        """The terminator again (after stop_terminator: the origin back after an outage)."""
        self._start_terminator()
        self._wait_for_terminator()

    def _environment(self) -> dict[str, str]:
        return {"DATABASE_URL": self.database.url,
                "ACUMOS_FEDERATION_URL": self.federation_url,
                "ACUMOS_FEDERATION_BIND": f"127.0.0.1:{self.federation_port}",
                "ACUMOS_FEDERATION_TERMINATOR_SECRET": self.secret,
                "ACUMOS_IMAGE_BASE": f"{self.registry}/acumos/runner-base:{base_image_tag()}",
                # The image tests' wheelhouse: model images build offline, as on an air-gapped site.
                "ACUMOS_WHEELHOUSE": images_env().get("ACUMOS_TEST_WHEELHOUSE", str(self.root / "wheelhouse"))}

    def _start_terminator(self) -> None:
        command = [PYTHON, "manage.py", "federation_terminator", "--run", "--upstream", f"127.0.0.1:{self.portal.port}"]
        with open(self.terminator_log, "ab") as log:
            self.terminator = subprocess.Popen(command, cwd=REPO, env=self.portal.env, stdout=log,
                                               stderr=subprocess.STDOUT, start_new_session=True)

    def _wait_for_terminator(self) -> None:
        _wait_until(lambda: _tls_answers(self.federation_port, self.ca.path), self.terminator,
                    f"{self.name}'s terminator on {self.federation_url}", self.terminator_log)


def base_image_tag() -> str:
    """The runner base image's tag in the image tests' registry (build/images.env), so
    seed_base_image can copy it under the same name; 'unseeded' when that registry is not set up."""
    if IMAGES_ENV.exists():
        for line in IMAGES_ENV.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "ACUMOS_TEST_IMAGE_BASE" and ":" in value.rpartition("/")[2]:
                return value.strip().rpartition(":")[2]
    return "unseeded"


def images_env() -> dict[str, str]:
    """build/images.env (scripts/ensure-images.sh): the image tests' engine, registry and base image."""
    if not IMAGES_ENV.exists():
        return {}
    return dict(line.strip().split("=", 1) for line in IMAGES_ENV.read_text().splitlines() if "=" in line)


def seed_base_image(instance: Instance) -> None:
    """Copy the runner base image into the instance's own registry as ACUMOS_IMAGE_BASE names it
    (acumos/runner-base:<base_image_tag()>), registry to registry (images.oci.copy_image), so the
    instance builds model images on it and a peer's image built on the same base moves only its layer."""
    source = images_env().get("ACUMOS_TEST_IMAGE_BASE")
    if not source:
        return
    from images import oci  # Django's settings are read only when a test runs

    ref = oci.ImageRef.parse(source)
    with oci.Registry(ref.registry) as origin, oci.Registry(str(instance.registry)) as target:
        oci.copy_image(oci.RegistrySource(origin, ref.repository, ref.reference), target, "acumos/runner-base",
                       base_image_tag())


# ---------------------------------------------------------------- the cluster

class Cluster:
    """Instances sharing one CA, and the client certificates tests present to them. close() removes
    everything, in reverse order of making, whatever fails along the way."""

    def __init__(self, root: Path | None = None):
        self._made_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="acumos-federation-"))
        self._stack = contextlib.ExitStack()
        if self._made_root:
            self._stack.callback(shutil.rmtree, self.root, ignore_errors=True)
        self.ca = CertificateAuthority("Acumos federation test CA", self.root / "ca")
        self._untrusted: CertificateAuthority | None = None
        self.instances: list[Instance] = []

    def make_instances(self, count: int) -> list[Instance]:
        """`count` new instances, started side by side (named alpha, beta... in the cluster's order)."""
        names = [NAMES[len(self.instances) + i] if len(self.instances) + i < len(NAMES)
                 else f"peer{len(self.instances) + i}" for i in range(count)]
        made = [Instance(name, self.root / name, self.ca) for name in names]
        self.instances += made
        stacks = [contextlib.ExitStack() for _ in made]
        for stack in stacks:
            self._stack.push(stack)  # closed with the cluster, even if its start fails half way
        with ThreadPoolExecutor(max_workers=min(len(made), os.cpu_count() or 1)) as pool:
            for started in [pool.submit(i.start, s) for i, s in zip(made, stacks, strict=True)]:
                started.result()
        return made

    def client_certificate(self, name: str, *, expired: bool = False, untrusted: bool = False) -> Credentials:
        """A client certificate for CN=`name`: from the cluster's CA, or (untrusted) from a second CA
        nobody registers; expired: it ended yesterday."""
        ca = self.untrusted_ca if untrusted else self.ca
        if expired:
            ten_days_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=10)
            return ca.issue(name, days=9, not_before=ten_days_ago)
        return ca.issue(name)

    @property
    def untrusted_ca(self) -> CertificateAuthority:
        if self._untrusted is None:
            self._untrusted = CertificateAuthority("Untrusted test CA", self.root / "untrusted-ca")
        return self._untrusted

    def close(self) -> None:
        self._stack.close()


@contextlib.contextmanager
def running_cluster(root: Path | None = None) -> Iterator[Cluster]:
    cluster = Cluster(root)
    try:
        yield cluster
    finally:
        cluster.close()


# ---------------------------------------------------------------- processes

def _wait_until(ready, process: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{_tail(log)}")
        if ready():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer within {READY_SECONDS} s:\n{_tail(log)}")


def _tls_answers(port: int, ca: Path) -> bool:
    """A TLS handshake with the terminator succeeds (its certificate checked against the CA)."""
    context = ssl.create_default_context(cafile=str(ca))
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1"):
        return True
    return False


def _tail(log: Path, characters: int = 4000) -> str:
    return log.read_text(errors="replace")[-characters:] if log.exists() else "(no log)"
