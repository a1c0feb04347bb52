"""GET /healthz (acumos_portal/health.py): 200 while the database answers, 503 when it does not; answered
before the host check and the HTTPS redirect, so a probe can call a process by its address over http."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import REPO
from tests.servers import free_port


@pytest.mark.django_db
def test_it_answers_ok_by_address_over_plain_http_on_a_production_site(client, settings):
    settings.ALLOWED_HOSTS = ["portal.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    answer = client.get("/healthz", HTTP_HOST="127.0.0.1:8000")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "database": "ok"}
    assert "no-cache" in answer["Cache-Control"]
    # Every other path keeps both checks.
    assert client.get("/accounts/login/", HTTP_HOST="127.0.0.1:8000").status_code == 400
    assert client.get("/accounts/login/", HTTP_HOST="portal.example.com").status_code == 301


@pytest.mark.django_db
def test_it_is_only_that_path(client):
    assert client.get("/healthz/extra").status_code == 404
    assert client.post("/healthz").status_code != 200


def test_it_answers_503_when_the_database_does_not(tmp_path):
    """A real server (gunicorn, as make run starts it) whose PostgreSQL address has nothing listening."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACUMOS_", "DATABASE_", "CELERY_"))}
    env.update(DATABASE_URL=f"postgres://nobody@127.0.0.1:{free_port()}/none", ACUMOS_DATA_DIR=str(tmp_path),
               ACUMOS_WEB_ACCESS_LOG="false")
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "acumos_portal/gunicorn.conf.py", "--bind",
                               f"127.0.0.1:{port}", "acumos_portal.wsgi"], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        answer = None
        deadline = time.monotonic() + 60
        while answer is None and time.monotonic() < deadline and server.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
            time.sleep(0.2)
        assert answer is not None, f"the server did not answer: {server.poll()}"
        assert answer.status_code == 503
        assert answer.json() == {"status": "unavailable", "database": "not answering"}
    finally:
        server.terminate()
        server.wait(timeout=30)
