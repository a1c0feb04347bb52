"""Federation fixtures: `cluster` starts real portal instances (tests/federation/cluster.py), each
behind its own nginx terminator with an identity from the cluster's CA. One cluster per test module:
an instance costs seconds to start (a fresh PostgreSQL database to migrate), so a module's tests
share the instances they make and keep their data apart (a peer of their own, a name of their own)."""

from __future__ import annotations

import shutil
import uuid

import pytest

from acumos_portal import jobs
from federation import identity
from federation.choices import Trigger
from federation.models import Peer, Subscription, SyncRun
from marketplace.choices import CatalogAccess
from tests.factories import CatalogFactory
from tests.servers import free_port

from .cluster import Cluster, running_cluster
from .pki import ThrowawayCA

# What the in-process tests' terminator proves itself with (test_peer_api forwards calls with it).
TERMINATOR_SECRET = "terminator-secret-for-tests-0123456789"


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    """A cluster: `cluster.make_instances(2)` starts two instances; everything is stopped and removed
    when the module's tests are done."""
    if not shutil.which("nginx") and not shutil.which("nginx", path="/usr/sbin"):
        pytest.fail("federation tests need nginx: run `make nginx` (bash scripts/ensure-nginx.sh)", pytrace=False)
    if not shutil.which("docker-registry"):
        pytest.fail("federation tests need docker-registry: run `make images`", pytrace=False)
    with running_cluster() as made:
        yield made


# ---------------------------------------------------------------- in-process fixtures

@pytest.fixture
def me(settings, tmp_path):
    """This instance's identity, made for the test in its own folder."""
    settings.ACUMOS_FEDERATION_DIR = tmp_path / "federation"
    settings.ACUMOS_FEDERATION_TERMINATOR_SECRET = TERMINATOR_SECRET
    identity.forget()
    made = identity.create("portal-a.test", ["portal-a.test"])
    yield made
    identity.forget()


@pytest.fixture
def no_identity(settings, tmp_path):
    settings.ACUMOS_FEDERATION_DIR = tmp_path / "no-federation"
    identity.forget()
    yield
    identity.forget()


@pytest.fixture
def ca():
    return ThrowawayCA()


def closed_url() -> str:
    """A peer address on this host where nothing listens: the port was free a moment ago."""
    return f"https://127.0.0.1:{free_port()}"


@pytest.fixture
def peer(db, ca):
    """An active peer registered with its CA, at an address that does not answer."""
    return Peer.objects.create(name="Beta", subject="portal-b.test", api_url=closed_url(), certificate=ca.pem,
                               contact="admins@beta.test")


@pytest.fixture
def restricted(db):
    return CatalogFactory(name="Partners", access=CatalogAccess.RESTRICTED)


@pytest.fixture
def subscription(peer, admin_user):
    return Subscription.objects.create(peer=peer, catalog_id=uuid.uuid4(), catalog_name="Beta models",
                                       owner=admin_user)


@pytest.fixture
def run(subscription, admin_user):
    return SyncRun.objects.create(subscription=subscription, requested_by=admin_user, trigger=Trigger.MANUAL)


@pytest.fixture
def sent(monkeypatch, django_capture_on_commit_callbacks):
    """The tasks sent once the request's transaction commits, by name and arguments (none runs)."""
    tasks = []
    monkeypatch.setattr(jobs, "send", lambda task, *args, **options: tasks.append((task.name, args)))

    def committed(ask):
        with django_capture_on_commit_callbacks(execute=True):  # the callbacks run as the block ends
            return ask()

    committed.tasks = tasks
    return committed
