"""Test environment for the portal, loaded as a pytest plugin (`-p portal_test_env` in pyproject)
because pytest-django reads the settings before any conftest.py runs.

Tests use PostgreSQL with a database name of this run's own (pytest-django creates test_<name> and
drops it at the end, so two runs at once never share one), a throwaway data dir and a fixed key."""

import os
import tempfile

os.environ.setdefault("DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/acumos_{os.getpid()}")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("ACUMOS_DATA_DIR", tempfile.mkdtemp(prefix="acumos-test-data-"))
os.environ.pop("CELERY_BROKER_URL", None)
# whitenoise reads STATIC_ROOT when the app starts; tests find static files without collectstatic.
os.makedirs(os.environ.get("ACUMOS_STATIC_ROOT") or os.path.join(os.environ["ACUMOS_DATA_DIR"], "static"),
            exist_ok=True)
