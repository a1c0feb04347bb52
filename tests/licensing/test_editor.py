"""The licence editor's pages (pages.views.licence_editor): the page per template for an owner, 403 and
404 for others, the htmx check (canonical SPDX, errors naming their fields, the text's hash), the
license.json download, saving as a new version, and the links to the editor."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from licensing import profiles, templates
from licensing.choices import ProfileSource
from licensing.models import LicenceProfile
from marketplace import services
from marketplace.models import Revision

from ..factories import UserFactory
from .test_relicensing import onboarded

pytestmark = pytest.mark.django_db


@pytest.fixture
def revision(owner):
    return onboarded(owner, name="Iris")


def editor_url(revision) -> str:
    return reverse("marketplace:licence-editor", args=[revision.pk])


def check_url(revision) -> str:
    return reverse("marketplace:licence-check", args=[revision.pk])


def fields(**changes) -> dict:
    """What the editor posts for an MIT licence of Acme's, with `changes`."""
    text = templates.render("mit", year=2025, company="Acme")["licenseText"]
    return {"template": "mit", "year": "2025", "company": "Acme", "spdx": "MIT", "text": text, "contact_name": "",
            "contact_email": "", "contact_url": "", "version": "1.1.0", **changes}


def field_value(page: str, name: str) -> str:
    found = re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', page)
    return found.group(1) if found else ""


# ---------------------------------------------------------------- the page

def test_an_owner_gets_the_editor_started_from_the_current_licence(client_for, owner, revision):
    page = client_for(owner).get(editor_url(revision))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Licence of Iris" in html and "Start from a template" in html
    assert field_value(html, "spdx") == "Apache-2.0"
    assert field_value(html, "company") == "Acme"
    assert field_value(html, "version") == "1.1.0"
    assert 'value="apache-2.0"' in html and "checked" in html
    assert "Save as version" in html and "Download license.json" in html
    assert page.context["checked"].ok


@pytest.mark.parametrize("key", list(templates.TEMPLATES))
def test_each_template_fills_in_its_expression_text_and_agreement(client_for, owner, revision, key):
    page = client_for(owner).post(editor_url(revision), {**fields(), "template": key, "action": "template",
                                                         "company": "Acme Labs"})
    assert page.status_code == 200
    form = page.context["form"]
    expected = templates.render(key, year=2025, company="Acme Labs")
    assert form.initial["spdx"] == expected["spdx"]
    assert form.initial["text"] == expected["licenseText"]
    assert form.initial["rtu_required"] is expected["rtuRequired"]
    assert (form.initial["company"], form.initial["year"], form.initial["version"]) == ("Acme Labs", 2025, "1.1.0")
    html = page.content.decode()
    assert field_value(html, "spdx") == expected["spdx"]
    if key == "proprietary":
        assert expected["spdx"] == "LicenseRef-Acme-Labs-Proprietary"
        assert templates.PLACEHOLDER_MARK in html  # in the text, and the check says to replace it
        assert not page.context["checked"].ok


def test_someone_who_sees_the_version_but_does_not_own_it_gets_403(client_for, other_user, owner, revision, catalogs):
    services.publish_directly(revision, catalogs["company"])
    assert client_for(other_user).get(reverse("marketplace:revision", args=[revision.pk])).status_code == 200
    page = client_for(other_user).get(editor_url(revision))
    assert page.status_code == 403
    assert "Only the owners of Iris may change its licence" in page.content.decode()
    assert client_for(other_user).post(editor_url(revision), {**fields(), "action": "save"}).status_code == 403
    assert client_for(other_user).post(check_url(revision), fields()).status_code == 403
    assert Revision.objects.filter(solution=revision.solution).count() == 1


def test_someone_who_may_not_see_the_version_gets_404(client_for, other_user, revision):
    assert client_for(other_user).get(editor_url(revision)).status_code == 404
    assert client_for(other_user).post(check_url(revision), fields()).status_code == 404


def test_a_visitor_is_asked_to_sign_in(client, revision):
    page = client.get(editor_url(revision))
    assert page.status_code == 302 and reverse("accounts:login") in page["Location"]


def test_an_imported_model_says_its_licence_is_changed_at_its_origin(client_for, owner):
    imported = onboarded(owner, name="Remote", imported_from="CN=peer.example")
    page = client_for(owner).get(editor_url(imported))
    assert page.status_code == 403
    assert "imported from CN=peer.example" in page.content.decode()


# ---------------------------------------------------------------- the check, as one types

def test_the_check_answers_the_canonical_expression_and_the_texts_hash(client_for, owner, revision):
    answer = client_for(owner).post(check_url(revision), fields(spdx="apache-2.0 or mit"), HTTP_HX_REQUEST="true")
    assert answer.status_code == 200
    html = answer.content.decode()
    assert "<code data-canonical-spdx>Apache-2.0 OR MIT</code>" in html
    assert "Ids: Apache-2.0, MIT" in html
    assert profiles.text_sha256(fields()["text"]) in html
    assert "Ready to save as version 1.1.0" in html
    assert '<span id="licence-save-version" hx-swap-oob="true">1.1.0</span>' in html
    assert "<html" not in html  # the panel alone


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"spdx": "MIT OR Foo-1.0"}, "SPDX expression", "unknown licence id &#x27;Foo-1.0&#x27;"),
    ({"company": ""}, "Copyright holder", "This field is required"),
    ({"year": "1066"}, "Copyright year", "greater than or equal to 1900"),
    ({"contact_email": "not an address"}, "Contact email", "valid email"),
    ({"version": "1.0.0"}, "New version", "Iris has a version 1.0.0 already"),
    ({"text": "x" * (profiles.MAX_TEXT_BYTES + 1)}, "Licence text", "at most 262144"),
])
def test_the_check_names_the_field_at_fault(client_for, owner, revision, changes, field, message):
    html = client_for(owner).post(check_url(revision), fields(**changes)).content.decode()
    assert f"<strong>{field}</strong>: " in html
    assert message in html
    assert "Ready to save" not in html


def test_the_check_refuses_the_proprietary_placeholder(client_for, owner, revision):
    draft = templates.render("proprietary", year=2025, company="Acme")
    html = client_for(owner).post(check_url(revision), fields(template="proprietary", spdx=draft["spdx"],
                                                              text=draft["licenseText"], rtu_required="on")).content
    assert b"<strong>Licence text</strong>: replace the paragraph" in html
    assert b"Needs an agreement" in html  # the profile itself is fine: what it says is shown


# ---------------------------------------------------------------- download and save

def test_the_license_json_downloads_as_it_would_be_saved(client_for, owner, revision):
    answer = client_for(owner).post(editor_url(revision), {**fields(spdx="mit"), "action": "download"})
    assert answer.status_code == 200
    assert answer["Content-Disposition"] == 'attachment; filename="license.json"'
    profile = json.loads(answer.content)
    assert (profile["spdx"], profile["keyword"]) == ("MIT", "MIT")
    assert profile["copyright"] == {"year": 2025, "company": "Acme"}
    assert Revision.objects.filter(solution=revision.solution).count() == 1  # nothing saved


def test_save_makes_the_version_and_opens_its_page(client_for, owner, revision):
    text = "Copyright (c) 2025 Acme. Use needs a signed agreement with Acme.\r\n"
    client = client_for(owner)
    answer = client.post(editor_url(revision), {
        **fields(template="proprietary", spdx="LicenseRef-Acme-Proprietary", text=text, rtu_required="on",
                 version="2.0.0"), "action": "save"})
    made = Revision.objects.get(solution=revision.solution, version="2.0.0")
    assert answer.status_code == 302 and answer["Location"] == reverse("marketplace:revision", args=[made.pk])
    noted = LicenceProfile.objects.get(revision=made)
    assert (noted.spdx, noted.rtu_required, noted.source) == ("LicenseRef-Acme-Proprietary", True, ProfileSource.EDITOR)
    assert noted.profile["licenseText"] == text.replace("\r\n", "\n")
    assert LicenceProfile.objects.get(revision=revision).spdx == "Apache-2.0"
    page = client.get(answer["Location"])
    assert "Version 2.0.0 is ready with the licence LicenseRef-Acme-Proprietary" in page.content.decode()


def test_save_refuses_the_proprietary_placeholder_unchanged(client_for, owner, revision):
    draft = templates.render("proprietary", year=2025, company="Acme")
    answer = client_for(owner).post(editor_url(revision), {
        **fields(template="proprietary", spdx=draft["spdx"], text=draft["licenseText"], rtu_required="on"),
        "action": "save"})
    assert answer.status_code == 400
    assert "replace the paragraph" in " ".join(answer.context["form"].errors["text"])
    assert Revision.objects.filter(solution=revision.solution).count() == 1


def test_save_refuses_a_duplicate_version_next_to_its_field(client_for, owner, revision):
    answer = client_for(owner).post(editor_url(revision), {**fields(version="1.0.0"), "action": "save"})
    assert answer.status_code == 400
    assert "Iris has a version 1.0.0 already" in " ".join(answer.context["form"].errors["version"])
    assert Revision.objects.filter(solution=revision.solution).count() == 1


def test_save_refuses_an_unknown_spdx_id_next_to_its_field(client_for, owner, revision):
    answer = client_for(owner).post(editor_url(revision), {**fields(spdx="Foo-1.0"), "action": "save"})
    assert answer.status_code == 400
    assert "unknown licence id 'Foo-1.0'" in " ".join(answer.context["form"].errors["spdx"])
    assert Revision.objects.filter(solution=revision.solution).count() == 1


# ---------------------------------------------------------------- the links to it

def test_the_version_page_links_to_the_editor_for_its_owners_only(client_for, owner, other_user, revision, catalogs):
    services.publish_directly(revision, catalogs["company"])
    link = f'href="{editor_url(revision)}"'
    assert link in client_for(owner).get(reverse("marketplace:revision", args=[revision.pk])).content.decode()
    assert link not in client_for(other_user).get(reverse("marketplace:revision", args=[revision.pk])).content.decode()


def test_the_upload_page_links_to_the_editor_without_a_version(client_for, owner):
    new = reverse("marketplace:licence-new")
    assert f'href="{new}"' in client_for(owner).get(reverse("onboarding:new")).content.decode()
    page = client_for(owner).get(new)
    assert page.status_code == 200
    assert "Write a licence" in page.content.decode() and "Save as version" not in page.content.decode()
    downloaded = client_for(owner).post(new, {**fields(), "version": "", "action": "download"})
    assert json.loads(downloaded.content)["spdx"] == "MIT"
    checked = client_for(owner).post(reverse("marketplace:licence-new-check"), fields(spdx="apache-2.0"))
    assert b"<code data-canonical-spdx>Apache-2.0</code>" in checked.content and b"Ready to download" in checked.content


def test_a_new_licence_starts_in_the_users_organisation(client_for):
    person = UserFactory(username="ada", organization="Analytical Engines Ltd")
    page = client_for(person).get(reverse("marketplace:licence-new"))
    assert field_value(page.content.decode(), "company") == "Analytical Engines Ltd"
