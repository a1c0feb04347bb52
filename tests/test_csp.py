"""The Content-Security-Policy (acumos_portal/settings.py, django-csp): on every answer, error answers too;
loosened for the API docs page alone (data: icons); the logo keeps its stricter policy of its own; and an
operator's ACUMOS_CSP_REPORT_ONLY sends it as Report-Only. That the pages work under it is shown in
Chromium (tests/e2e/test_pages_under_csp.py)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest
from django.core.files.base import ContentFile
from django.test import Client

from acumos_portal.accounts.models import SiteSettings

from .conftest import REPO

pytestmark = pytest.mark.django_db
POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; "
          "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


def directives(header: str) -> dict[str, str]:
    return {part.split()[0]: " ".join(part.split()[1:]) for part in header.split(";") if part.strip()}


@pytest.mark.parametrize("url", ["/", "/accounts/login/", "/admin/login/", "/onboarding/new/",
                                 "/models/00000000-0000-0000-0000-000000000000/", "/api/v1/solutions"])
def test_every_answer_carries_the_policy(client_for, owner, url):
    response = client_for(owner).get(url)
    assert directives(response["Content-Security-Policy"]) == directives(POLICY)


def test_an_answer_made_before_any_view_carries_it_too():
    response = Client(headers={"Host": "evil.example"}).get("/")  # refused by the host check, before the views
    assert response.status_code == 400 and directives(response["Content-Security-Policy"]) == directives(POLICY)


def test_the_api_docs_page_alone_may_show_data_images_and_has_nothing_inline(client_for, owner):
    page = client_for(owner).get("/api/v1/docs/")
    assert directives(page["Content-Security-Policy"]) == {**directives(POLICY), "img-src": "'self' data:"}
    html = page.content.decode()
    assert "<style" not in html and "<script>" not in html and 'src="/api/v1/docs/?script="' in html
    script = client_for(owner).get("/api/v1/docs/?script=")
    assert script["Content-Type"].startswith("application/javascript") and "SwaggerUIBundle(" in script.content.decode()
    assert '"validatorUrl": null' in script.content.decode()  # no badge from validator.swagger.io


def test_the_logo_keeps_its_own_stricter_policy(client_for, owner, artifact_storage):
    settings = SiteSettings.current()
    settings.logo.save("logo.svg", ContentFile(b'<svg xmlns="http://www.w3.org/2000/svg"/>'))
    response = client_for(owner).get("/site/logo/")
    assert response["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'; sandbox"


def settings_under(tmp_path, **env) -> dict:
    """The CSP settings a fresh process makes from this environment."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ACUMOS_CSP"))},
           "DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "ACUMOS_DATA_DIR": str(tmp_path), **env}
    code = ("import json; from acumos_portal import settings as s; print(json.dumps("
            "[s.CONTENT_SECURITY_POLICY, s.CONTENT_SECURITY_POLICY_REPORT_ONLY]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
                          check=True)
    enforced, report_only = json.loads(done.stdout.splitlines()[-1])
    return {"enforced": enforced, "report_only": report_only}


def test_an_operator_can_send_it_as_report_only_with_a_collector(tmp_path):
    default = settings_under(tmp_path)
    assert default["report_only"] is None and default["enforced"]["DIRECTIVES"]["script-src"] == ["'self'"]
    assert default["enforced"]["DIRECTIVES"]["report-uri"] is None
    trying = settings_under(tmp_path, ACUMOS_CSP_REPORT_ONLY="true", ACUMOS_CSP_REPORT_URI="/csp-reports/")
    assert trying["enforced"] is None and trying["report_only"]["DIRECTIVES"]["report-uri"] == "/csp-reports/"


def test_report_only_answers_report_and_enforce_nothing(settings, client_for, owner):
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = settings.CONTENT_SECURITY_POLICY
    settings.CONTENT_SECURITY_POLICY = None
    page = client_for(owner).get("/")
    assert "Content-Security-Policy" not in page
    assert directives(page["Content-Security-Policy-Report-Only"]) == directives(POLICY)
    docs = client_for(owner).get("/api/v1/docs/")
    assert directives(docs["Content-Security-Policy-Report-Only"])["img-src"] == "'self' data:"
