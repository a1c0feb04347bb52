"""acumos_portal/gunicorn.conf.py, as gunicorn reads it (`--print-config`): threaded workers, values from the
environment, no recycling of workers, and no second process without a shared cache."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO


def gunicorn_config(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ACUMOS_WEB_", "ACUMOS_CACHE_URL"))}
    config = REPO / "acumos_portal" / "gunicorn.conf.py"
    return subprocess.run([sys.executable, "-m", "gunicorn", "-c", str(config), "--print-config", "acumos_portal.wsgi"],
                          cwd="/", env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False)


def settings_of(done: subprocess.CompletedProcess) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return {name.strip(): value.strip() for name, value in pairs}


def test_it_defaults_to_one_threaded_process_on_loopback_and_never_recycles_workers():
    done = gunicorn_config()
    assert done.returncode == 0, done.stderr
    found = settings_of(done)
    assert found["bind"] == "['127.0.0.1:8000']"
    assert (found["worker_class"], found["workers"], found["threads"]) == ("gthread", "1", "8")
    assert found["max_requests"] == "0"  # recycling a worker would end the jobs on its threads
    assert found["graceful_timeout"] == "60"
    assert found["chdir"] == str(REPO)  # started from / here: the repository is found all the same


def test_it_takes_its_values_from_the_environment():
    done = gunicorn_config(ACUMOS_WEB_BIND="127.0.0.1:8123", ACUMOS_WEB_WORKERS="3", ACUMOS_WEB_THREADS="4",
                           ACUMOS_WEB_GRACEFUL_TIMEOUT="90", ACUMOS_CACHE_URL="redis://127.0.0.1:6379/1")
    assert done.returncode == 0, done.stderr
    found = settings_of(done)
    assert (found["bind"], found["workers"], found["threads"], found["graceful_timeout"]) == (
        "['127.0.0.1:8123']", "3", "4", "90")


def test_it_refuses_several_processes_without_a_shared_cache_saying_what_to_set():
    done = gunicorn_config(ACUMOS_WEB_WORKERS="2")
    assert done.returncode != 0
    assert "ACUMOS_WEB_WORKERS=2 needs a shared cache: set ACUMOS_CACHE_URL" in done.stderr
    assert "workers" not in settings_of(done)


def test_it_refuses_a_count_below_one():
    done = gunicorn_config(ACUMOS_WEB_THREADS="0")
    assert done.returncode != 0
    assert "ACUMOS_WEB_WORKERS and ACUMOS_WEB_THREADS must be at least 1" in done.stderr
