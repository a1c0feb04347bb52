"""Deployments on the `local` target, for real: runner processes on this host. Deploy, predict,
hot-swap to another solution with another proto, predict through the new interface, roll back,
stop, start again, destroy; a swap that cannot succeed leaves the old model serving and says why."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from acumos_portal.choices import JobStatus
from deployment import services
from deployment.choices import DeploymentStatus, OperationKind
from deployment.models import Deployment
from marketplace import storage
from marketplace.choices import ArtifactKind, RevisionStatus
from marketplace.models import Artifact, Revision

from ..bundles import builders, parts_of
from ..factories import RevisionFactory, SolutionFactory
from .conftest import onboarded, post, run


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.django_db
def test_deploy_swap_to_another_interface_roll_back_stop_start_and_destroy(
        owner, local_target, example_bundle, inline_jobs, tmp_path, deployments_dir, settings):
    settings.ACUMOS_DEPLOYMENT_GRACE_SECONDS = 0  # the grace period has its own tests
    iris = onboarded(owner, example_bundle, inline_jobs)
    text = onboarded(owner, builders.text_bundle(tmp_path / "text", tag="v-text"), inline_jobs)

    deployment = services.deploy(revision=iris, target=local_target, user=owner)
    first = run(deployment.operations.get())
    assert first.status == JobStatus.SUCCEEDED, first.error
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.RUNNING and deployment.endpoint_url.startswith("http://127.0.0.1:")
    assert deployment.admin_token() and deployment.admin_token() not in deployment.admin_token_encrypted
    assert post(deployment, "classify", builders.IRIS_VIRGINICA) == {"species": 2}

    swapped = run(services.swap(deployment, text, owner))
    assert swapped.status == JobStatus.SUCCEEDED, swapped.error
    assert (swapped.generation, swapped.revision, swapped.previous_revision) == (2, text, iris)
    assert swapped.swap_ms > 0 and swapped.requested_by == owner
    assert post(deployment, "measure", {"text": "four"}) == {"length": 4, "tag": "v-text"}
    assert requests.post(f"{deployment.endpoint_url}/model/methods/classify", json=builders.IRIS_SAMPLE,
                         timeout=10).status_code == 404
    deployment.refresh_from_db()
    assert deployment.revision == text

    back = run(services.rollback(deployment, owner))
    assert back.status == JobStatus.SUCCEEDED, back.error
    assert (back.generation, back.revision) == (1, iris)
    assert post(deployment, "classify", builders.IRIS_SAMPLE) == {"species": 0}

    assert run(services.stop(deployment, owner)).status == JobStatus.SUCCEEDED
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.STOPPED and not _alive(deployment.handle["pid"])
    assert run(services.start(deployment, owner)).status == JobStatus.SUCCEEDED
    assert post(deployment, "classify", builders.IRIS_VIRGINICA) == {"species": 2}  # what it served last

    with pytest.raises(services.DeploymentRefused, match="stop the deployment first"):
        services.destroy(deployment, owner)
    run(services.stop(deployment, owner))
    deployment.refresh_from_db()
    pid = deployment.handle["pid"]
    assert run(services.destroy(deployment, owner)).status == JobStatus.SUCCEEDED
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.DESTROYED and not _alive(pid)
    assert not (deployments_dir / str(deployment.pk)).exists()
    history = [o.kind for o in deployment.operations.order_by("created")]
    assert history == [OperationKind.DEPLOY, OperationKind.SWAP, OperationKind.ROLLBACK, OperationKind.STOP,
                       OperationKind.START, OperationKind.STOP, OperationKind.DESTROY]


def broken_revision(owner, tmp_path) -> Revision:
    """A ready revision whose model fails on its own sample (onboarding would have refused it)."""
    bundle = builders.failing_bundle(tmp_path / "failing", fail_on_sample=True)
    revision = RevisionFactory(solution=SolutionFactory(owner=owner, name="Broken"), version="1.0.0",
                               status=RevisionStatus.READY)
    kinds = {"model": ArtifactKind.MODEL, "metadata": ArtifactKind.METADATA, "schema": ArtifactKind.PROTO}
    for part, path in parts_of(bundle).items():
        Artifact.objects.create(revision=revision, kind=kinds[part], name=path.name, blob=storage.store_file(path)[0])
    return revision


@pytest.mark.django_db
def test_a_swap_that_fails_its_check_leaves_the_old_model_serving_and_says_why(
        owner, local_target, example_bundle, inline_jobs, tmp_path):
    iris = onboarded(owner, example_bundle, inline_jobs)
    deployment = services.deploy(revision=iris, target=local_target, user=owner)
    run(deployment.operations.get())

    failed = run(services.swap(deployment, broken_revision(owner, tmp_path), owner))

    assert failed.status == JobStatus.FAILED
    assert failed.error.startswith("the runner refused: the candidate model failed its sample for 'scale'")
    assert "negative input is not supported by this model" in failed.error
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.RUNNING and deployment.revision == iris
    assert post(deployment, "classify", builders.IRIS_SAMPLE) == {"species": 0}
    run(services.stop(deployment, owner))


@pytest.mark.django_db
def test_a_revision_still_onboarding_is_not_deployed(owner, local_target):
    revision = RevisionFactory(solution=SolutionFactory(owner=owner), status=RevisionStatus.ONBOARDING)
    with pytest.raises(services.DeploymentRefused, match="only a ready revision"):
        services.deploy(revision=revision, target=local_target, user=owner)
    assert not Deployment.objects.exists()


def test_a_server_that_does_not_know_the_runners_token_is_not_taken_for_the_runner():
    """A runner is started on a port chosen free a moment before; another process may have bound it since. The
    server answering there must accept the runner's own admin token, else it is not the runner."""
    import http.server
    import threading

    from deployment.backends import BackendError
    from deployment.backends.local import _check_ours

    class Stranger(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(401 if self.path == "/model/candidate" else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stranger)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(BackendError, match=r"another server answers on .* \(HTTP 401 to the runner.s own token\)"):
            _check_ours(f"http://127.0.0.1:{server.server_address[1]}", "the-runners-token")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
