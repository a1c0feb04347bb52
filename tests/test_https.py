"""Behind a TLS proxy (README, "Security"): the settings that DJANGO_HTTPS and its companions turn on
make `check --deploy` clean, send cookies over TLS only, redirect plain http and send HSTS; without
them `check --deploy` says what is missing."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
from django.test import Client

from .conftest import REPO

PRODUCTION = {"DJANGO_HTTPS": "true", "DJANGO_TRUST_X_FORWARDED_PROTO": "true",
              "DJANGO_HSTS_INCLUDE_SUBDOMAINS": "true", "DJANGO_HSTS_PRELOAD": "true",
              "DJANGO_ALLOWED_HOSTS": "models.example.org"}


def check_deploy(tmp_path, **extra) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
           "DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "ACUMOS_DATA_DIR": str(tmp_path), **extra}
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def test_check_deploy_is_clean_under_the_documented_production_environment(tmp_path):
    assert check_deploy(tmp_path / "plain").returncode != 0  # what it says without them
    done = check_deploy(tmp_path / "production", **PRODUCTION)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


@pytest.mark.django_db
def test_behind_the_tls_proxy_http_is_redirected_and_https_gets_hsts_and_secure_cookies(settings, owner):
    settings.SECURE_SSL_REDIRECT = settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    plain = Client().get("/accounts/login/")
    assert plain.status_code == 301 and plain["Location"] == "https://testserver/accounts/login/"

    proxied = Client(headers={"X-Forwarded-Proto": "https"})
    page = proxied.get("/accounts/login/")
    assert page.status_code == 200 and page["Strict-Transport-Security"] == "max-age=31536000"
    assert page.cookies["csrftoken"]["secure"] is True
    proxied.force_login(owner)
    assert proxied.cookies["sessionid"]["secure"] is True
