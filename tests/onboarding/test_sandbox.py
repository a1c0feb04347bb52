"""Hostile models in the smoke test, for real: each is uploaded by an ordinary user through the API,
and its smoke test runs in the real sandbox (bubblewrap, cgroup limits). What the model reports
comes back in the smoke-test log its uploader reads: it must hold nothing of the portal's, and the
onboarding ends with a clear message or with a model that served harmlessly, leaving nothing running."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid

import pytest
from django.conf import settings as django_settings

from acumos_portal import sandbox
from onboarding.choices import JobStatus

from ..bundles import parts_of
from ..conftest import REPO
from ..hostile import Canaries, Listener, assert_reached_nothing, hostile_bundle, processes_with, reported
from .test_api import JOBS, uploads


@pytest.fixture
def canaries(tmp_path, artifact_storage, monkeypatch, other_user, client_for, bundle_parts, inline_jobs):
    """Secrets where a model would look: a key file in the data directory, another user's stored
    model, the portal's environment, and services on the host's loopback (PostgreSQL, Redis, and a
    listener standing in for the portal)."""
    planted = Canaries()
    name = uuid.uuid4().hex  # the paths a model is told about hold no secret themselves
    key_file = django_settings.DATA_DIR / f"secret-key-{name}"
    key_file.write_text(json.dumps({"ok": False, "error": planted.secret}))  # what a report would show
    monkeypatch.setenv("CANARY_PORTAL_ENV", planted.secret)
    with inline_jobs():  # another user's model, stored in the artifact store
        assert client_for(other_user).post(JOBS, uploads(bundle_parts)).status_code == 201
    others = sorted(str(p) for p in artifact_storage.rglob("*") if p.is_file())
    assert others, "the other user's artifacts are stored"
    portal = Listener()
    planted.files = [str(key_file), *others[:2], str(REPO / "acumos_portal" / "settings.py"), "/etc/shadow",
                     str(sandbox.records_dir())]
    planted.ports = [("127.0.0.1", 5432), ("127.0.0.1", 6379), ("::1", 6379)]
    portal.plant(planted)
    planted.writes = [str(django_settings.DATA_DIR / f"written-{name}"), str(tmp_path / f"written-{name}")]
    yield planted
    portal.close()
    assert portal.accepted == 0, "a model connected to the portal's port"
    key_file.unlink()


def upload(user, client_for, bundle, inline_jobs) -> dict:
    with inline_jobs():
        created = client_for(user).post(JOBS, uploads(parts_of(bundle)))
    assert created.status_code == 201, created.content
    job = client_for(user).get(created.json()["url"]).json()  # what the uploader reads
    return {**job, "smoke": next(s for s in job["steps"] if s["name"] == "smoke_test")}


def nothing_left(canaries: Canaries) -> None:
    deadline = time.monotonic() + 5
    while processes_with(canaries.marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(canaries.marker) == []
    assert not sandbox.all_records(sandbox.records_dir())
    workspaces = sandbox.workspaces_dir()
    assert not workspaces.exists() or not list(workspaces.iterdir())


@pytest.mark.django_db
def test_a_model_that_looks_around_in_its_smoke_test_reaches_nothing(owner, client_for, canaries, inline_jobs,
                                                                      tmp_path):
    job = upload(owner, client_for, hostile_bundle(tmp_path / "probe", canaries, "look"), inline_jobs)

    assert job["status"] == JobStatus.SUCCEEDED, job["error"]  # it served, harmlessly
    report = reported(job["smoke"]["log"])
    assert_reached_nothing(report, canaries)
    readable = [names for names in report["environ"].values() if isinstance(names, list)]  # bwrap's: refused
    assert readable and all(set(names) <= {"PWD", "PATH", "LANG", "HOME", "TMPDIR", "PYTHONDONTWRITEBYTECODE",
                                           "PYTHONUNBUFFERED", "USER", "LOGNAME", "OMP_NUM_THREADS"}
                            for names in readable), report["environ"]
    nothing_left(canaries)


@pytest.mark.django_db
def test_a_fork_bomb_is_held_to_the_task_limit_and_leaves_nothing(owner, client_for, canaries, inline_jobs, tmp_path,
                                                                   settings):
    settings.ACUMOS_SANDBOX_TASKS = 48
    job = upload(owner, client_for, hostile_bundle(tmp_path / "bomb", canaries, "fork"), inline_jobs)

    report = reported(job["smoke"]["log"]) if job["status"] == JobStatus.SUCCEEDED else {}
    assert job["status"] == JobStatus.SUCCEEDED, job["error"]
    assert 0 < report["forked"] < 48 and report["error"] == "BlockingIOError"
    nothing_left(canaries)


@pytest.mark.django_db
def test_a_detached_child_does_not_outlive_the_smoke_test(owner, client_for, canaries, inline_jobs, tmp_path):
    job = upload(owner, client_for, hostile_bundle(tmp_path / "detach", canaries, "detach"), inline_jobs)

    assert job["status"] == JobStatus.SUCCEEDED, job["error"]
    assert reported(job["smoke"]["log"]) == {"detached": True}
    nothing_left(canaries)


@pytest.mark.django_db
def test_a_model_past_its_memory_limit_is_stopped_and_says_so(owner, client_for, canaries, inline_jobs, tmp_path,
                                                               settings):
    settings.ACUMOS_SANDBOX_MEMORY_MB = 160
    job = upload(owner, client_for, hostile_bundle(tmp_path / "memory", canaries, "memory"), inline_jobs)

    assert job["status"] == JobStatus.FAILED and job["revision"] is None
    assert job["smoke"]["error"] == ("the model was stopped: it used more than its memory limit of 160 MiB "
                                     "(ACUMOS_SANDBOX_MEMORY_MB)")
    nothing_left(canaries)


@pytest.mark.django_db
def test_a_smoke_test_past_its_time_bound_is_stopped_with_that_reason(owner, client_for, canaries, inline_jobs,
                                                                       tmp_path, settings):
    settings.ACUMOS_SMOKE_TIMEOUT = 3
    started = time.monotonic()
    job = upload(owner, client_for, hostile_bundle(tmp_path / "slow", canaries, "sleep"), inline_jobs)

    assert job["status"] == JobStatus.FAILED and time.monotonic() - started < 20
    assert job["smoke"]["error"].startswith("the smoke test did not finish within 3 s (ACUMOS_SMOKE_TIMEOUT)")
    nothing_left(canaries)


@pytest.mark.django_db
def test_without_bubblewrap_the_smoke_test_fails_and_says_what_to_install(owner, client_for, bundle_parts,
                                                                         inline_jobs, monkeypatch, tmp_path):
    bin_without_bwrap = tmp_path / "bin"
    bin_without_bwrap.mkdir()
    for tool in ("python3", "sleep"):
        if shutil.which(tool):
            os.symlink(shutil.which(tool), bin_without_bwrap / tool)
    monkeypatch.setenv("PATH", str(bin_without_bwrap))
    with inline_jobs():
        created = client_for(owner).post(JOBS, uploads(bundle_parts)).json()
    job = client_for(owner).get(created["url"]).json()

    assert job["status"] == JobStatus.FAILED and job["revision"] is None
    assert "apt-get install -y bubblewrap passt" in job["error"] and "bwrap" in job["error"]
    assert "the smoke test could not run" in job["error"]


@pytest.mark.django_db
@pytest.mark.parametrize("trick", ["fifo", "link"])
def test_a_report_that_is_a_fifo_or_a_link_to_a_host_file_is_not_read(owner, client_for, canaries, inline_jobs,
                                                                     tmp_path, trick):
    canaries.files = [canaries.files[0]]  # the planted key file: a link to it must not be followed
    job = upload(owner, client_for, hostile_bundle(tmp_path / trick, canaries, trick), inline_jobs)

    assert job["status"] == JobStatus.FAILED
    assert job["smoke"]["error"].startswith("the model's process ended without a result (exit status 3)")
    assert canaries.secret not in str(job)
    nothing_left(canaries)
