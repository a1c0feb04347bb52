"""What the Kubernetes objects and the hand-deployable bundle are made from, read from the records
and storage: a revision's image reference (images), a deployment's spec, and the bundle itself, a
zip of kubernetes.yaml, docker-compose.yml, .env.example and a README whose example calls use the
samples of the model package. The objects themselves are deployment/manifests.py's, pure functions
of a Spec."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import replace

from django.conf import settings

from deployment.manifests import (
    PIDS_LIMIT,
    RUNNER_PORT,
    RUNNER_UID,
    TMP_SIZE,
    TOKEN_KEY,
    Spec,
    compose_yaml,
    deployment_name,
    kubernetes_yaml,
    object_name,
)
from deployment.options import check_options
from images.oci import ImageRef
from images.selectors import image_artifact
from licensing import deployments as licence
from marketplace import signature
from marketplace.choices import ArtifactKind


class NoImage(ValueError):
    """The revision has no image to run yet."""


# ---------------------------------------------------------------- the image and the spec

def image_of(revision, registry: str = "") -> str:
    """The revision's image pinned by digest. The tag is dropped where there is a digest: some
    runtimes (podman, CRI-O) refuse a reference with both."""
    artifact = image_artifact(revision)
    if artifact is None or not artifact.uri:
        raise NoImage(f"revision {revision} has no image yet: build it first (Create microservice)")
    reference = ImageRef.parse(artifact.uri)
    if reference.digest:
        reference = replace(reference, tag="")
    return str(replace(reference, registry=registry) if registry else reference)


def runner_environment(deployment) -> dict[str, str]:
    """The variables every runner of `deployment` starts with, whatever the backend: its metering (licensing)
    and the site's statistics window (ACUMOS_RUNNER_STATS_WINDOW_SECONDS)."""
    return {**licence.runner_environment(deployment.pk),
            "RUNNER_STATS_WINDOW_SECONDS": str(settings.ACUMOS_RUNNER_STATS_WINDOW_SECONDS)}



def spec_for(deployment, options: Mapping, name: str = "") -> Spec:
    """The spec of a Deployment record: its CURRENT revision (hot swaps change it) and replicas, and
    its metering when a licensee deployed a model that needs an agreement."""
    return Spec(name=name or deployment_name(deployment),
                image=image_of(deployment.revision, options.get("image_registry", "")),
                replicas=deployment.replicas, deployment_id=str(deployment.pk),
                revision_id=str(deployment.revision_id), options=options,
                environment=runner_environment(deployment))


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
    """Read once per package, as the model page reads them (marketplace.signature caches them by
    the package's sha256); none where the package cannot be read: the README then shows empty
    bodies, and the bundle is still useful."""
    return signature.samples_of(list(revision.artifacts.filter(kind=ArtifactKind.MODEL).select_related("blob")))


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
