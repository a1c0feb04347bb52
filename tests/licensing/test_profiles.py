"""licensing.profiles and licensing.templates: SPDX expressions in one canonical form, the ids in them,
the text's hash, the size limit, and every editor template giving a profile onboarding accepts."""

from __future__ import annotations

import json
import unicodedata

import pytest

from acumos_portal.api.refusals import Refused
from licensing import profiles, templates
from onboarding import validation

ALLOWED = "https://spdx.org/licenses/ or LicenseRef-<name>"


def refusal(check, *args) -> Refused:
    with pytest.raises(Refused) as caught:
        check(*args)
    return caught.value


def minimal(**extra) -> dict:
    return {"keyword": "Example", "licenseName": "Example Licence", "copyright": {"year": 2024, "company": "A"},
            **extra}


# ---------------------------------------------------------------- SPDX

@pytest.mark.parametrize(("given", "canonical"), [
    ("mit", "MIT"),
    ("apache-2.0 or mit", "Apache-2.0 OR MIT"),
    ("(mit AND bsd-3-clause) or gpl-2.0-or-later with classpath-exception-2.0",
     "(MIT AND BSD-3-Clause) OR GPL-2.0-or-later WITH Classpath-exception-2.0"),
    ("cc-by-4.0", "CC-BY-4.0"),
    ("LicenseRef-Acme-Proprietary", "LicenseRef-Acme-Proprietary"),
    ("licenseref-Acme-Proprietary OR mit", "LicenseRef-Acme-Proprietary OR MIT"),
])
def test_an_expression_has_one_canonical_form(given, canonical):
    assert profiles.canonical_spdx(given) == canonical
    assert profiles.canonical_spdx(canonical) == canonical


@pytest.mark.parametrize("expression", ["Foo-1.0", "MIT OR Foo-1.0", "(Apache-2.0 AND Foo-1.0)"])
def test_an_unknown_id_is_refused_naming_it_as_written_and_saying_what_is_allowed(expression):
    message = refusal(profiles.canonical_spdx, expression).message
    assert "unknown licence id 'Foo-1.0'" in message
    assert ALLOWED in message


def test_an_unknown_exception_is_named_as_an_exception():
    message = refusal(profiles.canonical_spdx, "Apache-2.0 WITH No-Such-exception").message
    assert "unknown licence exception 'No-Such-exception' after WITH" in message


def test_a_documentref_is_refused():
    message = refusal(profiles.canonical_spdx, "DocumentRef-spdx-tool-1.2:LicenseRef-MIT-Style-2").message
    assert "'DocumentRef-spdx-tool-1.2:LicenseRef-MIT-Style-2' is not accepted" in message
    assert ALLOWED in message


@pytest.mark.parametrize("expression", ["MIT OR", "(MIT", "MIT Apache-2.0", "", "   "])
def test_a_malformed_or_empty_expression_is_refused(expression):
    assert ALLOWED in refusal(profiles.canonical_spdx, expression).message


@pytest.mark.parametrize(("expression", "ids"), [
    ("MIT", ["MIT"]),
    ("Apache-2.0 OR MIT", ["Apache-2.0", "MIT"]),
    ("(MIT AND BSD-3-Clause) OR GPL-2.0-or-later WITH Classpath-exception-2.0",
     ["MIT", "BSD-3-Clause", "GPL-2.0-or-later"]),
    ("LicenseRef-Acme-Proprietary OR (MIT AND MIT)", ["LicenseRef-Acme-Proprietary", "MIT"]),
    ("", []),
])
def test_the_ids_of_an_expression_leave_out_operators_parentheses_and_exceptions(expression, ids):
    assert profiles.spdx_ids(expression) == ids


# ---------------------------------------------------------------- text

def test_the_text_hash_is_the_same_whatever_the_line_ends():
    lf = "Copyright 2024 A\nAll rights reserved.\n"
    assert profiles.text_sha256(lf.replace("\n", "\r\n")) == profiles.text_sha256(lf)
    assert profiles.text_sha256(lf.replace("\n", "\r")) == profiles.text_sha256(lf)


def test_the_text_hash_is_the_same_whatever_the_unicode_normal_form():
    text = "Société Générale, Zürich"
    nfd = unicodedata.normalize("NFD", text)
    assert nfd != text
    assert profiles.text_sha256(nfd) == profiles.text_sha256(text)


def test_the_text_hash_is_sha256_of_the_utf8_text():
    assert profiles.text_sha256("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert profiles.text_sha256("a") != profiles.text_sha256("a\n")


def test_a_text_up_to_256_kib_is_accepted_and_one_byte_more_is_refused():
    assert profiles.check(minimal(licenseText="x" * profiles.MAX_TEXT_BYTES)).text_sha256
    refused = refusal(profiles.check, minimal(licenseText="x" * profiles.MAX_TEXT_BYTES + "x"))
    assert refused.field == "license.json licenseText"
    assert "262145 bytes" in refused.message


def test_the_text_limit_counts_utf8_bytes_not_characters():
    text = "é" * (profiles.MAX_TEXT_BYTES // 2 + 1)  # fewer characters than the limit, more bytes
    assert refusal(profiles.check, minimal(licenseText=text)).field == "license.json licenseText"


@pytest.mark.parametrize("text", ["NUL\x00", "lone \ud800 surrogate"], ids=["nul", "surrogate"])
def test_a_text_that_cannot_be_stored_or_hashed_is_refused(text):
    assert refusal(profiles.check, minimal(licenseText=text)).field == "license.json licenseText"


# ---------------------------------------------------------------- check

def test_check_sums_a_profile_up_with_its_spdx_canonical():
    profile = minimal(spdx="apache-2.0 or mit", rtuRequired=True, licenseText="terms\r\n")
    summary = profiles.check(profile)
    assert summary == profiles.ProfileSummary(
        keyword="Example", licence_name="Example Licence", spdx="Apache-2.0 OR MIT", spdx_ids=["Apache-2.0", "MIT"],
        rtu_required=True, text_sha256=profiles.text_sha256("terms\n"),
        profile={**profile, "spdx": "Apache-2.0 OR MIT"})
    assert profile["spdx"] == "apache-2.0 or mit"  # the caller's dict is left as it was


def test_a_profile_with_no_spdx_and_no_text_infers_nothing():
    summary = profiles.check(minimal())
    assert (summary.spdx, summary.spdx_ids, summary.text_sha256, summary.rtu_required) == ("", [], "", False)
    assert summary.profile == minimal()


@pytest.mark.parametrize(("keyword", "spdx"), [
    ("Apache-2.0", "Apache-2.0"), ("MIT", "MIT"), ("mit", "MIT"),
    ("Company-B-Proprietary", ""), ("Apache 2.0", ""), ("MIT OR Apache-2.0", ""),
])
def test_a_keyword_that_is_one_spdx_id_is_taken_as_the_spdx(keyword, spdx):
    summary = profiles.check(minimal(keyword=keyword))
    assert summary.spdx == spdx
    assert summary.spdx_ids == ([spdx] if spdx else [])
    assert "spdx" not in summary.profile  # the file is not rewritten: it said no spdx


def test_an_spdx_given_wins_over_the_keyword():
    assert profiles.check(minimal(keyword="MIT", spdx="Apache-2.0")).spdx == "Apache-2.0"


def test_a_bad_spdx_in_a_profile_is_refused_naming_the_property_and_the_id():
    refused = refusal(profiles.check, minimal(spdx="MIT OR Foo-1.0"))
    assert refused.field == "license.json spdx"
    assert refused.message.startswith("license.json: spdx: unknown licence id 'Foo-1.0'")


# ---------------------------------------------------------------- templates

def test_the_templates_are_offered_in_order():
    assert list(templates.TEMPLATES) == ["apache-2.0", "mit", "cc-by-4.0", "proprietary"]
    assert [t.rtu_required for t in templates.TEMPLATES.values()] == [False, False, False, True]


@pytest.mark.parametrize("key", list(templates.TEMPLATES))
def test_every_template_renders_a_profile_onboarding_accepts(key, tmp_path):
    profile = templates.render(key, year=2026, company="Acme Models Ltd", contact_name="Licensing desk",
                               contact_email="licensing@acme.example", contact_url="https://acme.example")
    path = tmp_path / "license.json"
    path.write_text(json.dumps(profile))
    assert validation.validate_licence(path) == profile
    summary = profiles.check(profile)
    assert summary.spdx == profile["spdx"]
    assert summary.text_sha256 == profiles.text_sha256(profile["licenseText"])
    assert summary.rtu_required is (key == "proprietary")
    assert profile["contact"] == {"name": "Licensing desk", "URL": "https://acme.example",
                                  "email": "licensing@acme.example"}


@pytest.mark.parametrize(("key", "starts", "ends"), [
    ("apache-2.0", "\n                                 Apache License\n", "limitations under the License.\n"),
    ("cc-by-4.0", "Attribution 4.0 International\n", "Creative Commons may be contacted at creativecommons.org.\n"),
])
def test_the_public_texts_ship_whole(key, starts, ends):
    text = templates.render(key, year=2026, company="A")["licenseText"]
    assert text.startswith(starts)
    assert text.endswith(ends)
    assert len(text.encode()) > 10_000


def test_the_mit_text_names_the_year_and_the_company():
    text = templates.render("mit", year=2026, company="Acme Models Ltd")["licenseText"]
    assert text.startswith("MIT License\n\nCopyright (c) 2026 Acme Models Ltd\n\nPermission is hereby granted")
    assert "[year]" not in text
    assert "[fullname]" not in text


def test_the_proprietary_template_needs_an_agreement_and_a_text_written_by_the_owner():
    profile = templates.render("proprietary", year=2026, company="Société Générale & Co.")
    assert profile["spdx"] == "LicenseRef-Societe-Generale-Co-Proprietary"
    assert profile["keyword"] == "Societe-Generale-Co-Proprietary"
    assert profile["rtuRequired"] is True
    assert templates.still_placeholder(profile["licenseText"])
    assert "Société Générale & Co." in profile["licenseText"]
    assert "licenseUrl" not in profile


def test_a_company_with_no_latin_letters_still_makes_a_valid_id():
    assert templates.render("proprietary", year=2026, company="株式会社")["spdx"] == "LicenseRef-Licensor-Proprietary"


def test_the_editor_overrides_the_template():
    profile = templates.render("apache-2.0", year=2026, company="A", spdx="Apache-2.0 OR MIT", text="Our terms.",
                               rtu_required=True)
    assert profile["spdx"] == "Apache-2.0 OR MIT"
    assert profile["licenseText"] == "Our terms."
    assert profile["rtuRequired"] is True


@pytest.mark.parametrize(("key", "company", "field"), [("gpl", "A", "template"), ("mit", "  ", "company")])
def test_an_unknown_template_or_no_company_is_refused(key, company, field):
    with pytest.raises(Refused) as caught:
        templates.render(key, year=2026, company=company)
    assert caught.value.field == field
