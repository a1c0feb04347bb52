"""A batch job on a revision, with no deployment: the worker runs the model in a sandbox of its own for the job's
time (deployment.backends.local.serving), and nothing of it is left afterwards. The minute's sweep leaves such a
sandbox while its worker lives and removes it once the worker is gone. And a URL input, read for real from an
HTTP server under an allowed prefix, through the address the guard checked."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import threading

import pytest
import requests

from acumos_portal import jobs, outbound, sandbox
from acumos_portal.api.refusals import Refused
from acumos_portal.choices import JobStatus
from batch import services
from deployment import services as deployment_services
from deployment.backends import local as local_runner

from ..deployment.conftest import onboarded
from .conftest import as_csv, iris_rows, predict_one, read_csv, run_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_send(monkeypatch):
    monkeypatch.setattr(jobs, "send", lambda *args, **kwargs: None)


@pytest.fixture
def repeated_revision(owner, repeated_bundle, inline_jobs):
    """The iris example whose fields are repeated, onboarded (its smoke test run) and ready: not deployed."""
    return onboarded(owner, repeated_bundle, inline_jobs)


def batch_sandboxes() -> list[str]:
    """The batch sandboxes and workspaces on this host now."""
    records = [r.name for r in sandbox.all_records(sandbox.records_dir()) if r.name.startswith("batch-")]
    root = sandbox.workspaces_dir()
    return records + [p.name for p in (root.iterdir() if root.exists() else []) if p.name.startswith("batch-")]


def test_a_job_on_a_revision_runs_it_in_a_sandbox_of_its_own_answering_as_a_deployment_does_and_leaves_nothing(
        owner, repeated_deployment, artifact_storage, no_send):
    from django.core.files.uploadedfile import SimpleUploadedFile

    revision = repeated_deployment.revision  # the reference: the same version, deployed

    rows = iris_rows(3_000, seed=11)
    upload = services.upload_input(user=owner, uploaded=SimpleUploadedFile("iris.csv", as_csv(rows)))
    assert not batch_sandboxes()

    job = run_job(services.start_job(user=owner, revision=revision, method="classify", id_column="id",
                                     input={"kind": "upload", "upload": str(upload.pk)}, shard_rows=1_000))

    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.deployment is None and (job.rows_predicted, job.rows_failed, job.shards_done) == (3_000, 0, 3)
    with (artifact_storage / job.predictions_key).open("rb") as handle:
        predictions = read_csv(handle.read())
    assert [p["id"] for p in predictions] == [r["id"] for r in rows]
    sample = range(0, 3_000, 30)
    assert [int(predictions[i]["species"]) for i in sample] == [
        predict_one(repeated_deployment, rows[i], repeated=True) for i in sample]
    assert not batch_sandboxes()  # the runner, its group, its record and its workspace are gone


def test_the_minute_sweep_keeps_a_batch_sandbox_while_its_worker_lives_and_removes_it_once_the_worker_is_gone(
        repeated_revision):
    with local_runner.serving(repeated_revision, "batch") as url:
        record = next(r for r in sandbox.all_records(sandbox.records_dir()) if r.name.startswith("batch-"))
        assert record.temporary and record.owner_pid == os.getpid()

        swept = deployment_services.sweep_sandboxes()
        assert not [line for line in swept if record.name in line]
        assert requests.get(f"{url}/v2/health/ready", timeout=5).status_code == 200

        # The worker that started it dies: its record names an owner that is gone (a process that has ended).
        ended = subprocess.Popen(["true"])
        ended.wait()
        path = sandbox.records_dir() / f"{record.name}.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "owner_pid": ended.pid}))

        swept = deployment_services.sweep_sandboxes()
        assert any(record.name in line and "the process that started it is gone" in line for line in swept), swept
        assert not record.alive()
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/v2/health/ready", timeout=5)
    assert not batch_sandboxes()


class _Files(http.server.BaseHTTPRequestHandler):
    """Serves `files` by path and notes each request's path and Host header."""

    files: dict[str, bytes] = {}
    seen: list[tuple[str, str]] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.seen.append((self.path, self.headers.get("Host", "")))
        body = self.files.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args):
        pass


@pytest.fixture
def data_server(monkeypatch):
    """An HTTP server on 127.0.0.1 standing in for a public data server: the one thing replaced is the guard's
    verdict on 127.0.0.1 (tests reach no other host); the name check, the prefix, the pinned connection and the
    request are the real ones."""
    judge = outbound._not_public
    monkeypatch.setattr(outbound, "_not_public", lambda address: "" if str(address) == "127.0.0.1" else judge(address))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    _Files.files, _Files.seen = {}, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], _Files
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_a_url_under_an_allowed_prefix_is_read_from_the_checked_address_and_its_checksum_held(
        owner, repeated_revision, artifact_storage, data_server, settings, no_send):
    port, files = data_server
    rows = iris_rows(500, seed=3)
    data = as_csv(rows)
    files.files["/exports/iris.csv"] = data
    settings.ACUMOS_BATCH_ALLOWED_URL_PREFIXES = [f"http://localhost:{port}/exports/"]
    url = f"http://localhost:{port}/exports/iris.csv"

    job = run_job(services.start_job(user=owner, revision=repeated_revision, method="classify", id_column="id",
                                     input={"kind": "url", "url": url, "sha256": hashlib.sha256(data).hexdigest(),
                                            "size": len(data)}))

    assert job.status == JobStatus.SUCCEEDED, job.error
    assert (job.rows_predicted, job.bytes_read, job.input_bytes) == (500, len(data), len(data))
    assert files.seen == [("/exports/iris.csv", f"localhost:{port}")]  # one read, with the name as the Host
    with (artifact_storage / job.predictions_key).open("rb") as handle:
        assert [p["id"] for p in read_csv(handle.read())] == [r["id"] for r in rows]

    wrong = run_job(services.start_job(user=owner, revision=repeated_revision, method="classify",
                                       input={"kind": "url", "url": url, "sha256": "0" * 64}))
    assert wrong.status == JobStatus.FAILED and "sha256" in wrong.error and not wrong.predictions_key


@pytest.mark.parametrize(("url", "why"), [
    ("http://localhost:{port}/exports/../private/keys.csv", "may not hold . or .. segments"),
    ("http://localhost:{port}/exports/%2e%2e/private/keys.csv", "may not hold . or .. segments"),
    ("http://localhost:{port}/exports/a%2f..%2f..%2fprivate/keys.csv", "encoded slashes"),
    ("http://localhost:{port}/exports/..;/private/keys.csv", "may not hold . or .. segments"),
    ("http://localhost:{port}/exports/%252e%252e/private/keys.csv", "encoded percent signs"),
    ("http://localhost:{port}/exports2/keys.csv", "is not under a prefix an admin allows"),
    ("https://localhost:{port}/exports/keys.csv", "is not under a prefix an admin allows"),
    ("http://localhost:1/exports/keys.csv", "is not under a prefix an admin allows"),
])
def test_a_url_that_only_looks_under_the_prefix_is_refused_before_anything_is_read(
        url, why, owner, repeated_revision, data_server, settings):
    port, files = data_server
    settings.ACUMOS_BATCH_ALLOWED_URL_PREFIXES = [f"http://localhost:{port}/exports"]

    with pytest.raises(Refused, match=why) as caught:
        services.start_job(user=owner, revision=repeated_revision, method="classify",
                           input={"kind": "url", "url": url.format(port=port)})
    assert caught.value.field == "input.url" and files.seen == []


def test_a_url_off_the_list_is_refused_before_its_name_is_looked_up(owner, repeated_revision, settings, monkeypatch):
    """Else the refusal would tell anyone what this portal's resolver knows of internal names."""
    looked_up = []
    monkeypatch.setattr(outbound, "_resolve", lambda host, port: looked_up.append(host) or [])
    settings.ACUMOS_BATCH_ALLOWED_URL_PREFIXES = ["https://data.example.org/exports/"]

    with pytest.raises(Refused, match="is not under a prefix an admin allows") as caught:
        services.start_job(user=owner, revision=repeated_revision, method="classify",
                           input={"kind": "url", "url": "http://db.internal/x.csv"})
    assert "resolve" not in str(caught.value) and looked_up == []
