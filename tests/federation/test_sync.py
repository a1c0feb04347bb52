"""Subscriptions between real portals: three instances (alpha the origin, beta its subscriber, gamma
beta's subscriber), each with its own PostgreSQL database, storage, registry and identity, talking
over real mutual TLS through their nginx terminators (tests/federation/cluster.py).

The tests run in order on the same three instances, each building on what the one before left: what
a subscriber imports (every artifact, sha256 equal, a runnable image from its own registry), what a
run with nothing new does, restricted catalogs, a new revision, a withdrawal, refusals that keep
nothing, an origin gone mid-run, and the chain A -> B -> C."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

import docker
import httpx
import pytest

from tests.bundles import builders
from tests.servers import free_port

from .cluster import Instance

pytestmark = pytest.mark.timeout(900)
JOB_SECONDS = 120
PARTS = (("model", "modelpackage.zip"), ("metadata", "metadata.json"), ("schema", "model.proto"))
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


# ---------------------------------------------------------------- talking to an instance

def query(instance: Instance, code: str):
    """Run `code` in the instance (its settings and database); it assigns `result`, printed as JSON."""
    out = instance.python("import json\n" + code + "\nprint('RESULT=' + json.dumps(result, default=str))")
    line = next(line for line in reversed(out.splitlines()) if line.startswith("RESULT="))
    return json.loads(line.removeprefix("RESULT="))


def push(instance: Instance, auth: str, name: str, bundle: Path) -> dict:
    """Onboard a bundle under `name` through the Acumos API and wait until it is ready."""
    parts = {part: (bundle / file).read_bytes() for part, file in PARTS}
    metadata = json.loads(parts["metadata"])
    metadata["name"] = name
    metadata.pop("modelVersion", None)  # the next version of the name, whatever came before
    parts["metadata"] = json.dumps(metadata).encode()
    answer = httpx.post(f"{instance.url}/onboarding-app/v2/models", headers={"Authorization": auth}, timeout=120,
                        files={part: (part, data) for part, data in parts.items()})
    assert answer.status_code == 201, answer.text
    task = answer.json()["taskId"]
    deadline = time.monotonic() + JOB_SECONDS
    while time.monotonic() < deadline:
        job = httpx.get(f"{instance.url}/api/v1/onboarding/jobs/{task}/", headers={"Authorization": auth},
                        timeout=30).json()
        if job["status"] in ("succeeded", "failed"):
            assert job["status"] == "succeeded", f"{job}\n{instance.logs()}"
            return answer.json()["result"]
        time.sleep(0.5)
    raise AssertionError(f"onboarding of {name} did not finish in {JOB_SECONDS} s\n{instance.logs()}")


def make_catalog(instance: Instance, name: str, access: str) -> str:
    return query(instance, "from marketplace.models import Catalog\n"
                           f"result = str(Catalog.objects.create(name={name!r}, access={access!r}).pk)")


def publish(instance: Instance, revision_id: str, catalog_id: str) -> None:
    query(instance, "from marketplace import services\nfrom marketplace.models import Catalog, Revision\n"
                    f"services.publish_directly(Revision.objects.get(pk={revision_id!r}), "
                    f"Catalog.objects.get(pk={catalog_id!r}))\nresult = True")


def unpublish_all(instance: Instance, revision_id: str) -> None:
    query(instance, "from marketplace.models import Publication\n"
                    f"for p in Publication.objects.filter(revision_id={revision_id!r}): p.delete()\nresult = True")


def subscribe(instance: Instance, origin: Instance, catalog_id: str, **options) -> str:
    return query(instance, "from acumos_portal.accounts.models import User\nfrom federation import services\n"
                           "from federation.models import Peer\n"
                           "admin = User.objects.get(username='admin')\n"
                           f"peer = Peer.objects.get(subject={origin.subject!r})\n"
                           f"result = str(services.subscribe(admin, peer, catalog_id={catalog_id!r}, "
                           f"interval_seconds=0, **{options!r}).pk)")


def run(instance: Instance, subscription_id: str, *, dry_run: bool = False) -> dict:
    """A run of the subscription, done in this call (the job's own code: claim, heartbeat, finish)."""
    return query(instance, "from federation import services\nfrom federation.models import SyncRun\n"
                           f"made = SyncRun.objects.create(subscription_id={subscription_id!r}, dry_run={dry_run})\n"
                           "from acumos_portal.jobs import Transient\n"
                           "try:\n    services.execute_run(made.pk)\n"
                           "except Transient:  # put back for a retry, which no worker makes here: failed\n"
                           "    made.refresh_from_db()  # as the reaper would once the retries run out\n"
                           "    services.fail_run(made, 'put back for a retry (not retried in this test)')\n"
                           "made.refresh_from_db()\n"
                           "result = {'status': made.status, 'error': made.error, 'summary': made.summary, "
                           "'fetched': made.bytes_fetched, 'reused': made.bytes_reused, "
                           "'results': list(made.results.values('revision_id', 'name', 'outcome', 'message', "
                           "'bytes_fetched', 'bytes_reused'))}")


def artifacts_of(instance: Instance, revision_id: str) -> dict:
    return query(instance, "from marketplace.models import Artifact\n"
                           f"result = {{a.kind: [a.blob.sha256 if a.blob else '', a.uri, str(a.pk)] for a in "
                           f"Artifact.objects.filter(revision_id={revision_id!r}).select_related('blob')}}")


def imported(instance: Instance, revision_id: str) -> dict | None:
    return query(instance, "from federation.models import RevisionOrigin\nfrom marketplace.models import Revision\n"
                           f"r = Revision.objects.filter(pk={revision_id!r}).select_related('solution').first()\n"
                           f"o = RevisionOrigin.objects.filter(revision_id={revision_id!r}).first()\n"
                           "result = r and {'status': r.status, 'solution': str(r.solution_id), "
                           "'imported_from': r.solution.imported_from, 'version': r.version, "
                           "'listed': r.publications.exists(), 'origin': o and o.origin_name, "
                           "'signature': o and o.signature_status, 'hops': o and o.hops, "
                           "'withdrawn': bool(o and o.withdrawn_at)}")


def wire(a: Instance, b: Instance) -> None:
    """Each registers the other as an active peer (by its CN, with the cluster's CA)."""
    a.add_peer(b)
    b.add_peer(a)


# ---------------------------------------------------------------- the instances and models

@pytest.fixture(scope="module")
def trio(cluster):
    alpha, beta, gamma = cluster.make_instances(3)
    wire(alpha, beta)
    wire(beta, gamma)
    return alpha, beta, gamma


@pytest.fixture(scope="module")
def iris(tmp_path_factory) -> Path:
    return builders.iris_bundle(tmp_path_factory.mktemp("iris"))


@pytest.fixture(scope="module")
def origin(trio, iris):
    """At alpha: a data scientist's model, published in a public catalog."""
    alpha = trio[0]
    auth = alpha.portal.user_with_token("scientist")
    made = push(alpha, auth, "IrisFederated", iris)
    catalog = make_catalog(alpha, "Shared with partners", "PB")
    publish(alpha, made["revisionId"], catalog)
    return {"auth": auth, "catalog": catalog, **made}


@pytest.fixture(scope="module")
def subscription(trio, origin):
    return subscribe(trio[1], trio[0], origin["catalog"])


@pytest.fixture(scope="module")
def docker_client():
    env = dict(line.split("=", 1) for line in (Path(__file__).parents[2] / "build" / "images.env").read_text()
               .splitlines() if "=" in line)
    client = docker.DockerClient(base_url=env["ACUMOS_TEST_DOCKER_HOST"])
    yield client
    client.close()


# ---------------------------------------------------------------- the first run

def test_a_subscription_imports_every_artifact_and_a_runnable_image(trio, origin, subscription, docker_client):
    alpha, beta, _ = trio
    done = run(beta, subscription)
    assert done["status"] == "succeeded", done
    assert done["summary"] == {"imported": 1}, done
    here = imported(beta, origin["revisionId"])
    assert here["status"] == "ready" and here["solution"] == origin["solutionId"]  # the peer's ids
    assert here["imported_from"] == alpha.subject and here["listed"]
    assert here["origin"] == alpha.subject and here["signature"] == "verified" and here["hops"] == [alpha.subject]
    # Its resources are what beta's own smoke test measured, not the figures alpha exports beside it.
    measured = query(beta, f"from marketplace.models import Revision\n"
                           f"result = Revision.objects.get(pk='{origin['revisionId']}').resources")
    assert measured["peak_memory_bytes"] > 0 and measured["methods"]["classify"]["single_ms"] > 0, measured

    theirs, ours = artifacts_of(alpha, origin["revisionId"]), artifacts_of(beta, origin["revisionId"])
    files = {"MD", "PB", "MI", "PJ", "TG", "LG"}
    assert files <= set(theirs)
    assert {kind: ours[kind][0] for kind in files} == {kind: theirs[kind][0] for kind in files}
    assert {kind: ours[kind][2] for kind in ours} == {kind: theirs[kind][2] for kind in ours}  # the peer's ids
    image = ours["DI"][1]
    assert image.startswith(beta.registry + "/"), image
    assert image.split("@")[1] == theirs["DI"][1].split("@")[1]  # the same digest, in beta's own registry

    # The base's layers were in beta's registry already: mounted, not sent. What moved is the model's
    # own (its dependencies' layer, its bundle's, its config).
    moved = done["results"][0]
    assert "3 mounted" in moved["message"], moved
    assert moved["bytes_reused"] >= base_size(beta), moved

    port = free_port()
    container = docker_client.containers.run(image, detach=True, network_mode="host", labels={"acumos-test": "1"},
                                             environment={"RUNNER_HOST": "127.0.0.1", "RUNNER_PORT": str(port)})
    try:
        answer = _predict(f"http://127.0.0.1:{port}", container)
        assert answer == {"species": 0}, answer
    finally:
        container.remove(force=True)


def base_size(instance: Instance) -> int:
    """The bytes of the runner base image's layers (the model image has a config of its own)."""
    return query(instance, "from django.conf import settings\nfrom images import oci\n"
                           "ref = oci.ImageRef.parse(settings.ACUMOS_IMAGE_BASE)\n"
                           "with oci.Registry(ref.registry) as r:\n"
                           "    m = r.manifest(ref.repository, ref.reference)[0]\n"
                           "result = sum(layer['size'] for layer in m['layers'])")


def _predict(base_url: str, container, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(f"{base_url}/model/methods/classify", data=json.dumps(SETOSA).encode(),
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            container.reload()
            if container.status == "exited":
                break
            time.sleep(0.3)
    raise AssertionError(f"the imported image did not answer:\n{container.logs(tail=40).decode(errors='replace')}")


def test_a_run_with_nothing_new_fetches_nothing(trio, subscription):
    beta = trio[1]
    started = time.monotonic()
    done = run(beta, subscription)
    assert done["status"] == "succeeded" and done["summary"] == {} and done["fetched"] == 0, done
    assert time.monotonic() - started < 30  # a manage.py process included; the bench measures the run itself


def test_a_dry_run_says_what_would_change_and_changes_nothing(trio, origin, subscription, iris):
    alpha, beta, _ = trio
    made = push(alpha, origin["auth"], "IrisDryRun", iris)
    publish(alpha, made["revisionId"], origin["catalog"])
    dry = run(beta, subscription, dry_run=True)
    assert dry["status"] == "succeeded" and dry["summary"] == {"would-import": 1}, dry
    assert dry["results"][0]["name"] == "IrisDryRun"  # the feed says what changed
    assert imported(beta, made["revisionId"]) is None
    real = run(beta, subscription)
    assert real["summary"] == {"imported": 1}, real
    assert imported(beta, made["revisionId"])["status"] == "ready"


# ---------------------------------------------------------------- what a peer may see

def test_a_restricted_catalog_is_invisible_until_granted(trio, origin, iris):
    alpha, beta, _ = trio
    catalog = make_catalog(alpha, "Partners only", "RS")
    made = push(alpha, origin["auth"], "IrisRestricted", iris)
    publish(alpha, made["revisionId"], catalog)
    listing = ("from federation.client import PeerClient\nfrom federation.models import Peer\n"
               f"with PeerClient(Peer.objects.get(subject={alpha.subject!r})) as c:\n"
               "    result = [x['catalogId'] for x in c.catalogs()]")
    assert catalog not in query(beta, listing)
    refused = run(beta, subscribe(beta, alpha, catalog))
    assert refused["status"] == "failed" and "not_found" in refused["error"], refused
    assert imported(beta, made["revisionId"]) is None

    query(alpha, "from federation.models import CatalogGrant, Peer\nfrom marketplace.models import Catalog\n"
                 f"CatalogGrant.objects.create(peer=Peer.objects.get(subject={beta.subject!r}), "
                 f"catalog=Catalog.objects.get(pk={catalog!r}))\nresult = True")
    assert catalog in query(beta, listing)
    subscription = query(beta, f"from federation.models import Subscription\nresult = str(Subscription.objects.get("
                               f"catalog_id={catalog!r}).pk)")
    done = run(beta, subscription)
    assert done["summary"] == {"imported": 1}, done
    assert imported(beta, made["revisionId"])["status"] == "ready"


# ---------------------------------------------------------------- changes at the origin

def test_a_new_revision_arrives_on_the_next_run_without_duplicates(trio, origin, subscription, iris):
    alpha, beta, _ = trio
    made = push(alpha, origin["auth"], "IrisFederated", iris)  # the same name: a new revision
    assert made["solutionId"] == origin["solutionId"]
    publish(alpha, made["revisionId"], origin["catalog"])
    done = run(beta, subscription)
    assert done["summary"] == {"imported": 1}, done
    revisions = query(beta, "from marketplace.models import Revision\n"
                            f"result = sorted(str(r.pk) for r in Revision.objects.filter(solution_id="
                            f"{origin['solutionId']!r}))")
    assert revisions == sorted([origin["revisionId"], made["revisionId"]])
    # The second revision's package is the first one's bytes, and its image shares all but its bundle's
    # layer and config with the first: held already, not fetched again.
    moved = done["results"][0]
    assert moved["bytes_fetched"] < 1 << 20 and moved["bytes_reused"] > 50 << 20, moved


def test_a_withdrawal_at_the_origin_hides_the_copy(trio, origin, subscription):
    alpha, beta, _ = trio
    unpublish_all(alpha, origin["revisionId"])
    done = run(beta, subscription)
    assert done["summary"] == {"withdrawn": 1}, done
    here = imported(beta, origin["revisionId"])
    assert here["withdrawn"] and not here["listed"] and here["status"] == "ready"  # kept for what runs it

    publish(alpha, origin["revisionId"], origin["catalog"])  # published again: listed again
    again = run(beta, subscription)
    assert again["summary"] == {"imported": 1}, again
    here = imported(beta, origin["revisionId"])
    assert here["listed"] and not here["withdrawn"]


# ---------------------------------------------------------------- refusals that keep nothing

def _blob_path(instance: Instance, revision_id: str, kind: str) -> Path:
    key = query(instance, "from marketplace.models import Artifact\n"
                          f"result = Artifact.objects.get(revision_id={revision_id!r}, kind={kind!r}).blob.storage_key")
    return instance.data_dir / "artifacts" / key


def _blob_count(instance: Instance) -> int:
    return query(instance, "from marketplace.models import Blob\nresult = Blob.objects.count()")


def test_a_tampered_artifact_is_refused_and_nothing_is_kept(trio, origin, subscription, iris):
    alpha, beta, _ = trio
    made = push(alpha, origin["auth"], "IrisTampered", iris)
    publish(alpha, made["revisionId"], origin["catalog"])
    stored = _blob_path(alpha, made["revisionId"], "MD")  # this model's own metadata (its name is in it)
    original = stored.read_bytes()
    stored.write_bytes(original.replace(b"IrisTampered", b"IrisTamperex"))  # same size, other bytes
    blobs_before = _blob_count(beta)
    try:
        done = run(beta, subscription)
    finally:
        stored.write_bytes(original)
    assert done["summary"] == {"refused": 1}, done
    assert "do not match the signed manifest" in done["results"][0]["message"]
    assert imported(beta, made["revisionId"]) is None
    assert _blob_count(beta) == blobs_before
    assert not list((beta.data_dir / "federation" / "partial").glob("*/*"))  # no partial file kept
    told = query(beta, "from marketplace.models import Notification\n"
                       "result = list(Notification.objects.filter(kind='federation').values_list('title', flat=True))")
    assert any("IrisTampered" in title and "refused" in title for title in told), told


def test_a_manifest_with_a_bad_signature_is_refused(trio, origin, subscription, iris):
    alpha, beta, _ = trio
    made = push(alpha, origin["auth"], "IrisForged", iris)
    publish(alpha, made["revisionId"], origin["catalog"])
    # alpha signs its manifest when first asked; then its stored manifest is altered, signature kept.
    query(alpha, "from federation import manifests\nfrom marketplace.models import Revision\n"
                 f"o = manifests.origin_of(Revision.objects.get(pk={made['revisionId']!r}))\n"
                 "o.manifest['revision']['description'] = 'not what was signed'\no.save()\nresult = True")
    done = run(beta, subscription)
    assert done["summary"] == {"refused": 1}, done
    assert "does not match the document" in done["results"][0]["message"]
    assert imported(beta, made["revisionId"]) is None


# ---------------------------------------------------------------- an origin gone mid-run

def test_an_origin_gone_mid_transfer_is_resumed_by_the_next_run(trio, origin, subscription, tmp_path):
    alpha, beta, _ = trio
    big = builders.iris_bundle(tmp_path / "big")
    padding = os.urandom(6 << 20)  # a package of some megabytes, so that the transfer takes seconds
    _pad_package(big / "modelpackage.zip", padding)
    made = push(alpha, origin["auth"], "IrisLarge", big)
    publish(alpha, made["revisionId"], origin["catalog"])
    size = (big / "modelpackage.zip").stat().st_size
    query(beta, f"from federation.models import Peer\nPeer.objects.filter(subject={alpha.subject!r})"
                ".update(rate_limit_kbps=1500)\nresult = True")  # about 4 s for the package
    partial = beta.data_dir / "federation" / "partial"

    import threading

    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(run(beta, subscription)))
    runner.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.stat().st_size > (1 << 20) for p in partial.glob("*/*")):
        time.sleep(0.05)
    alpha.stop_terminator()  # the origin goes away mid-transfer
    runner.join(timeout=300)
    assert outcome["status"] == "failed" and "put back for a retry" in outcome["error"], outcome
    assert imported(beta, made["revisionId"]) is None
    held = sum(p.stat().st_size for p in partial.glob("*/*"))
    assert 0 < held < size

    alpha.restart_terminator()
    query(beta, f"from federation.models import Peer\nPeer.objects.filter(subject={alpha.subject!r})"
                ".update(rate_limit_kbps=0)\nresult = True")
    done = run(beta, subscription)
    assert done["summary"].get("imported") == 1, done
    resumed = next(r for r in done["results"] if r["revision_id"] == made["revisionId"])
    assert resumed["bytes_fetched"] <= size - held + 64 << 10, resumed  # the rest, not the whole package again
    assert imported(beta, made["revisionId"])["status"] == "ready"
    assert query(beta, "from marketplace.models import Revision\n"
                       f"result = Revision.objects.filter(solution_id={made['solutionId']!r}).count()") == 1


def _pad_package(package: Path, padding: bytes) -> None:
    import zipfile

    with zipfile.ZipFile(package, "a", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("padding.bin", padding)


# ---------------------------------------------------------------- A -> B -> C

def test_a_model_that_travels_through_two_peers_keeps_its_origin(trio, origin, subscription):
    alpha, beta, gamma = trio
    # gamma knows alpha's certificate (registered, not active: no partner of gamma's), so alpha's signature
    # proves alpha there; beta's CA could never vouch for a certificate named alpha.
    gamma.add_peer(alpha, status="IN")
    local = query(beta, "from federation.models import Subscription\n"
                        f"result = str(Subscription.objects.get(pk={subscription!r}).local_catalog_id)")
    query(beta, "from federation.models import CatalogGrant, Peer\nfrom marketplace.models import Catalog\n"
                f"CatalogGrant.objects.create(peer=Peer.objects.get(subject={gamma.subject!r}), "
                f"catalog=Catalog.objects.get(pk={local!r}))\nresult = True")
    done = run(gamma, subscribe(gamma, beta, local))
    assert done["status"] == "succeeded" and done["summary"].get("imported", 0) >= 1, done
    here = imported(gamma, origin["revisionId"])
    assert here["status"] == "ready" and here["imported_from"] == beta.subject
    assert here["origin"] == alpha.subject and here["signature"] == "verified"
    assert here["hops"] == [alpha.subject, beta.subject]
    theirs, ours = artifacts_of(alpha, origin["revisionId"]), artifacts_of(gamma, origin["revisionId"])
    assert {k: v[0] for k, v in ours.items() if k != "DI"} == {k: v[0] for k, v in theirs.items()
                                                              if k in ours and k != "DI"}


# ---------------------------------------------------------------- the schedule

def test_the_schedule_runs_a_due_subscription_by_itself(trio, origin, subscription):
    """beta's own scheduler (`run_schedule`, as `make run` starts it) runs a subscription whose interval
    has passed: a run of trigger "schedule", done by the portal's workers, with nothing new to import."""
    beta = trio[1]
    query(beta, "from datetime import timedelta\nfrom django.utils import timezone\n"
                "from federation.models import Subscription\n"
                f"Subscription.objects.filter(pk={subscription!r}).update(interval_seconds=60, "
                "last_run_at=timezone.now() - timedelta(seconds=61))\nresult = True")
    scheduled = ("from federation.models import SyncRun\n"
                 f"r = SyncRun.objects.filter(subscription_id={subscription!r}, trigger='schedule').first()\n"
                 "result = r and {'status': r.status, 'summary': r.summary, 'error': r.error}")
    deadline = time.monotonic() + 150  # the schedule looks every 60 s
    found = None
    while time.monotonic() < deadline:
        found = query(beta, scheduled)
        if found and found["status"] in ("succeeded", "failed"):
            break
        time.sleep(3)
    assert found and found["status"] == "succeeded", f"{found}\n{beta.logs()}"
    query(beta, "from federation.models import Subscription\n"
                f"Subscription.objects.filter(pk={subscription!r}).update(interval_seconds=0)\nresult = True")
