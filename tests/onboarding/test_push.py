"""`python -m runner_image push` against a live portal (pytest-django's live_server): a real API
token, the Acumos push, then the pipeline followed step by step. The pipeline runs on the
portal's background threads in this process, so the data is committed (transactional_db)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from django.db import connections

from acumos_portal import jobs
from marketplace.models import Blob, Revision, Solution
from onboarding.choices import STEPS, JobStatus
from onboarding.models import OnboardingJob

from ..bundles import builders

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def job_threads_close_their_connections(monkeypatch):
    """The portal's job threads (acumos_portal.jobs) run the pipeline as in production, but close their
    database connection after each task, so none is left open when the test database is dropped."""
    run = jobs._run_in_thread

    def run_and_close(task, args):
        try:
            run(task, args)
        finally:
            connections.close_all()

    monkeypatch.setattr(jobs, "_run_in_thread", run_and_close)


def push(live_server, bundle, *args: str, token: str | None = None, env: dict | None = None, timeout: float = 300):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ACUMOS_")}
    environment.update(env or {})
    command = [sys.executable, "-m", "runner_image", "push", str(bundle), "--url", live_server.url,
               "--interval", "0.2", *args]
    if token is not None:
        command += ["--token", token]
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=timeout, check=False)


def test_it_pushes_a_bundle_and_follows_it_to_a_ready_revision(live_server, owner, api_token, example_bundle):
    result = push(live_server, example_bundle, token=f"{owner.username}:{api_token(owner)}")
    assert result.returncode == 0, result.stdout + result.stderr
    job = OnboardingJob.objects.get()
    revision = Revision.objects.get()
    assert job.status == JobStatus.SUCCEEDED and revision.is_ready and revision.pk == job.revision_uuid
    out = result.stdout
    for label, value in (("solutionId", revision.solution_id), ("revisionId", revision.pk), ("version", "1.0.0"),
                         ("taskId", job.pk)):
        assert f"{label}:" in out and str(value) in out
    lines = out.splitlines()
    step_lines = [next(i for i, line in enumerate(lines) if line.strip().startswith(name)) for name, _ in STEPS]
    assert step_lines == sorted(step_lines), out  # each step printed once it finished, in order
    assert "skipped" in lines[step_lines[[name for name, _ in STEPS].index("build_image")]]
    assert f"is ready (revision {revision.pk})" in out
    assert result.stderr == ""


def test_the_same_bundle_goes_again_as_the_next_or_a_chosen_version(live_server, owner, api_token,
                                                                    example_bundle):
    """The README's walk pushes the example after onboarding it on the web: a second push of a bundle
    whose metadata.json names version 1.0.0 is refused, and goes through with --next-version or
    --version, leaving the bundle's own metadata.json as it was."""
    token = f"{owner.username}:{api_token(owner)}"
    metadata = (example_bundle / "metadata.json").read_bytes()
    assert push(live_server, example_bundle, token=token).returncode == 0

    again = push(live_server, example_bundle, token=token)
    assert again.returncode == 2 and "version 1.0.0 of 'IrisClassifier' already exists" in again.stderr
    assert "--next-version, or --version <version>" in again.stderr

    following = push(live_server, example_bundle, "--next-version", token=token)
    chosen = push(live_server, example_bundle, "--version", "2.0.0-rc1", token=token)
    assert following.returncode == 0 and chosen.returncode == 0, following.stderr + chosen.stderr
    assert sorted(Revision.objects.values_list("version", flat=True)) == ["1.0.0", "1.1.0", "2.0.0-rc1"]
    assert (example_bundle / "metadata.json").read_bytes() == metadata


def test_it_takes_the_token_from_the_environment_and_can_skip_waiting(live_server, owner, api_token, example_bundle):
    result = push(live_server, example_bundle, "--no-wait", env={"ACUMOS_TOKEN": api_token(owner)})
    assert result.returncode == 0, result.stdout + result.stderr
    job = OnboardingJob.objects.get()
    assert f"taskId:     {job.pk}" in result.stdout and f"/api/v1/onboarding/jobs/{job.pk}" in result.stdout
    assert "validate_metadata" not in result.stdout
    _eventually(lambda: OnboardingJob.objects.get().done)


def test_it_exits_1_with_the_failing_steps_error(live_server, owner, api_token, tmp_path):
    bundle = builders.failing_bundle(tmp_path / "failing", fail_on_sample=True)
    result = push(live_server, bundle, token=api_token(owner))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "failed at step smoke_test" in result.stderr and "failed its sample" in result.stderr
    assert "smoke_test" in result.stdout and "failed" in result.stdout
    _eventually(lambda: not (Revision.objects.exists() or Solution.objects.exists() or Blob.objects.exists()))


def test_it_exits_2_with_the_servers_message_for_a_bad_bundle(live_server, owner, api_token, example_bundle,
                                                              tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(example_bundle, bundle)
    metadata = json.loads((bundle / "metadata.json").read_text())
    metadata["methods"]["explain"] = metadata["methods"]["classify"]
    (bundle / "metadata.json").write_text(json.dumps(metadata))
    result = push(live_server, bundle, token=api_token(owner))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "answered 400" in result.stderr and "method 'explain' is not an rpc" in result.stderr
    assert "methods.explain" in result.stderr
    assert not OnboardingJob.objects.exists()


@pytest.mark.parametrize(("token", "needle"), [
    pytest.param("acu_wrong", "answered 401: Unauthorized User", id="wrong-token"),
    pytest.param(None, "no token", id="no-token"),
])
def test_it_exits_2_without_the_right_token(live_server, owner, example_bundle, token, needle):
    result = push(live_server, example_bundle, token=token)
    assert result.returncode == 2, result.stdout + result.stderr
    assert needle in result.stderr
    assert not OnboardingJob.objects.exists()


def test_it_exits_2_for_a_bundle_dir_without_the_files(live_server, owner, api_token, tmp_path):
    (tmp_path / "metadata.json").write_text("{}")
    result = push(live_server, tmp_path, token=api_token(owner))
    assert result.returncode == 2
    assert "lacks modelpackage.zip or model.zip, model.proto" in result.stderr


def test_it_imports_nothing_from_django(tmp_path):
    code = "import sys, runner_image.cli, runner_image.push; print(sorted(m for m in sys.modules if 'django' in m))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert result.stdout.strip() == "[]"


def _eventually(condition, timeout: float = 120) -> None:
    """The portal's background threads go on after the CLI has exited (the rest of the pipeline after
    --no-wait; undoing a failed job): wait for them before the tables are emptied."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the portal's background work did not finish")
        time.sleep(0.2)
