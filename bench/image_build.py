"""Model images: time from "store artifacts" to image pushed, against a classic Dockerfile build, in one run.

    .venv/bin/python bench/image_build.py           (or: make bench-images)
    .venv/bin/python bench/image_build.py --quick   (one classic build instead of two)

Needs the private Docker engine, the registry on 127.0.0.1:5000 and the runner base image: the bench runs
`bash scripts/ensure-images.sh` (cached by input hash; it writes build/images.env) and reads what it wrote.

1. The model: a RandomForestRegressor on synthetic data, its tree count calibrated so that modelpackage.zip is
   10 MB +- 1 (MB = 2^20 bytes), packed with `runner_image.pack.pack_bundle` (flavour sklearn, with a sample).
   Its metadata asks for scikit-learn and joblib at this venv's versions: the extra packages every image needs.
2. Ours: the real onboarding pipeline, in this process: SQLite and files in a temporary directory, jobs on the
   embedded thread pool (no CELERY_BROKER_URL), `onboarding_start` with the three parts, the job polled until
   done. The figure is StepResult(store_artifacts).started -> StepResult(build_image).finished (storing, the
   revision, descriptors, the smoke test, the image built and pushed); the build_image step is also given alone.
   Every onboarding is a new version with package bytes of its own (a nonce file in the zip), so nothing is
   reused by accident. One unmeasured warm-up onboarding first fills the wheelhouse (kept across runs, at
   ACUMOS_TEST_WHEELHOUSE, so wheels are fetched once per machine). Then, for each builder (docker, daemonless):
   a. new requirements: a fresh ACUMOS_IMAGE_CACHE, no acumos-deps image in the engine for this requirement set,
      a model (so a registry repository) never seen before; the wheelhouse holds the wheels and the site is
      wheelhouse-only (ACUMOS_WHEELHOUSE_ONLY), so pip asks no index (--online-deps: pip checks the index too);
   b. known requirements, the usual case (a new revision of a model whose requirements were built before):
      three more versions of that model (--known-runs), the median.
3. Classic, in the same run: a Dockerfile `FROM acumos/python-offline:<hash>` (the fresh Python 3.11 without pip
   that the runner base is built from), the pip wheel, the runner's source, `RUN python3 pip.whl/pip install
   --no-cache-dir` of the runner and scikit-learn/joblib, COPY of the bundle, and the runner base's ENV, user
   10001, HEALTHCHECK, ENTRYPOINT and CMD. docker build (nocache, host network) + push to 127.0.0.1:5000 is timed;
   two runs, the median (one with --quick). pip inside uses the package index when a host-network container can
   reach it (with the host's CA bundle copied into the build when the index needs it), otherwise a wheelhouse
   that this bench serves from the host on 127.0.0.1 (the output says which).
4. Both kinds of image must answer: ours (each builder) and the classic one run with host networking, get the
   sample on /model/methods/predict, and must give the in-process prediction.
5. Printed: the table (scenario, builder, seconds, classic / ours), the targets, the image sizes (compressed in
   the registry: the manifest's layers; uncompressed: docker image inspect Size; ours split into base / extra
   packages / bundle). Saved to bench/out/image_build.json.
Target (the issue): known requirements under 10 s and classic / ours >= 5, for each builder.

Everything it makes is removed at the end: temporary directories, containers, local images and the registry
manifests it pushed (the registry keeps the blobs until its garbage collection). The engine's acumos-deps image for
this requirement set is a cache that the Docker builder makes when it is missing: it is removed before the
new-requirements run even if it was there before the bench (the output says so), and at the end.
Traffic is to 127.0.0.1 only, except the classic build's pip (the index) and, on a machine whose wheelhouse is
still empty, the warm-up's pip.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import logging
import math
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tarfile
import time
import tomllib
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import harness

BENCH = "image_build"
TARGET_SECONDS = 10.0
TARGET_RATIO = 5.0
MB = 1 << 20
PACKAGE_MB = 10.0
PACKAGE_TOLERANCE_MB = 1.0
FEATURES = tuple(f"x{i}" for i in range(8))
METHOD = "predict"
OUTPUT = "prediction"
MODEL_NAME = "BenchForest"
BUILDERS = ("docker", "daemonless")
RUNNER_DIR = harness.REPO / "runner_image"
DEFAULT_INDEX = "https://pypi.org/simple/"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one classic build instead of two")
    parser.add_argument("--known-runs", type=int, default=3, help="known-requirements onboardings per builder")
    parser.add_argument("--classic-runs", type=int, default=2, help="classic builds (median)")
    parser.add_argument("--builders", default=",".join(BUILDERS), help="builders to measure (comma separated)")
    parser.add_argument("--online-deps", action="store_true",
                        help="measured onboardings may ask the index (pip download) as an online site does")
    parser.add_argument("--classic-pip", choices=("auto", "index", "wheelhouse"), default="auto",
                        help="where the classic build's pip gets packages (auto: the index if reachable)")
    parser.add_argument("--index-url", default=DEFAULT_INDEX, help="the package index the classic build uses")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for one onboarding or build")
    args = parser.parse_args(argv)
    if args.quick:
        args.classic_runs = 1
    args.builders = [b.strip() for b in args.builders.split(",") if b.strip()]
    unknown = set(args.builders) - set(BUILDERS)
    if unknown or not args.builders or args.known_runs < 1 or args.classic_runs < 1:
        parser.error(f"--builders takes {', '.join(BUILDERS)}; --known-runs and --classic-runs at least 1")
    return args


# ---------------------------------------------------------------- the engine, the registry, the base

def fresh_python_image(client, base: str) -> str:
    """The acumos/python-offline image the runner base was built from (same first layer)."""
    base_layers = client.images.get(base).attrs["RootFS"]["Layers"]
    candidates = [image for image in client.images.list(name="acumos/python-offline") if image.tags]
    for image in candidates:
        if image.attrs["RootFS"]["Layers"][0] == base_layers[0]:
            return image.tags[0]
    if not candidates:
        raise RuntimeError("no acumos/python-offline image in the engine (scripts/build-runner-base.sh makes it)")
    return sorted(candidates, key=lambda image: image.attrs["Created"])[-1].tags[0]


# ---------------------------------------------------------------- the model

@dataclass
class Model:
    bundle: Path  # metadata.json, model.proto, modelpackage.zip
    sample: dict[str, float]
    expected: float
    trees: int
    package_bytes: int
    requirements: list[str] = field(default_factory=list)


def make_model(out: Path) -> Model:
    """A forest whose modelpackage.zip is PACKAGE_MB: the tree count is scaled from a first try."""
    from sklearn.datasets import make_regression

    features, target = make_regression(n_samples=2000, n_features=len(FEATURES), noise=0.1, random_state=0)
    sample = {name: float(value) for name, value in zip(FEATURES, features[0], strict=True)}
    trees = 60
    for _ in range(5):
        forest, size = _pack_forest(out, features, target, trees, sample)
        if abs(size / MB - PACKAGE_MB) <= PACKAGE_TOLERANCE_MB / 4:
            break
        trees = max(1, round(trees * PACKAGE_MB * MB / size))
    if abs(size / MB - PACKAGE_MB) > PACKAGE_TOLERANCE_MB:
        raise RuntimeError(f"could not size the model package: {size / MB:.2f} MB with {trees} trees")
    metadata = json.loads((out / "metadata.json").read_text())
    requirements = [f"{r['name']}=={r['version']}" for r in metadata["runtime"]["dependencies"]["pip"]["requirements"]]
    return Model(out, sample, float(forest.predict(features[:1])[0]), trees, size, requirements)


def _pack_forest(out: Path, features, target, trees: int, sample: dict) -> tuple[object, int]:
    import joblib
    from sklearn.ensemble import RandomForestRegressor

    from runner_image.pack import pack_bundle

    forest = RandomForestRegressor(n_estimators=trees, random_state=0, n_jobs=-1).fit(features, target)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    model_file = out.parent / "model.joblib"
    joblib.dump(forest, model_file)
    try:
        pack_bundle(model=model_file, flavour="sklearn", name=MODEL_NAME, method=METHOD,
                    inputs=",".join(f"{name}:double" for name in FEATURES), outputs=f"{OUTPUT}:double", out=out,
                    sample=sample, version="1.0.0", description=f"RandomForestRegressor, {trees} trees (benchmark)")
    finally:
        model_file.unlink(missing_ok=True)
    return forest, (out / "modelpackage.zip").stat().st_size


def variant(model: Model, out: Path, *, name: str, version: str) -> dict[str, Path]:
    """The bundle as another model name and version, its package made unique by a nonce file."""
    out.mkdir(parents=True)
    shutil.copy(model.bundle / "model.proto", out / "model.proto")
    metadata = json.loads((model.bundle / "metadata.json").read_text())
    metadata["name"], metadata["modelVersion"] = name, version
    (out / "metadata.json").write_text(json.dumps(metadata, indent=2))
    shutil.copy(model.bundle / "modelpackage.zip", out / "modelpackage.zip")
    with zipfile.ZipFile(out / "modelpackage.zip", "a") as archive:
        archive.writestr("bench-nonce.txt", uuid.uuid4().hex)
    return {"model": out / "modelpackage.zip", "metadata": out / "metadata.json", "schema": out / "model.proto"}


# ---------------------------------------------------------------- the portal, in this process

def start_portal(scratch: Path, env: dict[str, str], repository: str, *, online_deps: bool):
    """Settings come from the environment, read once by django.setup(); returns the onboarding user."""
    for name in ("CELERY_BROKER_URL", "ACUMOS_STORAGE", "ACUMOS_IMAGE_REGISTRY", "ACUMOS_REGISTRY_USERNAME",
                 "ACUMOS_REGISTRY_PASSWORD", "ACUMOS_SMOKE_TEST"):
        os.environ.pop(name, None)
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "acumos_portal.settings",
        "DJANGO_SECRET_KEY": "bench-" + uuid.uuid4().hex,
        "ACUMOS_DATA_DIR": str(scratch / "data"),
        "DATABASE_URL": f"sqlite:///{scratch / 'db.sqlite3'}",
        "ACUMOS_IMAGE_BUILDER": "daemonless",
        "ACUMOS_IMAGE_BASE": env["ACUMOS_TEST_IMAGE_BASE"],
        "ACUMOS_IMAGE_REPOSITORY": repository,
        "ACUMOS_WHEELHOUSE": env["ACUMOS_TEST_WHEELHOUSE"],
        "ACUMOS_WHEELHOUSE_ONLY": "false" if online_deps else "true",
        "ACUMOS_IMAGE_CACHE": str(scratch / "cache-warmup"),
        "DOCKER_HOST": env["ACUMOS_TEST_DOCKER_HOST"],
    })
    import django

    django.setup()
    for name in ("celery", "httpx"):  # a line per task and per request would bury the figures
        logging.getLogger(name).setLevel(logging.WARNING)
    from django.core.management import call_command

    from acumos_portal.accounts.models import User

    call_command("migrate", interactive=False, verbosity=0)
    return User.objects.create_user("bench", password="bench-password-" + uuid.uuid4().hex[:8])


def configure(**values) -> None:
    """Change settings between onboardings (the job threads read the same settings object)."""
    from django.conf import settings

    for name, value in values.items():
        setattr(settings, name, value)


def onboard(user, parts: dict[str, Path], timeout: float) -> dict:
    """One onboarding through the real pipeline; its timings from the StepResult rows."""
    from images.models import ImageBuild
    from onboarding.choices import JobStatus, StepStatus
    from onboarding.services import onboarding_start

    job = onboarding_start(user=user, parts=parts)
    deadline = time.monotonic() + timeout
    while job.status not in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        if time.monotonic() > deadline:
            raise RuntimeError(f"onboarding {job.model_name} {job.version} did not finish in {timeout:.0f} s")
        time.sleep(0.1)
        job.refresh_from_db()
    steps = {step.name: step for step in job.steps.all()}
    image_step = steps["build_image"]
    if job.status != JobStatus.SUCCEEDED or image_step.status != StepStatus.SUCCEEDED:
        raise RuntimeError(f"onboarding {job.model_name} {job.version}: job {job.status}, build_image "
                           f"{image_step.status}: {job.error or image_step.error}\n{image_step.log[-3000:]}")
    build = ImageBuild.objects.get(revision_id=job.revision_uuid)
    return {"model": job.model_name, "version": job.version, "builder": build.builder,
            "pipeline_s": round((image_step.finished - steps["store_artifacts"].started).total_seconds(), 2),
            "build_image_s": round(image_step.duration_seconds, 2),
            "steps_s": {name: round(step.duration_seconds or 0, 2) for name, step in steps.items()},
            "image": build.image, "digest": build.digest, "compressed_bytes": build.size,
            "deps_log": [line for line in map(_untimed, image_step.log.splitlines())
                         if "extra packages" in line or line.startswith(("installed", "fetching"))]}


def _untimed(line: str) -> str:
    """A build log line without the elapsed-time prefix images.services.BuildLog may give it ("[  2.8s] ")."""
    return re.sub(r"^\[\s*[\d.]+s\]\s?", "", line)


def check_scenario(run: dict, *, new: bool) -> None:
    """The log must show the scenario asked for: a fresh install, or the cached one."""
    text = "\n".join(run["deps_log"])
    fresh = "installed " in text and "cached install" not in text
    cached = "cached install" in text and "installed " not in text
    if run["builder"] == "docker":
        fresh = fresh and "extra packages layer: building" in text
        cached = cached and "extra packages layer: cached image" in text
    if (new and not fresh) or (not new and not cached):
        raise RuntimeError(f"{run['model']} {run['version']} is not a "
                           f"{'new' if new else 'known'}-requirements build; its log:\n{text}")


# ---------------------------------------------------------------- docker helpers

def deps_image_tag(model: Model, base: str) -> str:
    """The acumos-deps tag the Docker builder gives this requirement set (images.builders.docker_engine)."""
    from images import dependencies, services
    from images.builders.docker_engine import DEPS_REPOSITORY
    from images.oci import ImageRef
    from onboarding.validation import validate_package

    metadata = json.loads((model.bundle / "metadata.json").read_text())
    wanted = dependencies.requirements_of(metadata, list(validate_package(model.bundle / "modelpackage.zip")
                                                         .requirements))
    key = dependencies.cache_key(wanted, services.platform())
    ref = ImageRef.parse(base)
    name = str(ImageRef(ref.registry, ref.repository, ref.tag or "latest"))
    return f"{DEPS_REPOSITORY}:{hashlib.sha256(f'{name}|{key}'.encode()).hexdigest()[:16]}"


def drop_deps_image(client, tag: str, before: set[str]) -> str:
    """The engine's acumos-deps image for this requirement set, whoever made it (it is a cache: the Docker
    builder makes it again when missing). Returns what was removed, if anything."""
    import docker

    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return ""
    client.images.remove(image.id, force=True)
    return f"{tag} ({'there before this bench' if image.id in before else 'made by this bench'})"


def remove_local(client, prefix: str) -> int:
    import docker

    removed = 0
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith(prefix):
                with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.APIError):
                    client.images.remove(tag, force=True)
                    removed += 1
    return removed


def answer_of(client, image: str, sample: dict, label: str, timeout: float = 120) -> dict:
    """Run the image (host network, a free port), wait until ready, POST the sample; the container goes."""
    port = harness.free_port()
    container = client.containers.run(image, detach=True, network_mode="host", labels={"acumos-bench": BENCH},
                                      environment={"RUNNER_HOST": harness.HOST, "RUNNER_PORT": str(port)})
    base_url = f"http://{harness.HOST}:{port}"
    started = time.monotonic()
    try:
        with harness.http_client(timeout=30) as http:
            while True:
                with contextlib.suppress(Exception):
                    if http.get(f"{base_url}/v2/health/ready").status_code == 200:
                        break
                container.reload()
                if container.status == "exited" or time.monotonic() - started > timeout:
                    raise RuntimeError(f"{label} ({image}) did not become ready:\n"
                                       f"{container.logs(tail=40).decode(errors='replace')}")
                time.sleep(0.2)
            ready_s = time.monotonic() - started
            response = http.post(f"{base_url}/model/methods/{METHOD}", json=sample)
            if response.status_code != 200:
                raise RuntimeError(f"{label} answered {response.status_code}: {response.text[:500]}")
            return {"image": image, "answer": response.json(), "ready_s": round(ready_s, 2)}
    finally:
        container.remove(force=True)


# ---------------------------------------------------------------- the classic build

@dataclass
class PipSource:
    mode: str  # "index" | "wheelhouse"
    description: str
    ca_bundle: Path | None = None  # copied into the build when the index needs it
    find_links: str = ""


def host_ca_bundle() -> Path | None:
    paths = [os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"), ssl.get_default_verify_paths().cafile,
             "/etc/ssl/certs/ca-certificates.crt"]
    return next((Path(p) for p in paths if p and Path(p).is_file()), None)


def probe_index(client, fresh: str, index_url: str) -> tuple[bool, str]:
    """Can a host-network container of the fresh image fetch the index? Also with the host's CA bundle?"""
    import docker

    ca = host_ca_bundle()
    script = ("import ssl, sys, urllib.request\n"
              "ctx = ssl.create_default_context(cafile=sys.argv[2] if len(sys.argv) > 2 else None)\n"
              "urllib.request.urlopen(sys.argv[1], timeout=20, context=ctx).read(100)\n")
    attempts = [([], "")] + ([(["/tmp/host-ca.crt"], f" with the host's CA bundle {ca}")] if ca else [])
    last = ""
    for extra, how in attempts:
        volumes = {str(ca): {"bind": "/tmp/host-ca.crt", "mode": "ro"}} if extra else {}
        try:
            client.containers.run(fresh, ["python3", "-c", script, index_url, *extra], network_mode="host",
                                  volumes=volumes, remove=True, labels={"acumos-bench": BENCH})
            return bool(extra), f"reached {index_url} from a host-network container{how}"
        except docker.errors.ContainerError as exc:
            last = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-1:]
    raise LookupError(f"a host-network container cannot reach {index_url}: {' '.join(last)}")


def served_wheelhouse(model: Model, scratch: Path, stack: contextlib.ExitStack, why: str) -> PipSource:
    """Every wheel the classic pip needs, for the image's platform, served on 127.0.0.1 by http.server."""
    from images.dependencies import Platform

    project = tomllib.loads((RUNNER_DIR / "pyproject.toml").read_text())
    wanted = [*project["project"]["dependencies"], *project["build-system"]["requires"], *model.requirements]
    platform = Platform(os.environ.get("ACUMOS_IMAGE_PYTHON", "3.11"), os.environ.get("ACUMOS_IMAGE_GLIBC", "2.36"),
                        os.environ.get("ACUMOS_IMAGE_ARCH", "x86_64"))
    folder = scratch / "classic-wheels"
    done = subprocess.run([str(harness.PYTHON), "-m", "pip", "download", "--quiet", "--dest", str(folder),
                           "--find-links", os.environ["ACUMOS_WHEELHOUSE"], *platform.pip_options(), *wanted],
                          capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"could not gather the classic build's wheels:\n{done.stderr[-3000:]}")
    port = harness.free_port()
    cmd = [str(harness.PYTHON), "-m", "http.server", "--bind", harness.HOST, "--directory", str(folder), str(port)]
    server = stack.enter_context(harness.serving("wheelhouse", cmd, env=harness.offline_env(), port=port,
                                                 log=scratch / "wheelhouse.log", keep_as="image-build-wheelhouse"))
    url = f"{server.base_url}/"
    with harness.http_client() as http:
        harness.wait_until(lambda: http.get(url).status_code == 200, server, "serving")
    return PipSource("wheelhouse", f"a wheelhouse served from the host at {url} ({len(list(folder.iterdir()))} "
                     f"wheels; {why})", find_links=url)


def pip_wheel(folder: Path) -> Path:
    """The pip wheel, at this venv's pip version."""
    from importlib import metadata

    version = metadata.version("pip")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([str(harness.PYTHON), "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                           "--dest", str(folder), f"pip=={version}"], capture_output=True, text=True, timeout=300,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"could not get the pip {version} wheel:\n{done.stderr[-2000:]}")
    return next(folder.glob("pip-*.whl"))


def classic_dockerfile(fresh: str, wheel: str, pins: list[str], source: PipSource) -> str:
    """runner_image/Dockerfile's image, made the classic way: pip in the image, from the network."""
    pip = f"python3 /tmp/{wheel}/pip install --no-cache-dir --break-system-packages"
    copies = [f"COPY {wheel} /tmp/{wheel}"]
    if source.ca_bundle:
        copies.append("COPY ca.crt /tmp/ca.crt")
        pip = f"PIP_CERT=/tmp/ca.crt {pip}"
    if source.find_links:
        pip += f" --no-index --find-links {source.find_links} --trusted-host {harness.HOST}"
    healthcheck = ('["python3", "-c", "import os, urllib.request; urllib.request.urlopen(f\\"http://127.0.0.1:'
                   '{os.environ.get(\'RUNNER_PORT\', \'3330\')}/v2/health/ready\\", timeout=2)"]')
    return "\n".join([
        f"FROM {fresh}", *copies, "COPY runner_image /src/runner_image",
        "ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 RUNNER_HOST=0.0.0.0 RUNNER_PORT=3330 "
        "RUNNER_STATE_DIR=/var/lib/runner",
        f"RUN {pip} /src/runner_image {' '.join(pins)}",
        "RUN groupadd --gid 10001 runner && useradd --uid 10001 --gid 10001 --home-dir /app "
        "--shell /usr/sbin/nologin runner && mkdir -p /app/bundle /var/lib/runner "
        "&& chown -R 10001:10001 /app /var/lib/runner",
        "COPY --chown=10001:10001 bundle /app/bundle",
        "USER 10001", "WORKDIR /app", "EXPOSE 3330",
        f"HEALTHCHECK --interval=10s --timeout=3s --start-period=30s CMD {healthcheck}",
        'ENTRYPOINT ["python3", "-m", "runner_image", "serve"]', 'CMD ["/app/bundle"]', ""])


def classic_context(out: Path, dockerfile: str, wheel: Path, bundle: dict[str, Path], source: PipSource) -> Path:
    """The build context as a tar: Dockerfile, the pip wheel, the runner's source, the bundle."""
    with tarfile.open(out, "w") as tar:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, fileobj=io.BytesIO(data))
        tar.add(wheel, arcname=wheel.name)
        if source.ca_bundle:
            tar.add(source.ca_bundle, arcname="ca.crt")
        tar.add(RUNNER_DIR / "pyproject.toml", arcname="runner_image/pyproject.toml")
        tar.add(RUNNER_DIR / "runner_image", arcname="runner_image/runner_image",
                filter=lambda member: None if "__pycache__" in member.name else member)
        for path in bundle.values():
            tar.add(path, arcname=f"bundle/{path.name}")
    return out


def classic_build(client, context: Path, repository: str, tag: str, timeout: float) -> dict:
    """docker build (no cache, host network) then push; both timed."""
    started = time.monotonic()
    lines = []
    with open(context, "rb") as handle:
        for entry in client.api.build(fileobj=handle, custom_context=True, tag=f"{repository}:{tag}", nocache=True,
                                      rm=True, forcerm=True, pull=False, network_mode="host", decode=True,
                                      timeout=timeout):
            if "error" in entry:
                raise RuntimeError(f"the classic build failed: {entry['error']}\n" + "".join(lines[-30:]))
            lines.append(entry.get("stream") or "")
    built = time.monotonic()
    digest = ""
    for entry in client.api.push(repository, tag=tag, stream=True, decode=True):
        if "error" in entry:
            raise RuntimeError(f"pushing the classic image failed: {entry['error']}")
        digest = (entry.get("aux") or {}).get("Digest", digest)
    pushed = time.monotonic()
    if not digest:
        raise RuntimeError("pushing the classic image gave no digest")
    return {"image": f"{repository}:{tag}", "digest": digest, "build_s": round(built - started, 2),
            "push_s": round(pushed - built, 2), "total_s": round(pushed - started, 2)}


# ---------------------------------------------------------------- sizes

def layers_of(registry, client, image: str, digest: str) -> tuple[list[dict], int]:
    """Each layer: its history line, compressed size (manifest), uncompressed size (engine); and the image's
    uncompressed Size. The engine's history has one entry per config history entry, newest first."""
    repository = image.split("/", 1)[1].rsplit(":", 1)[0]
    manifest, _, _ = registry.manifest(repository, digest)
    config = json.loads(registry.read_blob(repository, manifest["config"]["digest"]))
    history = config.get("history") or []
    engine_image = client.images.get(image)
    engine_history = list(reversed(client.api.history(engine_image.id)))
    aligned = len(engine_history) == len(history)
    layers, descriptors = [], iter(manifest["layers"])
    for position, entry in enumerate(history):
        if entry.get("empty_layer"):
            continue
        descriptor = next(descriptors, None)
        if descriptor is None:
            break
        layers.append({"created_by": " ".join(entry.get("created_by", "").split())[:90] or "(imported rootfs)",
                       "compressed": descriptor["size"],
                       "uncompressed": engine_history[position]["Size"] if aligned else None})
    if len(layers) != len(manifest["layers"]):  # a history that does not match: sizes from the manifest alone
        layers = [{"created_by": "", "compressed": d["size"], "uncompressed": None} for d in manifest["layers"]]
    return layers, engine_image.attrs["Size"]


def _sum(layers: list[dict], key: str) -> int | None:
    values = [layer[key] for layer in layers]
    return None if any(v is None for v in values) else sum(values)


def ours_sizes(registry, client, image: str, digest: str, base_layers: int) -> dict:
    layers, size = layers_of(registry, client, image, digest)
    parts = {"base": layers[:base_layers], "extra packages": layers[base_layers:-1], "bundle": layers[-1:]}
    return {"image": image, "digest": digest, "compressed": _sum(layers, "compressed"), "uncompressed": size,
            "layers": layers, "split": _split(parts)}


def classic_sizes(registry, client, image: str, digest: str, base_layers: int) -> dict:
    layers, size = layers_of(registry, client, image, digest)
    installed = [layer for layer in layers[base_layers:-1] if "pip install" in layer["created_by"]]
    other = [layer for layer in layers[base_layers:-1] if layer not in installed]
    parts = {"base": layers[:base_layers], "pip install (runner + packages)": installed,
             "pip wheel, CA, runner source, user": other, "bundle": layers[-1:]}
    return {"image": image, "digest": digest, "compressed": _sum(layers, "compressed"), "uncompressed": size,
            "layers": layers, "split": _split(parts)}


def _split(parts: dict[str, list[dict]]) -> dict:
    return {name: {"layers": len(group), "compressed": _sum(group, "compressed"),
                   "uncompressed": _sum(group, "uncompressed")} for name, group in parts.items()}


# ---------------------------------------------------------------- the runs

def settle(label: str, seconds: int = 5) -> float:
    """Up to `seconds` one-second CPU samples until other work (or the tail of our last run: dockerd, the
    registry) is below harness.QUIET_CPU_PCT; a warning if it never is."""
    for _ in range(seconds):
        busy = harness.background_cpu()
        if not busy > harness.QUIET_CPU_PCT:
            return busy
    print(f"  WARNING: the machine is {busy:.0f}% busy with other work before {label}; figures will be slow",
          flush=True)
    return busy


@dataclass
class Bench:
    args: argparse.Namespace
    scratch: Path
    env: dict[str, str]
    client: object
    registry: object
    run_id: str
    user: object = None
    model: Model | None = None
    deps_tag: str = ""  # the acumos-deps image the Docker builder makes for the model's requirements
    deps_before: set[str] = field(default_factory=set)
    pushed: list[tuple[str, str]] = field(default_factory=list)  # (repository, digest) to delete

    @property
    def repository(self) -> str:
        return f"acumos-bench/{self.run_id}"

    @property
    def local_prefix(self) -> str:
        return f"{self.env['ACUMOS_TEST_REGISTRY']}/{self.repository}/"

    def onboarding(self, name: str, version: str, label: str) -> dict:
        parts = variant(self.model, self.scratch / "bundles" / f"{name}-{version}", name=name, version=version)
        busy = settle(label)
        run = onboard(self.user, parts, self.args.timeout)
        run["background_cpu_pct"] = round(busy, 1)
        self.pushed.append((run["image"].split("/", 1)[1].rsplit(":", 1)[0], run["digest"]))
        print(f"  {label}: {run['pipeline_s']:.2f} s store->pushed, build_image {run['build_image_s']:.2f} s "
              f"({run['builder']}, {run['model']} {run['version']})", flush=True)
        return run

    def warm_up(self) -> dict:
        configure(ACUMOS_IMAGE_BUILDER="daemonless", ACUMOS_IMAGE_CACHE=self.scratch / "cache-warmup")
        try:
            return self.onboarding(f"{MODEL_NAME}-warmup", "1.0.0", "warm-up (not measured)")
        except RuntimeError as exc:
            if "could not get these Python packages" not in str(exc):
                raise
        print("  the wheelhouse lacks wheels: the warm-up asks the index once to fill it", flush=True)
        configure(ACUMOS_WHEELHOUSE_ONLY=False)
        try:
            return self.onboarding(f"{MODEL_NAME}-warmup", "1.0.1", "warm-up, filling the wheelhouse")
        finally:
            configure(ACUMOS_WHEELHOUSE_ONLY=not self.args.online_deps)

    def measure(self, builder: str) -> dict:
        configure(ACUMOS_IMAGE_BUILDER=builder, ACUMOS_IMAGE_CACHE=self.scratch / f"cache-{builder}")
        removed = ""
        if builder == "docker":
            removed = drop_deps_image(self.client, self.deps_tag, self.deps_before)
            if removed:
                print(f"  removed {removed} before the new-requirements build", flush=True)
        name = f"{MODEL_NAME}-{builder}"
        new = self.onboarding(name, "1.0.0", f"{builder}, new requirements")
        check_scenario(new, new=True)
        known = []
        for run in range(1, self.args.known_runs + 1):
            known.append(self.onboarding(name, f"1.{run}.0", f"{builder}, known requirements #{run}"))
            check_scenario(known[-1], new=False)
        return {"new": new, "known": known, "removed_deps_image": removed,
                "known_median_s": round(statistics.median(r["pipeline_s"] for r in known), 2),
                "known_build_image_median_s": round(statistics.median(r["build_image_s"] for r in known), 2)}

    def pip_source(self, fresh: str, stack: contextlib.ExitStack) -> PipSource:
        """The index if a host-network container reaches it (--classic-pip auto), else a served wheelhouse."""
        args, why = self.args, "--classic-pip wheelhouse"
        if args.classic_pip in ("auto", "index"):
            try:
                needs_ca, how = probe_index(self.client, fresh, args.index_url)
                return PipSource("index", f"the package index {args.index_url} ({how})",
                                 ca_bundle=host_ca_bundle() if needs_ca else None)
            except LookupError as exc:
                if args.classic_pip == "index":
                    raise RuntimeError(str(exc)) from exc
                print(f"  {exc}: serving a wheelhouse from the host instead", flush=True)
                why = str(exc)
        return served_wheelhouse(self.model, self.scratch, stack, why)

    def classic(self, stack: contextlib.ExitStack) -> dict:
        fresh = fresh_python_image(self.client, self.env["ACUMOS_TEST_IMAGE_BASE"])
        source = self.pip_source(fresh, stack)
        print(f"  classic build: FROM {fresh}; pip gets packages from {source.description}", flush=True)
        wheel = pip_wheel(self.scratch / "pip")
        dockerfile = classic_dockerfile(fresh, wheel.name, self.model.requirements, source)
        repository = f"{self.env['ACUMOS_TEST_REGISTRY']}/{self.repository}/classic"
        runs = []
        for run in range(1, self.args.classic_runs + 1):
            bundle = variant(self.model, self.scratch / "bundles" / f"classic-{run}", name=f"{MODEL_NAME}-classic",
                             version=f"1.{run}.0")
            busy = settle(f"classic build #{run}")
            started = time.monotonic()
            context = classic_context(self.scratch / f"classic-{run}.tar", dockerfile, wheel, bundle, source)
            result = classic_build(self.client, context, repository, f"run{run}", self.args.timeout)
            result["total_s"] = round(time.monotonic() - started, 2)  # with writing the context, as `docker build`
            result["background_cpu_pct"] = round(busy, 1)
            self.pushed.append((repository.split("/", 1)[1], result["digest"]))
            runs.append(result)
            print(f"  classic build #{run}: {result['total_s']:.2f} s (build {result['build_s']:.2f} s, "
                  f"push {result['push_s']:.2f} s)", flush=True)
        return {"from": fresh, "pip_source": source.mode, "pip_source_detail": source.description,
                "dockerfile": dockerfile, "runs": runs,
                "median_s": round(statistics.median(r["total_s"] for r in runs), 2)}

    def pull(self, image: str) -> None:
        repository, _, tag = image.rpartition(":")
        self.client.images.pull(repository, tag=tag)


def check_answers(bench: Bench, ours: dict[str, dict], classic: dict) -> dict:
    """Ours (each builder's last image) and the classic one must all give the in-process prediction."""
    images = {f"ours ({builder})": result["known"][-1]["image"] for builder, result in ours.items()}
    images["classic"] = classic["runs"][-1]["image"]
    answers = {}
    for label, image in images.items():
        answers[label] = answer_of(bench.client, image, bench.model.sample, label)
        value = answers[label]["answer"].get(OUTPUT)
        answers[label]["matches"] = isinstance(value, float) and math.isclose(value, bench.model.expected,
                                                                              rel_tol=1e-9, abs_tol=1e-9)
        print(f"  {label}: {answers[label]['answer']} (ready in {answers[label]['ready_s']:.1f} s)", flush=True)
    wrong = [label for label, answer in answers.items() if not answer["matches"]]
    if wrong:
        raise RuntimeError(f"wrong answers from {', '.join(wrong)}: expected {OUTPUT}={bench.model.expected!r}")
    return answers


def collect_sizes(bench: Bench, ours: dict[str, dict], classic: dict) -> dict:
    from images.oci import ImageRef

    base = ImageRef.parse(bench.env["ACUMOS_TEST_IMAGE_BASE"])
    base_layers = len(bench.registry.manifest(base.repository, base.reference)[0]["layers"])
    sizes = {}
    for builder, result in ours.items():
        run = result["known"][-1]
        sizes[f"ours ({builder})"] = ours_sizes(bench.registry, bench.client, run["image"], run["digest"], base_layers)
    run = classic["runs"][-1]
    fresh_layers = len(bench.client.images.get(classic["from"]).attrs["RootFS"]["Layers"])
    sizes["classic"] = classic_sizes(bench.registry, bench.client, run["image"], run["digest"], fresh_layers)
    return sizes


# ---------------------------------------------------------------- the report

def _mb(value: int | None) -> str:
    return "?" if value is None else f"{value / MB:.1f}"


def verdicts(ours: dict[str, dict], classic: dict) -> dict:
    out = {}
    for builder, result in ours.items():
        seconds = result["known_median_s"]
        ratio = classic["median_s"] / seconds
        out[builder] = {"known_median_s": seconds, "ratio": round(ratio, 1), "under_10s": seconds < TARGET_SECONDS,
                        "at_least_5x": ratio >= TARGET_RATIO}
    return out


def report(bench: Bench, ours: dict[str, dict], classic: dict, sizes: dict) -> dict:
    model = bench.model
    print(f"\n== model: RandomForestRegressor, {model.trees} trees; modelpackage.zip {model.package_bytes / MB:.2f} MB "
          f"({model.package_bytes} bytes); requirements {', '.join(model.requirements)} ==")
    rows = []
    for builder, result in ours.items():
        new, known = result["new"], result["known"]
        rows.append(["new requirements", builder, f"{new['pipeline_s']:.2f}", f"{new['build_image_s']:.2f}",
                     f"{classic['median_s'] / new['pipeline_s']:.1f}x"])
        rows.append([f"known requirements (median of {len(known)})", builder, f"{result['known_median_s']:.2f}",
                     f"{result['known_build_image_median_s']:.2f}",
                     f"{classic['median_s'] / result['known_median_s']:.1f}x"])
    rows.append([f"classic Dockerfile (median of {len(classic['runs'])})", "docker build + push",
                 f"{classic['median_s']:.2f}", "-", "1.0x"])
    print("\n== store artifacts -> image pushed (ours: the onboarding pipeline; classic: docker build + push) ==")
    print(harness.table(["scenario", "builder", "seconds", "build_image step s", "classic / ours"], rows))
    print(f"classic pip: {classic['pip_source_detail']}")
    for builder, result in ours.items():
        middle = sorted(result["known"], key=lambda r: r["pipeline_s"])[len(result["known"]) // 2]
        smoke, image = middle["steps_s"]["smoke_test"], middle["steps_s"]["build_image"]
        print(f"ours ({builder}), the median known-requirements run: smoke test {smoke:.2f} s, build_image "
              f"{image:.2f} s, storing + revision + descriptors + hand-offs between steps "
              f"{middle['pipeline_s'] - smoke - image:.2f} s")
    print("ours: each known-requirements run:", "; ".join(
        f"{b} " + ", ".join(f"{r['pipeline_s']:.2f}" for r in result["known"]) for b, result in ours.items()))
    print("classic runs:", ", ".join(f"{r['total_s']:.2f} (build {r['build_s']:.2f} + push {r['push_s']:.2f})"
                                     for r in classic["runs"]))

    print("\n== targets (known requirements, the usual case; the issue's figure) ==")
    results = verdicts(ours, classic)
    for builder, verdict in results.items():
        print(f"{builder:>10}: {verdict['known_median_s']:.2f} s < {TARGET_SECONDS:.0f} s -> "
              f"{'PASS' if verdict['under_10s'] else 'FAIL'}; classic/ours {verdict['ratio']:.1f}x >= "
              f"{TARGET_RATIO:.0f}x -> {'PASS' if verdict['at_least_5x'] else 'FAIL'}")

    print("\n== image sizes (MB; compressed = the manifest's layers in the registry, uncompressed = docker image "
          "inspect Size) ==")
    size_rows = []
    for label, size in sizes.items():
        size_rows.append([label, "", _mb(size["compressed"]), _mb(size["uncompressed"])])
        size_rows += [["", f"{name} ({part['layers']})", _mb(part["compressed"]), _mb(part["uncompressed"])]
                      for name, part in size["split"].items()]
    print(harness.table(["image", "part (layers)", "compressed", "uncompressed"], size_rows))
    return results


def run(args: argparse.Namespace) -> int:
    wall = time.monotonic()
    with contextlib.ExitStack() as stack:
        scratch, env, client = harness.engine_session(stack, "bench-image-build-", args.timeout)
        from images.oci import Registry

        registry = stack.enter_context(Registry(env["ACUMOS_TEST_REGISTRY"]))
        bench = Bench(args, scratch, env, client, registry, uuid.uuid4().hex[:10],
                      deps_before={image.id for image in client.images.list(name="acumos-deps")})
        stack.callback(cleanup, bench)
        bench.model = make_model(scratch / "model" / "bundle")
        print(f"  model: {bench.model.trees} trees, modelpackage.zip {bench.model.package_bytes / MB:.2f} MB",
              flush=True)
        bench.user = start_portal(scratch, env, bench.repository, online_deps=args.online_deps)
        bench.deps_tag = deps_image_tag(bench.model, env["ACUMOS_TEST_IMAGE_BASE"])
        print("\n== ours: the onboarding pipeline ==", flush=True)
        warm_up = bench.warm_up()
        ours = {builder: bench.measure(builder) for builder in args.builders}
        print("\n== classic: a Dockerfile that pip-installs into a fresh Python image ==", flush=True)
        classic = bench.classic(stack)
        print("\n== the images answer ==", flush=True)
        if "daemonless" in ours:
            bench.pull(ours["daemonless"]["known"][-1]["image"])  # not in the engine: it never touched it
        answers = check_answers(bench, ours, classic)
        sizes = collect_sizes(bench, ours, classic)
        results = report(bench, ours, classic, sizes)
        passed = all(v["under_10s"] and v["at_least_5x"] for v in results.values())
        print(f"RESULT: {'PASS' if passed else 'FAIL'} (wall time so far {time.monotonic() - wall:.0f} s)")
        path = harness.write_results(BENCH, {
            "machine": harness.machine(), "settings": {
                "base": env["ACUMOS_TEST_IMAGE_BASE"], "wheelhouse": env["ACUMOS_TEST_WHEELHOUSE"],
                "wheelhouse_only": not args.online_deps, "known_runs": args.known_runs,
                "classic_runs": args.classic_runs},
            "model": {"trees": bench.model.trees, "package_bytes": bench.model.package_bytes,
                      "requirements": bench.model.requirements, "sample": bench.model.sample,
                      "expected": bench.model.expected},
            "warm_up": warm_up, "ours": ours, "classic": classic, "answers": answers, "sizes": sizes,
            "verdicts": results, "pass": passed})
        print(f"wrote {path.relative_to(harness.REPO)}")
    print(f"cleaned up; total wall time {time.monotonic() - wall:.0f} s")
    return 0


def cleanup(bench: Bench) -> None:
    """Registry manifests, local images (ours, pulled, classic, acumos-deps made here), containers."""
    import docker

    with harness.uninterrupted():
        for container in bench.client.containers.list(all=True, filters={"label": f"acumos-bench={BENCH}"}):
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
        for repository, digest in _all_pushed(bench):
            try:
                bench.registry.delete_image(repository, digest)
            except Exception as exc:  # keep cleaning: report what is left
                print(f"  could not delete {repository}@{digest} from the registry: {exc}", file=sys.stderr)
        removed = remove_local(bench.client, bench.local_prefix)
        with contextlib.suppress(docker.errors.APIError):  # ours only: a test run may be using another
            image = bench.client.images.get(bench.deps_tag) if bench.deps_tag else None
            if image is not None and image.id not in bench.deps_before:
                bench.client.images.remove(image.id, force=True)
                removed += 1
        print(f"\ncleanup: {len(bench.pushed)} registry manifests deleted, {removed} local images removed",
              flush=True)


def _all_pushed(bench: Bench) -> list[tuple[str, str]]:
    """What the runs recorded, and any image the portal pushed for a run that then failed."""
    if bench.user is not None:
        from images.models import ImageBuild
        from images.oci import ImageRef

        with contextlib.suppress(Exception):  # the database may be what failed
            for build in ImageBuild.objects.exclude(digest=""):
                ref = ImageRef.parse(build.reference)
                if (ref.repository, ref.digest) not in bench.pushed:
                    bench.pushed.append((ref.repository, ref.digest))
    return bench.pushed


if __name__ == "__main__":
    sys.exit(harness.run_main(run, parse_args(sys.argv[1:])))
