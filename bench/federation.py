"""Federation: how long a subscriber takes to import a peer's catalog, and to find nothing new.

    .venv/bin/python bench/federation.py                      (or: make bench-federation; 1,000 models,
                                                               smoke tests on 200 of them)
    .venv/bin/python bench/federation.py --quick              (100 models, all smoke tested)
    .venv/bin/python bench/federation.py --smoke-models 1000  (all 1,000 smoke tested: over half an hour)

Real portals from tests/federation/cluster.py (each its own PostgreSQL database, data directory, image
registry, identity and nginx terminator, all on 127.0.0.1, all removed at the end): alpha the origin,
beta and gamma its subscribers, wired as peers over mutual TLS.

1. Setup, not measured: N small distinct models at alpha, made in one `manage.py shell` call in alpha's
   database (not through the onboarding pipeline): the iris example's bundle, each copy with a name of
   its own in metadata.json and a model file of its own bytes (the same fitted forest pickled with a
   distinct attribute; model.proto is shared), stored as blobs with their PROTOBUF.json and TGIF.json,
   a READY revision of a solution of its own, published to a public catalog. No images.
2. First sync of the N models, timed inside the subscriber's process around services.execute_run (the
   job's own code) and split by phase (wrappers around federation.sync's functions: the feed, the
   revision's signed manifest, the artifact files fetched and checked, local validation, the sandboxed
   smoke test, the revision made and published). gamma runs with ACUMOS_SMOKE_TEST=false over the whole
   catalog; beta with smoke tests (as shipped) over the first --smoke-models of them (a second catalog
   when fewer than N: the figure for N is then gamma's run plus N times beta's smoke test per model,
   labelled "extrapolated"). Target: < 60 s for 1,000 (a smaller N is judged scaled to 1,000).
3. A run with nothing new at gamma: SyncRun started -> finished, --rounds times; target: median < 2 s.
4. The anchor, in the same process and the same rounds: what Acumos's SubscriptionPoller does on every
   poll (the catalog's solutions, each solution's revisions, each revision's artifacts, each compared
   with what the subscriber holds) through federation.client.PeerClient, against our cursor read of
   /federation/changes with nothing new. Ratio: walk / read.
5. Images: one real model onboarded at alpha through the Acumos API (its image built on the runner
   base), published in a catalog of its own, imported by beta: the image copy's bytes moved and skipped
   (the base's layers are in beta's registry already), beside the base image's size.

Prints a summary table (figure, value, target, holds) and writes bench/out/federation.json; the portals'
logs go to bench/out/logs/federation-<name>.log. Exits 0 when it ran, whatever the verdict; 1 when it
could not (an instance that does not start, a model not imported).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import json
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import harness

# The portal's packages before bench/: this file is bench/federation.py, and `federation` must be the app.
sys.path.insert(0, str(harness.REPO))

from tests.bundles import builders  # noqa: E402
from tests.federation.cluster import Cluster, Instance, images_env  # noqa: E402

BENCH = "federation"
FIRST_SYNC_TARGET_S = 60.0  # for 1,000 small models
TARGET_MODELS = 1000
NOTHING_NEW_TARGET_S = 2.0
SMOKE_SAMPLE = 200  # about 2 s each, one after the other: 1,000 would take over half an hour
PARTS = (("model", "modelpackage.zip"), ("metadata", "metadata.json"), ("schema", "model.proto"))
CATALOG, SAMPLE_CATALOG, IMAGE_CATALOG = "Bench models", "Bench models (smoke sample)", "Bench images"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=TARGET_MODELS, help="models at the origin (default 1000)")
    parser.add_argument("--smoke-models", type=int, default=SMOKE_SAMPLE,
                        help=f"how many of them beta imports with smoke tests (default {SMOKE_SAMPLE}; fewer than "
                             "--models: the figure for all of them is extrapolated, and says so)")
    parser.add_argument("--quick", action="store_true", help="100 models")
    parser.add_argument("--rounds", type=int, default=5, help="runs with nothing new, and change-feed reads")
    parser.add_argument("--walk-rounds", type=int, default=3, help="Acumos poller walks")
    parser.add_argument("--no-image", action="store_true", help="skip the image part")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds any one step may take")
    args = parser.parse_args(argv)
    if args.quick:
        args.models = 100
    args.smoke_models = min(args.smoke_models, args.models)
    return args


# ================================================================ run inside an instance
# These functions are sent, as source, to an instance's `manage.py shell` (its settings, database and
# identity): each imports what it needs and returns plain data.

def seed_models(root: str, catalogs: list[list]) -> dict:
    """At the origin: every bundle folder under `root` as a ready revision of a solution of its own,
    with its descriptors, published to each catalog of `catalogs` ([name, how many of the first]).
    Returns the catalogs' ids and the seconds it took."""
    import json
    import time
    import uuid
    from pathlib import Path

    from django.db import transaction

    from acumos_portal.accounts.models import User
    from marketplace import descriptors, services, storage
    from marketplace.choices import ArtifactKind
    from marketplace.models import Catalog
    from onboarding import validation

    began = time.monotonic()
    owner = User.objects.get_or_create(username="bench-scientist", defaults={"email": "bench@example.com"})[0]
    made = {name: Catalog.objects.create(name=name, access="PB") for name, _ in catalogs}
    files = ((ArtifactKind.METADATA, "metadata.json"), (ArtifactKind.PROTO, "model.proto"),
             (ArtifactKind.MODEL, "modelpackage.zip"))
    for index, folder in enumerate(sorted(Path(root).iterdir())):
        metadata = validation.validate_metadata(folder / "metadata.json")
        proto = validation.validate_proto(folder / "model.proto", metadata)  # one protoc run: the proto is shared
        blobs = {kind: storage.store_file(folder / name)[0] for kind, name in files}
        with transaction.atomic():
            revision, _ = services.revision_create(
                owner=owner, solution_id=uuid.uuid4(), solution_name=metadata["name"], toolkit="sklearn",
                revision_id=uuid.uuid4(), version=metadata.get("modelVersion", "1.0.0"), metadata=metadata,
                artifacts=blobs)
            for kind, document in ((ArtifactKind.PROTOBUF_JSON, descriptors.protobuf_json(proto)),
                                   (ArtifactKind.TGIF, descriptors.tgif_json(proto, revision))):
                text = json.dumps(document, indent=2, sort_keys=True)
                services.artifact_add(revision, kind, blob=storage.store_text(text, ".json")[0])
            services.revision_mark_ready(revision)
            for name, count in catalogs:
                if index < count:
                    services.publish_directly(revision, made[name])
    return {"catalogs": {name: str(c.pk) for name, c in made.items()}, "seconds": time.monotonic() - began}


def make_catalog(name: str) -> str:
    from marketplace.models import Catalog

    return str(Catalog.objects.create(name=name, access="PB").pk)


def publish(revision_id: str, catalog_id: str) -> bool:
    from marketplace import services
    from marketplace.models import Catalog, Revision

    services.publish_directly(Revision.objects.get(pk=revision_id), Catalog.objects.get(pk=catalog_id))
    return True


def subscribe(peer_subject: str, catalog_id: str) -> str:
    """A subscription of the site's admin to the peer's catalog, run on demand only (interval 0)."""
    from acumos_portal.accounts.models import User
    from federation import services
    from federation.models import Peer

    admin = User.objects.get(username="admin")
    peer = Peer.objects.get(subject=peer_subject)
    return str(services.subscribe(admin, peer, catalog_id=catalog_id, interval_seconds=0).pk)


def timed_run(subscription_id: str) -> dict:
    """A run of the subscription in this process, as its job runs it (services.execute_run), with the
    seconds spent in each phase summed by wrappers around federation.sync's functions."""
    import contextlib
    import time
    from dataclasses import asdict

    from acumos_portal.jobs import Transient
    from federation import images, manifests, services, sync
    from federation.client import PeerClient
    from federation.models import SyncRun
    from marketplace import services as marketplace_services
    from marketplace import storage
    from marketplace.models import Notification

    spent: dict[str, float] = {}
    reports: list[dict] = []

    def timing(owner, name: str, phase: str, keep=None) -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            began = time.perf_counter()
            try:
                answer = original(*args, **kwargs)
                if keep is not None:
                    keep(answer)
                return answer
            finally:
                spent[phase] = spent.get(phase, 0.0) + time.perf_counter() - began

        setattr(owner, name, timed)

    timing(sync, "read_changes", "feed")
    timing(PeerClient, "revision", "manifest_get")
    timing(manifests, "check", "manifest_verify")
    timing(sync, "fetch_artifacts", "files")
    timing(PeerClient, "artifacts", "files_list")
    timing(PeerClient, "download", "files_download")
    timing(storage, "store_file", "files_store")
    timing(sync, "check_bundle", "validation_and_smoke")
    timing(sync, "_smoke", "smoke")
    timing(sync, "offered_image", "image")
    timing(images, "copy", "image", keep=lambda copied: copied and reports.append(asdict(copied.report)))
    timing(sync, "_create", "create")
    timing(marketplace_services, "revision_import", "create_import")
    timing(marketplace_services, "revision_mark_ready", "create_ready")
    timing(sync, "_publish", "create_publish")

    made = SyncRun.objects.create(subscription_id=subscription_id)
    notifications = Notification.objects.count()
    began = time.perf_counter()
    with contextlib.suppress(Transient):  # put back for a retry: the status says so
        services.execute_run(made.pk)
    wall = time.perf_counter() - began
    made.refresh_from_db()
    results = list(made.results.values("outcome", "message", "seconds", "bytes_fetched", "bytes_reused"))
    return {"status": made.status, "error": made.error, "summary": made.summary, "wall": wall,
            "job_seconds": (made.finished - made.started).total_seconds() if made.finished else None,
            "fetched": made.bytes_fetched, "reused": made.bytes_reused, "phases": spent,
            "item_seconds": [r["seconds"] for r in results], "image_reports": reports,
            "notifications": Notification.objects.count() - notifications,
            "failures": [r["message"] for r in results if r["outcome"] not in ("imported", "unchanged")][:5],
            "messages": [r["message"] for r in results][:3]}


def nothing_new_runs(subscription_id: str, rounds: int) -> list[dict]:
    """Runs of a subscription whose peer has nothing new, one after the other in this process."""
    import time

    from federation import services
    from federation.models import SyncRun

    done = []
    for _ in range(rounds):
        made = SyncRun.objects.create(subscription_id=subscription_id)
        began = time.perf_counter()
        services.execute_run(made.pk)
        wall = time.perf_counter() - began
        made.refresh_from_db()
        done.append({"status": made.status, "summary": made.summary, "fetched": made.bytes_fetched, "wall": wall,
                     "job_seconds": (made.finished - made.started).total_seconds()})
    return done


def acumos_poller_walk(client, catalog_id: str) -> dict:
    """What Acumos's SubscriptionPoller does on every poll, whatever changed: list the catalog's
    solutions, each solution's revisions and each revision's artifacts, and compare each artifact with
    the one held here (by revision and kind, on its sha256). Returns what it saw."""
    from marketplace.models import Artifact

    seen = {"requests": 1, "solutions": 0, "revisions": 0, "artifacts": 0, "differ": 0}
    for solution in client.get("solutions", catalogId=catalog_id):
        seen["solutions"] += 1
        revisions = client.get(f"solutions/{solution['solutionId']}/revisions")
        seen["requests"] += 1
        for revision in revisions:
            listed = client.artifacts(solution["solutionId"], revision["revisionId"])
            seen["requests"] += 1
            seen["revisions"] += 1
            held = dict(Artifact.objects.filter(revision_id=revision["revisionId"])
                        .values_list("kind", "blob__sha256"))
            for artifact in listed:
                seen["artifacts"] += 1
                seen["differ"] += bool(artifact["sha256"]) and held.get(artifact["artifactTypeCode"]) != \
                    artifact["sha256"]
    return seen


def changes_read(client, catalog_id: str, cursor: int) -> dict:
    """What a run of ours asks on every poll: the change feed from its cursor (sync.read_changes)."""
    seen = {"requests": 0, "changes": 0}
    while True:
        page = client.changes(catalog_id, cursor)
        seen["requests"] += 1
        seen["changes"] += len(page.get("changes", []))
        cursor = max(cursor, int(page.get("cursor") or 0))
        if not page.get("more"):
            return seen


def compare_polls(subscription_id: str, walks: int, reads: int) -> dict:
    """The Acumos walk and our change-feed read with nothing new, interleaved, each with a client of
    its own (a poll opens its connection, as a run does)."""
    import time

    from federation.client import PeerClient
    from federation.models import Subscription

    subscription = Subscription.objects.select_related("peer").get(pk=subscription_id)
    catalog, cursor = str(subscription.catalog_id), subscription.cursor or 0
    timed = {"walk": [], "read": []}
    seen = {}
    for index in range(max(walks, reads)):
        for kind, due, poll in (("walk", walks, lambda c: acumos_poller_walk(c, catalog)),
                                ("read", reads, lambda c: changes_read(c, catalog, cursor))):
            if index >= due:
                continue
            began = time.perf_counter()
            with PeerClient(subscription.peer) as client:
                seen[kind] = poll(client)
            timed[kind].append(time.perf_counter() - began)
    return {"seconds": timed, "seen": seen, "cursor": cursor}


def image_sizes(uri: str) -> dict:
    """Bytes of the runner base image (settings.ACUMOS_IMAGE_BASE) and of the image at `uri` (its
    layers and config, as stored: compressed)."""
    from django.conf import settings

    from images import oci

    def size(reference: str) -> dict:
        ref = oci.ImageRef.parse(reference)
        with oci.Registry(ref.registry) as registry:
            manifest = registry.manifest(ref.repository, ref.digest or ref.reference)[0]
        layers = [layer["size"] for layer in manifest["layers"]]
        return {"layers": layers, "config": manifest["config"]["size"], "layers_total": sum(layers)}

    return {"base": size(settings.ACUMOS_IMAGE_BASE), "image": size(uri) if uri else None}


def image_of(revision_id: str) -> str:
    from marketplace.models import Artifact

    found = Artifact.objects.filter(revision_id=revision_id, kind="DI").first()
    return found.uri if found else ""


# ================================================================ driving the instances

def remote(instance: Instance, call: str, *functions, timeout: float, env: dict[str, str] | None = None):
    """Run `call` in the instance's `manage.py shell` after the functions' source; its value, as JSON."""
    code = "\n\n".join(textwrap.dedent(inspect.getsource(f)) for f in functions)
    code += f"\n\nimport json\nresult = {call}\nprint('RESULT=' + json.dumps(result, default=str))\n"
    command = [str(harness.PYTHON), "manage.py", "shell", "--no-imports", "-c", code]
    process = subprocess.Popen(command, cwd=harness.REPO, env={**instance.portal.env, **(env or {})},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{call} at {instance.name} did not finish in {timeout:.0f} s") from exc
    finally:
        harness.stop_process(process, grace=5)  # and whatever it started, whatever happened
    line = next((x for x in reversed(out.splitlines()) if x.startswith("RESULT=")), None)
    if process.returncode != 0 or line is None:
        raise RuntimeError(f"{call} at {instance.name} exited with {process.returncode}:\n{out[-3000:]}{err[-3000:]}")
    return json.loads(line.removeprefix("RESULT="))


def wire(a: Instance, b: Instance) -> None:
    """Each registers the other as an active peer (by its CN, with the cluster's CA)."""
    a.add_peer(b)
    b.add_peer(a)


def push(instance: Instance, auth: str, name: str, bundle: Path, timeout: float) -> dict:
    """Onboard a bundle under `name` through the Acumos API (every step, its image built) until ready."""
    parts = {part: (bundle / file).read_bytes() for part, file in PARTS}
    metadata = json.loads(parts["metadata"])
    metadata["name"] = name
    parts["metadata"] = json.dumps(metadata).encode()
    with harness.http_client(timeout=120) as client:
        answer = client.post(f"{instance.url}/onboarding-app/v2/models", headers={"Authorization": auth},
                             files={part: (part, data) for part, data in parts.items()})
        if answer.status_code != 201:
            raise RuntimeError(f"the upload of {name} was refused: {answer.status_code} {answer.text}")
        task = answer.json()["taskId"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = client.get(f"{instance.url}/api/v1/onboarding/jobs/{task}/", headers={"Authorization": auth}).json()
            if job["status"] == "succeeded":
                return answer.json()["result"]
            if job["status"] == "failed":
                raise RuntimeError(f"the onboarding of {name} failed: {job}\n{instance.logs()}")
            time.sleep(0.5)
    raise RuntimeError(f"the onboarding of {name} did not finish in {timeout:.0f} s")


# ================================================================ the models

def make_bundles(out: Path, count: int) -> Path:
    """`count` small distinct bundles of the iris example under out/models: each its own name in
    metadata.json and a model file of its own bytes (the same fitted forest, pickled with a distinct
    attribute, so every copy still loads and answers its sample); model.proto is shared."""
    import joblib

    base = builders.iris_bundle(out / "base")
    metadata = json.loads((base / "metadata.json").read_text())
    with zipfile.ZipFile(base / "modelpackage.zip") as archive:
        runner_json = archive.read("runner.json")
        estimator = joblib.load(io.BytesIO(archive.read("model.joblib")))
    models = out / "models"
    for index in range(count):
        folder = models / f"{index:05d}"
        folder.mkdir(parents=True)
        (folder / "metadata.json").write_text(json.dumps({**metadata, "name": f"BenchModel{index:05d}"}, indent=2))
        shutil.copyfile(base / "model.proto", folder / "model.proto")
        estimator.bench_copy = index
        pickled = io.BytesIO()
        joblib.dump(estimator, pickled)
        with zipfile.ZipFile(folder / "modelpackage.zip", "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("runner.json", runner_json)
            archive.writestr("model.joblib", pickled.getvalue())
    return models


# ================================================================ the figures

def seconds_text(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def size_text(value: int) -> str:
    return f"{value / (1 << 20):.1f} MiB" if value >= 1 << 20 else f"{value / 1024:.1f} KiB"


PHASES = (("feed", "read the change feed"), ("manifest_get", "GET revision (signed manifest)"),
          ("manifest_verify", "verify the manifest's signature"),
          ("files", "artifact files: list, download, sha256, store"),
          ("files_list", "  of which GET .../artifacts (the listing)"),
          ("files_download", "  of which downloads (GET, write, sha256 check)"),
          ("files_store", "  of which storage.store_file (sha256, copy, Blob)"),
          ("validation", "local validation"), ("smoke", "sandboxed smoke test"), ("image", "image copy"),
          ("create", "make, mark ready, publish"),
          ("create_import", "  of which revision_import (solution, revision, artifacts)"),
          ("create_ready", "  of which revision_mark_ready (reindex, notify)"),
          ("create_publish", "  of which publish (audience, reindex)"))
SUB_PHASES = ("files_list", "files_download", "files_store", "create_import", "create_ready", "create_publish")


def phase_rows(run: dict) -> list[list[str]]:
    """Each phase's total and per item; what the items spent outside them, and the run outside its items."""
    phases = dict(run["phases"])
    phases["validation"] = phases.pop("validation_and_smoke", 0.0) - phases.get("smoke", 0.0)
    items = len(run["item_seconds"]) or 1
    rows = [[label, seconds_text(phases[key]), seconds_text(phases[key] / items),
             f"{100 * phases[key] / run['wall']:.0f}%"] for key, label in PHASES if phases.get(key)]
    per_item = sum(run["item_seconds"]) - sum(v for k, v in phases.items() if k != "feed" and k not in SUB_PHASES)
    rows.append(["the rest of each item (bookkeeping)", seconds_text(per_item), seconds_text(per_item / items),
                 f"{100 * per_item / run['wall']:.0f}%"])
    outside = run["wall"] - sum(run["item_seconds"]) - phases.get("feed", 0.0)
    rows.append(["the run outside its items", seconds_text(outside), "", f"{100 * outside / run['wall']:.0f}%"])
    return rows


def print_run(label: str, how: str, run: dict, expected: int) -> None:
    items = run["item_seconds"]
    print(f"\n== {label} ==\n  how: {how}")
    print(f"  status {run['status']}, summary {run['summary']}; wall {seconds_text(run['wall'])} "
          f"(SyncRun started -> finished {seconds_text(run['job_seconds'])}); {size_text(run['fetched'])} fetched, "
          f"{size_text(run['reused'])} already held; {run['notifications']} notifications made")
    if items:
        print(f"  per item: mean {seconds_text(statistics.mean(items))}, median "
              f"{seconds_text(statistics.median(items))}, max {seconds_text(max(items))}; "
              f"{len(items) / run['wall']:.1f} models/s")
    print(textwrap.indent(harness.table(["phase", "total", "per model", "of the run"], phase_rows(run)), "  "))
    if run["summary"] != {"imported": expected}:
        raise RuntimeError(f"{label}: expected {expected} imported, got {run['summary']} {run['error']}; "
                           f"first failures: {run['failures']}")


def verdict(holds: bool | None) -> str:
    return "-" if holds is None else ("yes" if holds else "NO")


# ================================================================ the benchmark

def run(args) -> int:
    harness.go_offline()
    for tool, hint in (("nginx", "make nginx"), ("docker-registry", "make images"), ("bwrap", "make sandbox")):
        if not (shutil.which(tool) or shutil.which(tool, path="/usr/sbin")):
            print(f"{tool} is missing: run `{hint}`", file=sys.stderr)
            return 1
    if not images_env().get("ACUMOS_TEST_IMAGE_BASE"):
        harness.ensure_images()
    results = {"machine": harness.machine(), "models": args.models, "smoke_models": args.smoke_models}
    with contextlib.ExitStack() as stack:
        scratch = harness.scratch_dir(stack, "bench-federation-")
        print(f"== setting up: {args.models} bundles, three portals ==", flush=True)
        began = time.monotonic()
        models = make_bundles(scratch, args.models)
        print(f"  {args.models} bundles in {seconds_text(time.monotonic() - began)}", flush=True)
        results["background_cpu_pct"] = harness.check_quiet("the portals start")
        cluster = Cluster(scratch / "cluster")
        stack.callback(close_cluster, cluster)
        alpha, beta, gamma = cluster.make_instances(3)
        stack.callback(keep_logs, (alpha, beta, gamma))
        wire(alpha, beta)
        wire(alpha, gamma)
        print(f"  alpha, beta, gamma started ({', '.join(f'{i.started_seconds:.0f} s' for i in (alpha, beta, gamma))})")
        measure(args, scratch, models, (alpha, beta, gamma), results)
    path = harness.write_results(BENCH, results)
    print(f"\nresults: {path}")
    return 0


def close_cluster(cluster: Cluster) -> None:
    with harness.uninterrupted():
        cluster.close()


def keep_logs(instances) -> None:
    """Each portal's log to bench/out/logs (the cluster removes it), and its warnings and errors printed."""
    for instance in instances:
        if instance.portal is None:
            continue
        kept = harness.keep_log(instance.portal.log_path, f"{BENCH}-{instance.name}")
        notable = harness.notable_log_lines(kept)
        if notable:
            print(f"\n  {instance.name}'s log ({kept}):\n" + "\n".join(f"    {line}" for line in notable))


def measure(args, scratch: Path, models: Path, instances: tuple[Instance, Instance, Instance], results: dict):
    alpha, beta, gamma = instances
    timeout = args.timeout
    sampled = args.smoke_models < args.models
    catalogs = [[CATALOG, args.models]] + ([[SAMPLE_CATALOG, args.smoke_models]] if sampled else [])
    seeded = remote(alpha, f"seed_models({str(models)!r}, {catalogs!r})", seed_models, timeout=timeout)
    print(f"  seeded {args.models} models at alpha in {seconds_text(seeded['seconds'])} (setup, not measured)",
          flush=True)
    catalog = seeded["catalogs"][CATALOG]
    beta_catalog = seeded["catalogs"][SAMPLE_CATALOG if sampled else CATALOG]
    at_gamma = remote(gamma, f"subscribe({alpha.subject!r}, {catalog!r})", subscribe, timeout=timeout)
    at_beta = remote(beta, f"subscribe({alpha.subject!r}, {beta_catalog!r})", subscribe, timeout=timeout)

    # ---- a) the first sync, without and with smoke tests
    harness.check_quiet("the first sync")
    no_smoke = remote(gamma, f"timed_run({at_gamma!r})", timed_run, timeout=timeout,
                      env={"ACUMOS_SMOKE_TEST": "false"})
    print_run(f"a) first sync of {args.models} models at gamma, smoke tests off",
              "services.execute_run(<a new SyncRun>) in gamma's `manage.py shell`, ACUMOS_SMOKE_TEST=false, "
              "timed in that process", no_smoke, args.models)
    smoke = remote(beta, f"timed_run({at_beta!r})", timed_run, timeout=timeout)
    print_run(f"a) first sync of {args.smoke_models} models at beta, smoke tests on (as shipped)",
              "services.execute_run(<a new SyncRun>) in beta's `manage.py shell`, timed in that process",
              smoke, args.smoke_models)
    smoke_each = smoke["phases"].get("smoke", 0.0) / args.smoke_models
    if sampled:
        first_sync = no_smoke["wall"] + args.models * smoke_each
        print(f"  EXTRAPOLATED for {args.models} with smoke tests: gamma's {seconds_text(no_smoke['wall'])} + "
              f"{args.models} x {seconds_text(smoke_each)} (beta's smoke test per model) = {seconds_text(first_sync)}")
    else:
        first_sync = smoke["wall"]
    results["first_sync"] = {"no_smoke": no_smoke, "smoke": smoke, "seconds": first_sync, "extrapolated": sampled,
                             "smoke_per_model": smoke_each}

    # ---- b) nothing new
    harness.check_quiet("the runs with nothing new")
    idle = remote(gamma, f"nothing_new_runs({at_gamma!r}, {args.rounds})", nothing_new_runs, timeout=timeout)
    if any(r["status"] != "succeeded" or r["summary"] or r["fetched"] for r in idle):
        raise RuntimeError(f"a run with nothing new did something: {idle}")
    idle_median = statistics.median(r["job_seconds"] for r in idle)
    print(f"\n== b) runs with nothing new at gamma ({args.models} models imported) ==\n"
          f"  how: {args.rounds} x services.execute_run(<a new SyncRun>) in one `manage.py shell` at gamma; "
          "SyncRun started -> finished\n"
          f"  each: {', '.join(seconds_text(r['job_seconds']) for r in idle)}; median {seconds_text(idle_median)}")
    results["nothing_new"] = {"runs": idle, "median": idle_median}

    # ---- c) the anchor: Acumos's walk against our cursor
    polls = remote(gamma, f"compare_polls({at_gamma!r}, {args.walk_rounds}, {args.rounds})", compare_polls,
                   acumos_poller_walk, changes_read, timeout=timeout)
    walk, read = (statistics.median(polls["seconds"][k]) for k in ("walk", "read"))
    seen = polls["seen"]
    print(f"\n== c) a poll with nothing new: Acumos's walk against our change feed (at gamma, same process) ==\n"
          f"  how: PeerClient(alpha); walk: GET solutions?catalogId, solutions/<id>/revisions, .../revisions/<id>/"
          f"artifacts, each artifact compared with the one held here; ours: GET changes?catalogId&since=<cursor>\n"
          f"  walk: {seen['walk']['requests']} requests, {seen['walk']['solutions']} solutions, "
          f"{seen['walk']['revisions']} revisions, {seen['walk']['artifacts']} artifacts, "
          f"{seen['walk']['differ']} differ; each {', '.join(seconds_text(s) for s in polls['seconds']['walk'])}\n"
          f"  ours: {seen['read']['requests']} request, {seen['read']['changes']} changes; each "
          f"{', '.join(seconds_text(s) for s in polls['seconds']['read'])}\n"
          f"  median walk {seconds_text(walk)} vs read {seconds_text(read)}: the walk takes {walk / read:.0f}x as long")
    results["polls"] = {**polls, "walk_median": walk, "read_median": read, "ratio": walk / read}

    # ---- d) an image whose base the subscriber holds
    image = None if args.no_image else measure_image(scratch, alpha, beta, timeout)
    results["image"] = image
    summary(args, results)


def measure_image(scratch: Path, alpha: Instance, beta: Instance, timeout: float) -> dict:
    print("\n== d) images: one model onboarded at alpha (its image built), imported by beta ==", flush=True)
    auth = alpha.portal.user_with_token("bench-imager")
    made = push(alpha, auth, "BenchImageModel", builders.iris_bundle(scratch / "image-model"), timeout)
    catalog = remote(alpha, f"make_catalog({IMAGE_CATALOG!r})", make_catalog, timeout=timeout)
    remote(alpha, f"publish({made['revisionId']!r}, {catalog!r})", publish, timeout=timeout)
    subscription = remote(beta, f"subscribe({alpha.subject!r}, {catalog!r})", subscribe, timeout=timeout)
    done = remote(beta, f"timed_run({subscription!r})", timed_run, timeout=timeout)
    print_run("d) the image model's import at beta", "services.execute_run in beta's `manage.py shell`", done, 1)
    origin_uri = remote(alpha, f"image_of({made['revisionId']!r})", image_of, timeout=timeout)
    sizes = remote(alpha, f"image_sizes({origin_uri!r})", image_sizes, timeout=timeout)
    report = done["image_reports"][0] if done["image_reports"] else {}
    print(f"  image copy: {done['messages'][0]}\n"
          f"  blobs: {report.get('blobs_copied')} copied, {report.get('blobs_mounted')} mounted, "
          f"{report.get('blobs_present')} present; {size_text(report.get('bytes_copied', 0))} moved, "
          f"{size_text(report.get('bytes_skipped', 0))} skipped\n"
          f"  the image at alpha: {image_text(sizes['image'])}\n  the runner base: {image_text(sizes['base'])}")
    return {"run": done, "report": report, "sizes": sizes}


def image_text(size: dict) -> str:
    layers = ", ".join(size_text(layer) for layer in size["layers"])
    return f"{size_text(size['layers_total'])} in {len(size['layers'])} layers ({layers}; compressed) and its config"


def summary(args, results: dict) -> None:
    first_sync, smoke_each = results["first_sync"]["seconds"], results["first_sync"]["smoke_per_model"]
    no_smoke, idle_median = results["first_sync"]["no_smoke"]["wall"], results["nothing_new"]["median"]
    walk, read, image = results["polls"]["walk_median"], results["polls"]["read_median"], results["image"]
    scale = TARGET_MODELS / args.models
    label = f"{args.models}" + (" (extrapolated from a smoke sample)" if results["first_sync"]["extrapolated"] else "")
    rows = [
        [f"first sync of {label}, smoke tests on", seconds_text(first_sync),
         f"< {FIRST_SYNC_TARGET_S:.0f} s for {TARGET_MODELS:,}", verdict(first_sync * scale < FIRST_SYNC_TARGET_S)],
        *([[f"  the same scaled to {TARGET_MODELS:,}", seconds_text(first_sync * scale), "", ""]]
          if scale != 1 else []),
        ["  smoke test per model", seconds_text(smoke_each), "", ""],
        [f"first sync of {args.models}, smoke tests off", seconds_text(no_smoke),
         f"< {FIRST_SYNC_TARGET_S:.0f} s for {TARGET_MODELS:,}", verdict(no_smoke * scale < FIRST_SYNC_TARGET_S)],
        [f"run with nothing new (median of {args.rounds})", seconds_text(idle_median),
         f"< {NOTHING_NEW_TARGET_S:.0f} s", verdict(idle_median < NOTHING_NEW_TARGET_S)],
        ["poll, nothing new: our change-feed read", seconds_text(read), "", ""],
        ["poll, nothing new: Acumos's walk (anchor)", seconds_text(walk), "", ""],
        ["  walk / read", f"{walk / read:.0f}x", "", ""],
    ]
    if image:
        report, base = image["report"], image["sizes"]["base"]["layers_total"]
        rows += [["image copy: bytes moved", size_text(report.get("bytes_copied", 0)), "", ""],
                 ["image copy: bytes skipped (held)", size_text(report.get("bytes_skipped", 0)),
                  f">= the base's layers ({size_text(base)})", verdict(report.get("bytes_skipped", 0) >= base)]]
    print("\n== summary ==\n" + harness.table(["figure", "value", "target", "holds?"], rows))
    results["summary"] = rows


if __name__ == "__main__":
    sys.exit(harness.run_main(run, parse_args(sys.argv[1:])))
