"""Changing what a deployment serves: a hot swap in the running container, against a redeploy in a new one.

    .venv/bin/python bench/reuse_vs_redeploy.py                  (or: make bench-deploy)
    .venv/bin/python bench/reuse_vs_redeploy.py --repetitions 9

Needs the private Docker engine, the registry on 127.0.0.1:5000 and the runner base image: the bench runs
`bash scripts/ensure-images.sh` (cached; it writes build/images.env) and reads what it wrote.

1. Two models with the same interface (the iris example's `classify`): A, the example's forest (10 trees, seed 0),
   and B, a retrained one (25 trees, seed 1), onboarded as version 2.0.0 of the same solution. The probe is the
   first iris flower on which A and B disagree, so an answer shows which model gave it.
2. The portal runs in this process: SQLite and files in a temporary directory, the real onboarding pipeline on the
   embedded thread pool, the daemonless builder pushing both revisions' images to the registry (extra packages
   from the shared wheelhouse, ACUMOS_TEST_WHEELHOUSE; wheelhouse-only when it already holds wheels).
3. One `docker` target on the private engine: host networking, advertise 127.0.0.1, a port range starting at a port
   the kernel just gave out. Deployment D is deployed on A and stays up for the whole run. Deployment operations
   run inline: `services.run_operation` is called here (the after-commit hand-off to the thread pool is held back),
   so each figure is the operation itself, with no queueing.
4. Warm-up, not measured: one swap A -> B -> A on D and one redeploy of B (its first one pulls B's image from the
   registry: that cold figure is printed apart). Every measured redeploy therefore finds B's image in the engine,
   the case most favourable to redeploying.
5. Each repetition measures both, in alternating order (swap first on even repetitions, redeploy first on odd):
   a. hot swap: from calling `services.swap(D, B)` until the probe sent to D answers with B's species
      (run_operation: the bundle written from storage, PUT /model, the runner checks B with its sample and
      activates it); then D is swapped back to A, not measured, and checked;
   b. redeploy: from calling `services.deploy(B)` until the probe sent to the new deployment answers with B's
      species (run_operation: the pull by digest, which finds the image, a new container, the runner's start,
      /v2/health/ready); then it is stopped and destroyed, not measured.
   The probe is sent in a loop (10 ms apart) until the right answer comes, at most --timeout seconds.
6. Printed: each repetition, then median and min of both and the ratio redeploy / swap (of medians and of mins), and
   the operations' own parts (the runner's swap_ms; the deploy operation's duration). Saved to
   bench/out/reuse_vs_redeploy.json.

Everything it makes is removed at the end, on success, failure or Ctrl-C: every container of this run's deployments
(found by the bench's label), the registry manifests it pushed, the images the engine pulled, the temporary
directory. Traffic is to 127.0.0.1 only (and to the package index only if the wheelhouse is still empty).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import harness
from harness import FEATURES
from swap_under_load import MODEL_B, find_probe

BENCH = "reuse_vs_redeploy"
BENCH_LABEL = "acumos-bench"
PORT_SPAN = 200
SOLUTION = "IrisClassifier"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repetitions", type=int, default=5, help="measured swaps and redeploys, each")
    parser.add_argument("--timeout", type=float, default=300, help="seconds for one onboarding, deploy or swap")
    args = parser.parse_args(argv)
    if args.repetitions < 1:
        parser.error("--repetitions must be at least 1")
    return args


# ---------------------------------------------------------------- the two models

@dataclass
class Model:
    label: str
    bundle: Path
    probe_species: int
    revision: object = None


def make_models(scratch: Path) -> tuple[Model, Model, dict]:
    """A (the example) and B (retrained), packed as the example packs, and the flower they disagree on."""
    example = harness.load_example()
    model_a, model_b = example.train(10, 0), example.train(MODEL_B["n_estimators"], MODEL_B["seed"])
    probe = find_probe(model_a, model_b)
    models = []
    for label, estimator, version in (("A", model_a, "1.0.0"), ("B", model_b, "2.0.0")):
        bundle = harness.pack_estimator(example, estimator, scratch / f"bundle-{label}")
        _set_version(bundle, version)
        models.append(Model(label, bundle, int(estimator.predict([probe])[0])))
    print(f"  probe {dict(zip(FEATURES, probe, strict=True))}: A answers {models[0].probe_species}, "
          f"B answers {models[1].probe_species}", flush=True)
    return models[0], models[1], dict(zip(FEATURES, probe, strict=True))


def _set_version(bundle: Path, version: str) -> None:
    metadata = json.loads((bundle / "metadata.json").read_text())
    metadata["name"], metadata["modelVersion"] = SOLUTION, version
    (bundle / "metadata.json").write_text(json.dumps(metadata, indent=2))


# ---------------------------------------------------------------- the portal, in this process

def start_portal(scratch: Path, env: dict[str, str], repository: str):
    """Settings come from the environment, read once by django.setup(); returns the user."""
    for name in ("CELERY_BROKER_URL", "ACUMOS_STORAGE", "ACUMOS_IMAGE_REGISTRY", "ACUMOS_REGISTRY_USERNAME",
                 "ACUMOS_REGISTRY_PASSWORD", "ACUMOS_SMOKE_TEST"):
        os.environ.pop(name, None)
    wheelhouse = Path(env["ACUMOS_TEST_WHEELHOUSE"])
    has_wheels = wheelhouse.is_dir() and any(wheelhouse.glob("*.whl"))
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "acumos_portal.settings",
        "DJANGO_SECRET_KEY": "bench-" + uuid.uuid4().hex,
        "ACUMOS_DATA_DIR": str(scratch / "data"),
        "DATABASE_URL": f"sqlite:///{scratch / 'db.sqlite3'}",
        "ACUMOS_IMAGE_BUILDER": "daemonless",
        "ACUMOS_IMAGE_BASE": env["ACUMOS_TEST_IMAGE_BASE"],
        "ACUMOS_IMAGE_REPOSITORY": repository,
        "ACUMOS_WHEELHOUSE": str(wheelhouse),
        "ACUMOS_WHEELHOUSE_ONLY": "true" if has_wheels else "false",
        "ACUMOS_IMAGE_CACHE": str(scratch / "image-cache"),
        "ACUMOS_DEPLOYMENT_GRACE_SECONDS": "0",  # a stopped redeploy is destroyed at once
        "DOCKER_HOST": env["ACUMOS_TEST_DOCKER_HOST"],
    })
    print(f"  wheelhouse {wheelhouse}: {'wheelhouse only' if has_wheels else 'empty: pip may ask the index'}")
    import django

    django.setup()
    for name in ("celery", "httpx"):  # a line per task and per request would bury the figures
        logging.getLogger(name).setLevel(logging.WARNING)
    from django.core.management import call_command

    from acumos_portal.accounts.models import User

    call_command("migrate", interactive=False, verbosity=0)
    return User.objects.create_user("bench", password="bench-password-" + uuid.uuid4().hex[:8])


def onboard(user, model: Model, timeout: float):
    """The real pipeline, image build included; returns the ready revision."""
    from marketplace.choices import ArtifactKind
    from marketplace.models import Revision
    from onboarding.choices import JobStatus
    from onboarding.services import onboarding_start

    parts = {"model": model.bundle / "modelpackage.zip", "metadata": model.bundle / "metadata.json",
             "schema": model.bundle / "model.proto"}
    job = onboarding_start(user=user, parts=parts)
    deadline = time.monotonic() + timeout
    while job.status not in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        if time.monotonic() > deadline:
            raise RuntimeError(f"onboarding {model.label} did not finish in {timeout:.0f} s")
        time.sleep(0.2)
        job.refresh_from_db()
    if job.status != JobStatus.SUCCEEDED:
        raise RuntimeError(f"onboarding {model.label} failed: {job.error}")
    revision = Revision.objects.get(pk=job.revision_uuid)
    image = revision.artifacts.get(kind=ArtifactKind.IMAGE).uri
    print(f"  {model.label}: revision {revision.version}, image {image}", flush=True)
    return revision


@contextlib.contextmanager
def operations_inline():
    """Deployment operations are run here, by the bench, not by the thread pool after commit."""
    from acumos_portal import jobs

    original = jobs.enqueue
    jobs.enqueue = lambda task, *args: None
    try:
        yield
    finally:
        jobs.enqueue = original


def run_operation(operation):
    from acumos_portal.choices import JobStatus
    from deployment import services

    services.run_operation(str(operation.pk))
    operation.refresh_from_db()
    if operation.status != JobStatus.SUCCEEDED:
        raise RuntimeError(f"{operation.kind} failed: {operation.error}")
    return operation


# ---------------------------------------------------------------- measuring

@dataclass
class Bench:
    args: argparse.Namespace
    client: object  # docker.DockerClient
    registry_host: str
    repository: str
    probe: dict = field(default_factory=dict)
    user: object = None
    target: object = None
    http: object = None

    def answered(self, url: str, species: int) -> float:
        """Send the probe until `species` answers; returns the monotonic time it did."""
        deadline = time.monotonic() + self.args.timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                response = self.http.post(f"{url}{harness.PREDICT_PATH}", json=self.probe)
                if response.status_code == 200 and response.json().get("species") == species:
                    return time.monotonic()
            time.sleep(0.01)
        raise RuntimeError(f"{url} did not answer species {species} within {self.args.timeout:.0f} s")

    def swap(self, deployment, model: Model) -> dict:
        from deployment import services

        started = time.monotonic()
        operation = run_operation(services.swap(deployment, model.revision, self.user))
        deployment.refresh_from_db()
        seconds = self.answered(deployment.endpoint_url, model.probe_species) - started
        return {"seconds": seconds, "operation_s": operation.duration_seconds, "runner_swap_ms": operation.swap_ms,
                "generation": operation.generation}

    def redeploy(self, model: Model) -> dict:
        from deployment import services

        started = time.monotonic()
        deployment = services.deploy(revision=model.revision, target=self.target, user=self.user)
        operation = run_operation(deployment.operations.get())
        deployment.refresh_from_db()
        seconds = self.answered(deployment.endpoint_url, model.probe_species) - started
        run_operation(services.stop(deployment, self.user))
        deployment.refresh_from_db()
        run_operation(services.destroy(deployment, self.user))
        return {"seconds": seconds, "operation_s": operation.duration_seconds,
                "container": deployment.handle.get("name") or str(deployment.pk)}


def make_target(docker_host: str):
    from deployment.choices import TargetKind
    from deployment.models import Target

    first = min(harness.free_port(), 65535 - PORT_SPAN)
    options = {"docker_host": docker_host, "network": "host", "advertise_host": harness.HOST,
               "port_range": f"{first}-{first + PORT_SPAN}", "labels": {BENCH_LABEL: BENCH}}
    return Target.objects.create(name="private engine", kind=TargetKind.DOCKER, options=options)


def measure(bench: Bench, a: Model, b: Model) -> dict:
    from deployment import services

    deployment = services.deploy(revision=a.revision, target=bench.target, user=bench.user)
    run_operation(deployment.operations.get())
    deployment.refresh_from_db()
    bench.answered(deployment.endpoint_url, a.probe_species)
    print(f"  D serves A at {deployment.endpoint_url} ({deployment.handle['name']})", flush=True)
    bench.swap(deployment, b)
    bench.swap(deployment, a)
    cold = bench.redeploy(b)
    print(f"  warm-up: cold redeploy (pulls B's image) {cold['seconds']:.2f} s", flush=True)
    swaps, redeploys = [], []
    for number in range(bench.args.repetitions):
        order = ("swap", "redeploy") if number % 2 == 0 else ("redeploy", "swap")
        for kind in order:
            if kind == "swap":
                swaps.append(bench.swap(deployment, b))
                bench.swap(deployment, a)  # back, not measured
            else:
                redeploys.append(bench.redeploy(b))
        print(f"  #{number + 1} ({' then '.join(order)}): swap {swaps[-1]['seconds']:.3f} s, "
              f"redeploy {redeploys[-1]['seconds']:.3f} s", flush=True)
    run_operation(services.stop(deployment, bench.user))
    deployment.refresh_from_db()
    run_operation(services.destroy(deployment, bench.user))
    return {"deployment": str(deployment.pk), "cold_redeploy": cold, "swaps": swaps, "redeploys": redeploys}


def summarise(measured: dict) -> dict:
    swap = [run["seconds"] for run in measured["swaps"]]
    redeploy = [run["seconds"] for run in measured["redeploys"]]
    summary = {"swap_median_s": statistics.median(swap), "swap_min_s": min(swap),
               "redeploy_median_s": statistics.median(redeploy), "redeploy_min_s": min(redeploy)}
    summary["ratio_of_medians"] = summary["redeploy_median_s"] / summary["swap_median_s"]
    summary["ratio_of_mins"] = summary["redeploy_min_s"] / summary["swap_min_s"]
    summary["runner_swap_ms_median"] = statistics.median(run["runner_swap_ms"] for run in measured["swaps"])
    summary["deploy_operation_median_s"] = statistics.median(run["operation_s"] for run in measured["redeploys"])
    return summary


def report(measured: dict, summary: dict) -> None:
    rows = [[f"{i + 1}", f"{s['seconds']:.3f}", f"{s['runner_swap_ms']:.0f}", f"{r['seconds']:.3f}",
             f"{r['operation_s']:.3f}"] for i, (s, r) in enumerate(zip(measured["swaps"], measured["redeploys"],
                                                                        strict=True))]
    print("\n== until the new model answers (seconds) ==")
    print(harness.table(["#", "hot swap", "runner swap ms", "redeploy", "deploy operation"], rows))
    print(harness.table(["", "hot swap", "redeploy", "redeploy / swap"], [
        ["median", f"{summary['swap_median_s']:.3f}", f"{summary['redeploy_median_s']:.3f}",
         f"{summary['ratio_of_medians']:.1f}x"],
        ["min", f"{summary['swap_min_s']:.3f}", f"{summary['redeploy_min_s']:.3f}",
         f"{summary['ratio_of_mins']:.1f}x"]]))
    print(f"cold redeploy (image pulled from the registry first): {measured['cold_redeploy']['seconds']:.2f} s")


# ---------------------------------------------------------------- running and cleaning up

def run(args: argparse.Namespace) -> int:
    wall = time.monotonic()
    with contextlib.ExitStack() as stack:
        scratch, env, client = harness.engine_session(stack, "bench-reuse-redeploy-", args.timeout)
        bench = Bench(args, client, env["ACUMOS_TEST_REGISTRY"], f"bench-deploy/{uuid.uuid4().hex[:10]}")
        stack.callback(cleanup, bench)
        a, b, bench.probe = make_models(scratch)
        bench.user = start_portal(scratch, env, bench.repository)
        print("\n== onboarding A and B (images built and pushed) ==", flush=True)
        for model in (a, b):
            model.revision = onboard(bench.user, model, args.timeout)
        bench.target = make_target(env["ACUMOS_TEST_DOCKER_HOST"])
        bench.http = stack.enter_context(harness.http_client(timeout=30))
        print(f"\n== {args.repetitions} hot swaps and {args.repetitions} redeploys, alternating ==", flush=True)
        harness.check_quiet("the measurements")
        with operations_inline():
            measured = measure(bench, a, b)
        summary = summarise(measured)
        report(measured, summary)
        path = harness.write_results(BENCH, {
            "machine": harness.machine(), "repetitions": args.repetitions, "probe": bench.probe,
            "models": {m.label: {"revision": str(m.revision.pk), "version": m.revision.version,
                                 "probe_species": m.probe_species} for m in (a, b)},
            "target": bench.target.options, **measured, "summary": summary})
        print(f"wrote {path.relative_to(harness.REPO)}")
    print(f"cleaned up; total wall time {time.monotonic() - wall:.0f} s")
    return 0


def cleanup(bench: Bench) -> None:
    """Containers (by the bench's label), registry manifests, the images the engine pulled."""
    import docker

    with harness.uninterrupted():
        removed = 0
        for container in bench.client.containers.list(all=True, filters={"label": f"{BENCH_LABEL}={BENCH}"}):
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True, v=True)
                removed += 1
        manifests = _delete_pushed(bench)
        images = 0
        for image in _pulled(bench):
            with contextlib.suppress(docker.errors.APIError):
                bench.client.images.remove(image.id, force=True)
                images += 1
        print(f"\ncleanup: {removed} containers removed, {manifests} registry manifests deleted, "
              f"{images} local images removed", flush=True)


def _pulled(bench: Bench) -> list:
    """The engine's copies of this run's images: pulled by digest, they have no tag to find them by."""
    prefix = f"{bench.registry_host}/{bench.repository}/"
    return [image for image in bench.client.images.list()
            if any(digest.startswith(prefix) for digest in image.attrs.get("RepoDigests") or [])]


def _delete_pushed(bench: Bench) -> int:
    from images.oci import Registry

    deleted = 0
    with Registry(bench.registry_host) as registry:
        for reference in _pushed(bench):
            try:
                registry.delete_image(reference.repository, reference.digest)
                deleted += 1
            except Exception as exc:  # keep cleaning: report what is left
                print(f"  could not delete {reference} from the registry: {exc}", file=sys.stderr)
    return deleted


def _pushed(bench: Bench) -> list:
    """The images the portal pushed, from its database (none when the portal never started)."""
    if bench.user is None:
        return []
    from images.models import ImageBuild
    from images.oci import ImageRef

    try:
        return [ImageRef.parse(build.reference) for build in ImageBuild.objects.exclude(digest="")]
    except Exception as exc:  # the database may be what failed
        print(f"  could not list the pushed images: {exc}", file=sys.stderr)
        return []


if __name__ == "__main__":
    sys.exit(harness.run_main(run, parse_args(sys.argv[1:])))
