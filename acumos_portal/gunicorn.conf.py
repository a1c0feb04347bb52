"""gunicorn's configuration for the portal, read by `make run` and the compose `web` service:
`gunicorn -c acumos_portal/gunicorn.conf.py acumos_portal.wsgi`. Every value comes from the environment
(.env.example, "portal: web server"); the defaults suit the embedded default on one machine.

Worker processes: one, unless a shared cache is configured. Without ACUMOS_CACHE_URL the Django cache
lives in each process, and so does what it holds: sessions are read from it (`cached_db`), and so are
roles and the generations that make cached pages forgotten. A second process would keep a signed-out
session or a removed role alive until its own copy expires, so more than one is refused. Threads
(gthread) share the one process's cache and serve requests side by side.

Background jobs without a broker run on thread pools inside each web process (acumos_portal/jobs.py).
Several processes are safe for them: every step is claimed as a database row with a conditional update,
so a step runs once whichever process got it. Each process has its own pools (ACUMOS_MODEL_THREADS each).

No `max_requests`: recycling a worker would end the jobs running on its threads. On a stop or a restart
a worker finishes its requests and jobs for up to ACUMOS_WEB_GRACEFUL_TIMEOUT seconds; what is still
running then is cut, and the reaper (run_schedule, `manage.py reap_jobs` at start) takes it up again."""

import os
import sys
from pathlib import Path

# The repository, so that the settings helpers and the app import from wherever gunicorn was started.
chdir = str(Path(__file__).resolve().parent.parent)
sys.path.insert(0, chdir)
from acumos_portal.env import env_bool, env_int, env_list, env_str  # noqa: E402

bind = env_list("ACUMOS_WEB_BIND", ["127.0.0.1:8000"])  # host:port, several comma-separated, or unix:<path>
worker_class = "gthread"  # a slow upload or page holds one thread, not a whole process
workers = env_int("ACUMOS_WEB_WORKERS", 1)
threads = env_int("ACUMOS_WEB_THREADS", 8)
# Seconds a worker may stay silent to the arbiter before it is killed. With gthread the worker's own
# loop answers while its threads work, so this bounds a stuck worker, not a long upload.
timeout = env_int("ACUMOS_WEB_TIMEOUT", 60)
graceful_timeout = env_int("ACUMOS_WEB_GRACEFUL_TIMEOUT", 60)
keepalive = 5  # behind a proxy that reuses connections (nginx `keepalive`); shorter than its idle timeout
max_requests = 0
accesslog = "-" if env_bool("ACUMOS_WEB_ACCESS_LOG", True) else None
errorlog = "-"
# Off: gunicorn's control socket sits at one path per user (~/.gunicorn/gunicorn.ctl), so a second portal
# on the host (a test, another port) would take it over; nothing here uses it.
control_socket_disable = True

if workers > 1 and not env_str("ACUMOS_CACHE_URL"):
    sys.exit(f"ACUMOS_WEB_WORKERS={workers} needs a shared cache: set ACUMOS_CACHE_URL (redis://...), or keep "
             "one worker process and raise ACUMOS_WEB_THREADS. Each process would otherwise keep its own "
             "sessions and roles (a signed-out session would still work in another process).")
if workers < 1 or threads < 1:
    sys.exit(f"ACUMOS_WEB_WORKERS and ACUMOS_WEB_THREADS must be at least 1 (got {workers} and {threads})")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "acumos_portal.settings")
