"""One settings module; every value comes from the environment (see .env.example) with a default
that makes `make run` work on a fresh machine: SQLite, local files, jobs on background threads."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF

from acumos_portal.env import env_bool, env_int, env_list, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("ACUMOS_DATA_DIR", str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True)  # SQLite and local artifacts live here by default

SECRET_KEY = env_secret("DJANGO_SECRET_KEY", DATA_DIR / "secret_key")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
# Served over HTTPS (behind a TLS proxy in production: README, "Security"): cookies only over TLS, plain
# http redirected, HSTS. Each can be set on its own; DJANGO_HTTPS gives them all their production value.
# The proxy header is trusted only when set: a client could send it itself to a portal reached directly.
DJANGO_HTTPS = env_bool("DJANGO_HTTPS", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", DJANGO_HTTPS)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", DJANGO_HTTPS)
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000 if DJANGO_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
if env_bool("DJANGO_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Content-Security-Policy on every answer (django-csp; README, "Security: the pages"): scripts, styles, images,
# fonts and requests from this origin only, nothing inline, no eval, no plugins, no framing, forms post here.
# The API docs page loosens images (data: icons) for itself (acumos_portal/api/urls.py); the logo view
# sends a stricter policy of its own. ACUMOS_CSP_REPORT_ONLY=true sends it as Report-Only (the browser
# reports and blocks nothing), for an operator trying a change of theirs.
_CSP = {"DIRECTIVES": {
    "default-src": [SELF], "script-src": [SELF], "style-src": [SELF], "img-src": [SELF], "font-src": [SELF],
    "connect-src": [SELF], "object-src": [NONE], "base-uri": [SELF], "form-action": [SELF],
    "frame-ancestors": [NONE],
    # Where browsers send violation reports (an operator's collector), if anywhere.
    "report-uri": env_str("ACUMOS_CSP_REPORT_URI") or None,
}}
ACUMOS_CSP_REPORT_ONLY = env_bool("ACUMOS_CSP_REPORT_ONLY", False)
CONTENT_SECURITY_POLICY = None if ACUMOS_CSP_REPORT_ONLY else _CSP
CONTENT_SECURITY_POLICY_REPORT_ONLY = _CSP if ACUMOS_CSP_REPORT_ONLY else None
SITE_NAME = env_str("ACUMOS_SITE_NAME", "Acumos Marketplace")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "axes",  # sign-in lockout (AUTHENTICATION_BACKENDS below)
    "acumos_portal",  # the floor: the job shape (jobs.py), reap_jobs and run_schedule
    "acumos_portal.accounts",
    "marketplace",
    "licensing",  # licence profiles, agreements, the policy every use asks, usage, entitlements
    "onboarding",
    "images",
    "deployment",
    "federation",  # peer marketplaces: the peer API, signed manifests, subscriptions
    "monitoring",  # live deployments' figures over time, alert rules and alerts
    "discovery",  # models that meet a requirement, and the chosen one deployed in one call
    "batch",  # batch inference: whole files predicted on a deployment, in shards, resumable
    "pages",  # last: the screens that assemble the apps above
]

MIDDLEWARE = [
    "acumos_portal.health.health_check_middleware",  # /healthz, before the host check and HTTPS redirect
    "django.middleware.security.SecurityMiddleware",
    # Static files answered here, before sessions and the rest (whitenoise: compressed, cached, from STATIC_ROOT).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",  # early: error answers (a bad Host's 400 too) carry the policy
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out sign-in page into the lockout page (429)
]

ROOT_URLCONF = "acumos_portal.urls"
WSGI_APPLICATION = "acumos_portal.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
# How long the browse page's result count and filter counts are reused (0: never). Any change to
# the catalog starts afresh; the cache is per process unless ACUMOS_CACHE_URL (redis://) is set.
ACUMOS_SUMMARY_SECONDS = env_int("ACUMOS_SUMMARY_SECONDS", 300)
# A search ranked by relevance scores the most recently updated matches, this many (the other
# orders list every match): see marketplace.selectors.search_solutions.
ACUMOS_RANK_WINDOW = env_int("ACUMOS_RANK_WINDOW", 500)
# PostgreSQL full-text search; off (or on SQLite), every word is matched as plain text.
ACUMOS_FULL_TEXT = env_bool("ACUMOS_FULL_TEXT", True)
# How long a model page's shared part (tags, ratings, comments, favorites) is reused at most (0: never);
# any change to it starts afresh, so this bounds only how long an author's new name takes to show.
ACUMOS_PAGE_SECONDS = env_int("ACUMOS_PAGE_SECONDS", 300)
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": env_str(
    "ACUMOS_CACHE_URL", "")}} if env_str("ACUMOS_CACHE_URL", "") else {
    # Room for every session, view counter and Try it count of a busy site: at LocMem's default of 300
    # entries, a flood of anonymous views evicted the rest (a per-minute limit among them).
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "OPTIONS": {"MAX_ENTRIES": 100_000}}}
# Sessions are written to the database and read from the cache: a signed-in page asks one query less.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
# Whether anyone may make an account at /accounts/signup/ (as a Data Scientist).
ACUMOS_SIGNUP_OPEN = env_bool("ACUMOS_SIGNUP_OPEN", True)
# Accounts (README, "Security: accounts"). Who the client is (acumos_portal/accounts/clientip.py), for the
# sign-in lockout, the API throttles and the sign-up limit: REMOTE_ADDR, or, when that is one of these proxies
# (addresses or networks, e.g. 10.0.0.5,172.18.0.0/16), the nearest X-Forwarded-For address that is not one of
# them. Empty: X-Forwarded-For is never read (anyone can write it).
ACUMOS_TRUSTED_PROXIES = env_list("ACUMOS_TRUSTED_PROXIES", [])
for _proxy in ACUMOS_TRUSTED_PROXIES:
    import ipaddress

    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"ACUMOS_TRUSTED_PROXIES: {_proxy!r} is not an address or network") from None
# Every way to sign in (the form, the admin, /onboarding-app/v2/auth, API tokens, <login>:<token>, JWTs) goes
# through authenticate(), where django-axes refuses a locked-out client and counts failures in the database
# (one count for every process and host). Two bounds: failures for one account from one address (a person's
# typos; an attacker's lockout does not lock the account out elsewhere), and failures from one address for
# any accounts (password spraying). Each failure in a lockout starts the wait again.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "acumos_portal.accounts.backends.ApiCredentialBackend",
]
AXES_HANDLER = "acumos_portal.accounts.lockout.LockoutHandler"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]  # this order: LockoutHandler reads it
AXES_FAILURE_LIMIT = env_int("ACUMOS_SIGNIN_FAILURES", 5)  # per account and address
ACUMOS_SIGNIN_FAILURES_PER_ADDRESS = env_int("ACUMOS_SIGNIN_FAILURES_PER_ADDRESS", 50)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("ACUMOS_SIGNIN_LOCKOUT_MINUTES", 15))
AXES_CLIENT_IP_CALLABLE = "acumos_portal.accounts.clientip.client_ip"
AXES_USERNAME_CALLABLE = "acumos_portal.accounts.lockout.username_key"
AXES_LOCKOUT_CALLABLE = "acumos_portal.accounts.lockout.lockout_page"
AXES_RESET_ON_SUCCESS = False  # axes would clear the address's count too; LockoutHandler clears the account's
# Its log lines show the client's address (for an operator's fail2ban) but not the username typed: people type
# their password there by mistake.
AXES_SENSITIVE_PARAMETERS = ["username"]
# Sign-up: at most this many requests from one address per hour (each sends an email), and how long the
# email's link to finish the account works.
ACUMOS_SIGNUP_PER_ADDRESS_HOUR = env_int("ACUMOS_SIGNUP_PER_ADDRESS_HOUR", 5)
ACUMOS_SIGNUP_LINK_HOURS = env_int("ACUMOS_SIGNUP_LINK_HOURS", 24)
PASSWORD_RESET_TIMEOUT = env_int("ACUMOS_PASSWORD_RESET_HOURS", 3) * 3600
# Email (sign-up links, password resets): Django's backends; "console" prints each mail on the server's
# output (make run), "smtp" sends it through EMAIL_HOST, or a backend's dotted path.
_EMAIL_BACKENDS = {"console": "django.core.mail.backends.console.EmailBackend",
                   "smtp": "django.core.mail.backends.smtp.EmailBackend"}
_EMAIL_BACKEND = env_str("ACUMOS_EMAIL_BACKEND") or "console"
EMAIL_BACKEND = _EMAIL_BACKENDS.get(_EMAIL_BACKEND, _EMAIL_BACKEND)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Acumos Marketplace <noreply@localhost>")
LOGIN_REDIRECT_URL = "marketplace:my-models"
LOGOUT_REDIRECT_URL = "accounts:login"

TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [BASE_DIR / "templates"],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
        "pages.context_processors.site",
    ]},
}]

DATABASES = {"default": dj_database_url.parse(
    env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}"), conn_max_age=60)}
# How long a SQLite writer waits for another's write lock before "database is locked", which then
# answers 503 with Retry-After (acumos_portal.capacity) or retries the pipeline step.
ACUMOS_SQLITE_BUSY_SECONDS = env_int("ACUMOS_SQLITE_BUSY_SECONDS", 30)
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Background job threads write while requests read. WAL: readers never wait for the writer, nor it
    # for them (pages and job polls keep answering while a job writes); synchronous=NORMAL is safe
    # with WAL (a power cut may lose the last commits, never corrupts) and spares an fsync per commit.
    # A writer waits for the lock instead of failing, and takes it when its transaction begins (a
    # deferred one that reads, then writes, fails at once with "database is locked" instead of waiting).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=ACUMOS_SQLITE_BUSY_SECONDS, transaction_mode="IMMEDIATE",
        init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Artifacts: local files by default; any S3-compatible store with ACUMOS_STORAGE=s3.
ACUMOS_STORAGE = env_str("ACUMOS_STORAGE", "local")
MEDIA_ROOT = DATA_DIR / "artifacts"
if ACUMOS_STORAGE == "s3":
    _default_storage = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": env_str("AWS_STORAGE_BUCKET_NAME", "acumos-artifacts"),
        "endpoint_url": env_str("AWS_S3_ENDPOINT_URL") or None,
        "region_name": env_str("AWS_S3_REGION_NAME", "us-east-1"),
        "file_overwrite": True,  # keys are content addresses: the same key means the same bytes
        "default_acl": None,
    }}
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage",
                        "OPTIONS": {"location": str(MEDIA_ROOT)}}
STORAGES = {
    "default": _default_storage,
    # collectstatic (make run, the image) also writes a gzip copy of each file, which whitenoise sends when
    # the browser takes it. Not the manifest storage: names stay plain, so pages render before any collectstatic.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Where collectstatic puts the files whitenoise serves; an image collects them into itself (Dockerfile).
STATIC_ROOT = Path(env_str("ACUMOS_STATIC_ROOT", str(DATA_DIR / "static")))

# Uploads stream to temporary files, never whole into memory; the limit is enforced while streaming.
ACUMOS_MAX_UPLOAD_BYTES = env_int("ACUMOS_MAX_UPLOAD_BYTES", 2 << 30)
ACUMOS_MAX_PACKAGE_BYTES = env_int("ACUMOS_MAX_PACKAGE_BYTES", 4 << 30)
FILE_UPLOAD_HANDLERS = ["acumos_portal.uploads.LimitedTemporaryFileUploadHandler"]
FILE_UPLOAD_TEMP_DIR = env_str("ACUMOS_UPLOAD_TEMP_DIR") or None
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 << 20
CSRF_FAILURE_VIEW = "acumos_portal.uploads.csrf_failure"

# Background jobs: Celery when a broker is configured, background threads otherwise.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Monitoring (monitoring.services): each round reads every live deployment's runners, this many at once, into
# samples kept this many days.
ACUMOS_MONITORING_INTERVAL_SECONDS = env_int("ACUMOS_MONITORING_INTERVAL_SECONDS", 60)
ACUMOS_MONITORING_RETENTION_DAYS = env_int("ACUMOS_MONITORING_RETENTION_DAYS", 14)
ACUMOS_MONITORING_CONCURRENCY = env_int("ACUMOS_MONITORING_CONCURRENCY", 16)
# The length of a runner's statistics window, for every runner the portal starts (RUNNER_STATS_WINDOW_SECONDS):
# drift is judged on the last two windows against the first full one, so shorter windows see a shift sooner
# (and judge it on fewer requests).
ACUMOS_RUNNER_STATS_WINDOW_SECONDS = env_int("ACUMOS_RUNNER_STATS_WINDOW_SECONDS", 60)
# Retraining hooks (monitoring.hooks): an event not answered 2xx is tried again after BACKOFF seconds, 4 times
# longer each time, up to MAX_ATTEMPTS attempts of TIMEOUT seconds each; the onboarding token it carries lives
# TOKEN_HOURS; PORTAL_URL is where the receiver reaches this portal (the event's push_url).
ACUMOS_HOOK_MAX_ATTEMPTS = env_int("ACUMOS_HOOK_MAX_ATTEMPTS", 6)
ACUMOS_HOOK_BACKOFF_SECONDS = env_int("ACUMOS_HOOK_BACKOFF_SECONDS", 30)
ACUMOS_HOOK_TIMEOUT = env_int("ACUMOS_HOOK_TIMEOUT", 10)
ACUMOS_HOOK_TOKEN_HOURS = env_int("ACUMOS_HOOK_TOKEN_HOURS", 24)
ACUMOS_HOOK_PORTAL_URL = env_str("ACUMOS_HOOK_PORTAL_URL", "http://127.0.0.1:8000")
# Batch jobs (batch.services): the largest input (bytes); URL inputs only under an admin's prefixes (none: no URL
# input); S3 inputs and outputs only in the user's folder (<prefix><username>/) under these key prefixes of the
# portal's store (admins: anywhere under them); rows per shard (default and
# most a job may ask); rows per request where the model takes many; requests in flight; seconds per request; the
# largest answer read from a runner.
ACUMOS_BATCH_MAX_INPUT_BYTES = env_int("ACUMOS_BATCH_MAX_INPUT_BYTES", 20 << 30)
ACUMOS_BATCH_ALLOWED_URL_PREFIXES = env_list("ACUMOS_BATCH_ALLOWED_URL_PREFIXES", [])
ACUMOS_BATCH_S3_PREFIXES = env_list("ACUMOS_BATCH_S3_PREFIXES", ["batch-data/"])
ACUMOS_BATCH_SHARD_ROWS = env_int("ACUMOS_BATCH_SHARD_ROWS", 10_000)
ACUMOS_BATCH_MAX_SHARD_ROWS = env_int("ACUMOS_BATCH_MAX_SHARD_ROWS", 200_000)
ACUMOS_BATCH_REQUEST_ROWS = env_int("ACUMOS_BATCH_REQUEST_ROWS", 2_000)
ACUMOS_BATCH_CONCURRENCY = env_int("ACUMOS_BATCH_CONCURRENCY", 4)
ACUMOS_BATCH_TIMEOUT = env_int("ACUMOS_BATCH_TIMEOUT", 120)
ACUMOS_BATCH_ANSWER_LIMIT = env_int("ACUMOS_BATCH_ANSWER_LIMIT", 256 << 20)
CELERY_BEAT_SCHEDULE = {
    "reap-jobs": {"task": "acumos_portal.reap_jobs", "schedule": 60.0},
    "check-deployments": {"task": "deployment.check_deployments", "schedule": 30.0},
    "decommission-due-deployments": {"task": "deployment.decommission_due", "schedule": 60.0},
    "sweep-sandboxes": {"task": "deployment.sweep_sandboxes", "schedule": 60.0},
    # Each subscription runs on its own interval; this looks for the ones that are due.
    "federation-runs": {"task": "federation.run_due", "schedule": 60.0},
    "monitoring-collect": {"task": "monitoring.collect", "schedule": float(ACUMOS_MONITORING_INTERVAL_SECONDS)},
    "monitoring-prune": {"task": "monitoring.prune", "schedule": 3600.0},
}
ACUMOS_JOB_STALE_SECONDS = env_int("ACUMOS_JOB_STALE_SECONDS", 600)
ACUMOS_JOB_MAX_ATTEMPTS = env_int("ACUMOS_JOB_MAX_ATTEMPTS", 3)
# Fairness: one user runs at most this many models at once (smoke tests); the next waits, holding no
# worker, and is tried again every ACUMOS_MODEL_RETRY_SECONDS. Model steps get workers of their own:
# ACUMOS_MODEL_THREADS threads without a broker, the Celery queue ACUMOS_MODEL_QUEUE if set.
ACUMOS_MODEL_STEPS_PER_USER = env_int("ACUMOS_MODEL_STEPS_PER_USER", 1)
ACUMOS_MODEL_RETRY_SECONDS = env_int("ACUMOS_MODEL_RETRY_SECONDS", 2)
ACUMOS_MODEL_THREADS = env_int("ACUMOS_MODEL_THREADS", 2)
ACUMOS_MODEL_QUEUE = env_str("ACUMOS_MODEL_QUEUE")
ACUMOS_SMOKE_TEST = env_bool("ACUMOS_SMOKE_TEST", True)
ACUMOS_SMOKE_TIMEOUT = env_int("ACUMOS_SMOKE_TIMEOUT", 120)  # wall-clock seconds; the reason given when hit

# The sandbox every model process on this host runs in (acumos_portal/sandbox.py): the smoke test
# and each runner of the local target. Records of live sandboxes and smoke-test workspaces live
# under ACUMOS_SANDBOX_DIR. Limits hold per sandbox: memory and tasks (processes and threads) for
# all its processes together, open files and file size per process, CPU time for a smoke test.
ACUMOS_SANDBOX_DIR = Path(env_str("ACUMOS_SANDBOX_DIR", str(DATA_DIR / "sandboxes")))
ACUMOS_SANDBOX_MEMORY_MB = env_int("ACUMOS_SANDBOX_MEMORY_MB", 2048)
ACUMOS_SANDBOX_TASKS = env_int("ACUMOS_SANDBOX_TASKS", 256)
ACUMOS_SANDBOX_OPEN_FILES = env_int("ACUMOS_SANDBOX_OPEN_FILES", 1024)
ACUMOS_SANDBOX_FILE_MB = env_int("ACUMOS_SANDBOX_FILE_MB", 1024)
ACUMOS_SANDBOX_TMP_MB = env_int("ACUMOS_SANDBOX_TMP_MB", 256)  # its private /tmp (memory, within its limit)
ACUMOS_SANDBOX_CPU_SECONDS = env_int("ACUMOS_SANDBOX_CPU_SECONDS", 120)  # a smoke test's CPU time
# How a local runner is kept off the network: "landlock" (the host's network, the kernel lets it bind
# its port only and connect nowhere; Linux 6.12+), "pasta" (a namespace of its own, its port relayed),
# or "auto" (Landlock where the kernel has it).
ACUMOS_SANDBOX_NETWORK = env_str("ACUMOS_SANDBOX_NETWORK", "auto")
# A local runner's CPU share (cores; 0: no cap); a local target's `cpus` option wins.
ACUMOS_SANDBOX_CPUS = float(env_str("ACUMOS_SANDBOX_CPUS", "1") or 0)

# Model images (see README, "Model images"). No builder by default: `make run` needs no Docker.
#   docker: the Docker engine at DOCKER_HOST, through the docker SDK;
#   daemonless: appends the model layer to ACUMOS_IMAGE_BASE through the registry's HTTP API.
# A base image alone is enough: the daemonless builder needs nothing else.
ACUMOS_IMAGE_BASE = env_str("ACUMOS_IMAGE_BASE")  # the runner base image, e.g. registry:5000/acumos/runner-base:tag
ACUMOS_IMAGE_BUILDER = env_str("ACUMOS_IMAGE_BUILDER") or ("daemonless" if ACUMOS_IMAGE_BASE else "")
ACUMOS_IMAGE_REGISTRY = env_str("ACUMOS_IMAGE_REGISTRY")  # where model images go; default: the base's registry
ACUMOS_IMAGE_REPOSITORY = env_str("ACUMOS_IMAGE_REPOSITORY", "acumos/models")
ACUMOS_REGISTRY_USERNAME = env_str("ACUMOS_REGISTRY_USERNAME")
ACUMOS_REGISTRY_PASSWORD = env_str("ACUMOS_REGISTRY_PASSWORD")
# Plain http to the registry: empty means only for a loopback address (127.0.0.1, localhost).
ACUMOS_REGISTRY_INSECURE = env_bool("ACUMOS_REGISTRY_INSECURE", False) if env_str("ACUMOS_REGISTRY_INSECURE") else None
ACUMOS_IMAGE_PYTHON = env_str("ACUMOS_IMAGE_PYTHON", "3.11")  # the base image's Python, for wheels
ACUMOS_IMAGE_GLIBC = env_str("ACUMOS_IMAGE_GLIBC", "2.36")  # the base image's glibc (bookworm), for wheels
ACUMOS_IMAGE_ARCH = env_str("ACUMOS_IMAGE_ARCH", "x86_64")
ACUMOS_WHEELHOUSE = Path(env_str("ACUMOS_WHEELHOUSE", str(DATA_DIR / "wheelhouse")))
ACUMOS_WHEELHOUSE_ONLY = env_bool("ACUMOS_WHEELHOUSE_ONLY", False)  # air-gapped: never ask an index
ACUMOS_IMAGE_CACHE = Path(env_str("ACUMOS_IMAGE_CACHE", str(DATA_DIR / "image-cache")))
ACUMOS_IMAGE_BUILD_TIMEOUT = env_int("ACUMOS_IMAGE_BUILD_TIMEOUT", 900)

# Deployments: where the local backend keeps each deployment's bundle, state and log.
ACUMOS_DEPLOYMENTS_DIR = Path(env_str("ACUMOS_DEPLOYMENTS_DIR", str(DATA_DIR / "deployments")))
# Decommissioning is two steps: a stopped deployment is kept (restartable) this long, then destroyed.
ACUMOS_DEPLOYMENT_GRACE_SECONDS = env_int("ACUMOS_DEPLOYMENT_GRACE_SECONDS", 24 * 3600)
# Try it on a model page sends to a deployment its owner shared: this many requests a minute per user.
ACUMOS_SHARED_TRY_PER_MINUTE = env_int("ACUMOS_SHARED_TRY_PER_MINUTE", 30)
# ... and at most this many of them wait for a runner at once in a web process (its threads serve the rest).
ACUMOS_SHARED_TRY_CONCURRENT = env_int("ACUMOS_SHARED_TRY_CONCURRENT", 4)
# Per-user quotas (deployment.selectors, onboarding.services): live deployments (pending, running
# or not answering; operators and admins are exempt, they run the site) and onboarding jobs in flight
# (pending or running; everyone), and unfinished batch jobs (batch.services; everyone). Each is at least 1:
# there is no "unlimited", set a large number.
ACUMOS_QUOTA_LIVE_DEPLOYMENTS = env_int("ACUMOS_QUOTA_LIVE_DEPLOYMENTS", 3)
ACUMOS_QUOTA_ONBOARDING_JOBS = env_int("ACUMOS_QUOTA_ONBOARDING_JOBS", 2)
ACUMOS_QUOTA_BATCH_JOBS = env_int("ACUMOS_QUOTA_BATCH_JOBS", 3)
for _quota in ("ACUMOS_QUOTA_LIVE_DEPLOYMENTS", "ACUMOS_QUOTA_ONBOARDING_JOBS", "ACUMOS_QUOTA_BATCH_JOBS"):
    if globals()[_quota] < 1:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"{_quota} must be at least 1 (a quota has no 'unlimited': set a large number)")

# Federation (README, "Federation"): this instance's identity (its certificate and key, made by
# `manage.py federation_identity`) lives in ACUMOS_FEDERATION_DIR. Peers reach the peer API only
# through a TLS terminator that verifies their client certificate (nginx: `manage.py
# federation_terminator`); it proves it is the terminator with ACUMOS_FEDERATION_TERMINATOR_SECRET,
# and the portal believes the certificate it forwards only with that secret.
ACUMOS_FEDERATION_DIR = Path(env_str("ACUMOS_FEDERATION_DIR", str(DATA_DIR / "federation")))
ACUMOS_FEDERATION_TERMINATOR_SECRET = env_secret("ACUMOS_FEDERATION_TERMINATOR_SECRET",
                                                 ACUMOS_FEDERATION_DIR / "terminator-secret")
# Where peers reach this instance's peer API (the terminator's address): what ping answers, and what
# the terminator listens on (ACUMOS_FEDERATION_BIND, host:port).
ACUMOS_FEDERATION_URL = env_str("ACUMOS_FEDERATION_URL", "https://127.0.0.1:9443")
ACUMOS_FEDERATION_BIND = env_str("ACUMOS_FEDERATION_BIND", "127.0.0.1:9443")
# Unknown certificates may ask to become peers (an admin approves them): off by default, as in Acumos.
ACUMOS_FEDERATION_REGISTRATION = env_bool("ACUMOS_FEDERATION_REGISTRATION", False)
# Calls to peers: seconds to connect and between bytes; how many times a failed item is tried on
# later runs before it waits for an admin; how often the schedule looks for subscriptions that are due.
ACUMOS_FEDERATION_TIMEOUT = env_int("ACUMOS_FEDERATION_TIMEOUT", 30)
ACUMOS_FEDERATION_ITEM_ATTEMPTS = env_int("ACUMOS_FEDERATION_ITEM_ATTEMPTS", 5)
ACUMOS_FEDERATION_MAX_ARTIFACT_MB = env_int("ACUMOS_FEDERATION_MAX_ARTIFACT_MB", 4096)
# The longest one run may take, whatever a peer does (a peer trickling bytes must not hold a worker).
ACUMOS_FEDERATION_RUN_SECONDS = env_int("ACUMOS_FEDERATION_RUN_SECONDS", 3600)

# Licensing (README, "Licences and rights to use"): runners of a model whose licence needs an agreement
# meter predictions against entitlements this site signs with an Ed25519 key of its own (not the
# federation identity's), kept in ACUMOS_LICENSING_KEY_FILE and made on first use. An entitlement lives
# at most ACUMOS_ENTITLEMENT_TTL seconds (a revocation the portal cannot deliver ends by then) and
# reserves at most ACUMOS_ENTITLEMENT_BLOCK predictions of a limited agreement at a time.
ACUMOS_LICENSING_KEY_FILE = Path(env_str("ACUMOS_LICENSING_KEY_FILE",
                                         str(DATA_DIR / "licensing" / "entitlement-key.pem")))
ACUMOS_ENTITLEMENT_TTL = env_int("ACUMOS_ENTITLEMENT_TTL", 24 * 3600)
ACUMOS_ENTITLEMENT_BLOCK = env_int("ACUMOS_ENTITLEMENT_BLOCK", 10000)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "acumos_portal.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "acumos_portal.api.pagination.Pagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "acumos_portal.api.errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {"password": env_str("ACUMOS_PASSWORD_RATE", "20/minute")},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Acumos Marketplace API",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No badge from validator.swagger.io (it would send the schema's address there; the CSP refuses it anyway).
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # Three models have a `status`; name each enum after its choices class.
    "ENUM_NAME_OVERRIDES": {"RevisionStatusEnum": "marketplace.choices.RevisionStatus",
                            "JobStatusEnum": "acumos_portal.choices.JobStatus",
                            "StepStatusEnum": "onboarding.choices.StepStatus",
                            "NotificationKindEnum": "marketplace.choices.NotificationKind",
                            "AgreementSourceEnum": "licensing.choices.AgreementSource",
                            "ProfileSourceEnum": "licensing.choices.ProfileSource",
                            "UsageSourceEnum": "licensing.choices.UsageSource",
                            "OnboardingSourceEnum": "onboarding.choices.Source",
                            "AlertRuleKindEnum": "monitoring.choices.RuleKind"},
}

AUTH_PASSWORD_VALIDATORS = [  # Django's four: length, like the user's name or email, common, all digits
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# English only (no translations ship): without i18n, every number and date a template prints skips
# a per-value lookup of the active language (a tenth of a model page's drawing time).
USE_I18N = False
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("ACUMOS_LOG_LEVEL", "INFO")},
    # django-axes says several INFO lines per sign-in; its warnings (each failure, each lockout) stay.
    # Celery's tracer says a line per task that succeeded (every step, every status check): noise on
    # the embedded default's terminal (`make run`), where a task that fails still logs its error. A
    # Celery worker's log keeps them: there they are the record of what ran.
    "loggers": {"axes": {"level": "WARNING"},
                **({} if CELERY_BROKER_URL else {"celery.app.trace": {"level": "WARNING"}})},
}
