"""The licence editor's templates: a starting `license.json` for Apache-2.0, MIT, CC-BY-4.0 or a
proprietary licence that needs an agreement (design section 6, "Licence editor").

`render` fills a template in; it does not check what the caller overrides (an SPDX expression, a
text): pass its result to `licensing.profiles.check`, as every other profile is. The public texts
ship in `licensing/texts/`, verbatim from their stewards."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from acumos_portal.api.refusals import Refused

TEXTS = Path(__file__).parent / "texts"
ACUMOS_LICENCE_SCHEMA = "https://artifacts.acumos.org/schema/artifacts/license-profile/1.0.0/schema.json"
SOFTWARE_TYPE = "Machine Learning Model"

# The proprietary template's text is this paragraph until the owner writes the terms; the editor can
# refuse to save a text that still contains the mark.
PLACEHOLDER_MARK = "[REPLACE THIS PARAGRAPH WITH YOUR LICENCE TERMS]"
PROPRIETARY_TEXT = (PLACEHOLDER_MARK + "\n\n"
                    "Copyright (c) {year} {company}. All rights reserved.\n\n"
                    "This model is licensed, not sold. Any use of it needs a written agreement with {company}.\n")


@dataclass(frozen=True)
class Template:
    key: str
    label: str
    spdx: str  # for "proprietary" a pattern: the id is made from the company's name
    rtu_required: bool
    licence_name: str
    url: str = ""
    text_file: str = ""  # in licensing/texts/; "" when the owner writes the text


TEMPLATES: dict[str, Template] = {t.key: t for t in (
    Template("apache-2.0", "Apache License 2.0", "Apache-2.0", False, "Apache License 2.0",
             "https://www.apache.org/licenses/LICENSE-2.0", "Apache-2.0.txt"),
    Template("mit", "MIT License", "MIT", False, "MIT License", "https://opensource.org/licenses/MIT", "MIT.txt"),
    Template("cc-by-4.0", "Creative Commons Attribution 4.0", "CC-BY-4.0", False,
             "Creative Commons Attribution 4.0 International",
             "https://creativecommons.org/licenses/by/4.0/legalcode", "CC-BY-4.0.txt"),
    Template("proprietary", "Proprietary, agreement needed", "LicenseRef-<Company>-Proprietary", True,
             "{company} Proprietary License"),
)}


def render(template_key: str, *, year: int, company: str, contact_name: str = "", contact_email: str = "",
           contact_url: str = "", spdx: str | None = None, text: str | None = None,
           rtu_required: bool | None = None) -> dict:
    """A `license.json` (Acumos licence profile 1.0.0 with spdx, licenseText and licenseUrl) from a
    template; `spdx`, `text` and `rtu_required` override the template's when given."""
    template = TEMPLATES.get(template_key)
    if template is None:
        raise Refused(f"unknown licence template {template_key!r}: choose one of {', '.join(TEMPLATES)}",
                      field="template")
    company = (company or "").strip()
    if not company:
        raise Refused("the copyright holder (company or name) is required", field="company")
    proprietary = template.key == "proprietary"
    profile = {
        "$schema": ACUMOS_LICENCE_SCHEMA,
        "keyword": proprietary_keyword(company) if proprietary else template.spdx,
        "licenseName": template.licence_name.format(company=company)[:200],
        "copyright": {"year": year, "company": company, **({"suffix": "All Rights Reserved"} if proprietary else {})},
        "softwareType": SOFTWARE_TYPE,
        "companyName": company,
        "rtuRequired": template.rtu_required if rtu_required is None else rtu_required,
        "spdx": spdx if spdx is not None else (proprietary_spdx(company) if proprietary else template.spdx),
        "licenseText": text if text is not None else _template_text(template, year=year, company=company),
    }
    contact = {k: v for k, v in (("name", contact_name), ("URL", contact_url), ("email", contact_email)) if v}
    if contact:
        profile["contact"] = contact
    if template.url:
        profile["licenseUrl"] = template.url
    return profile


def proprietary_spdx(company: str) -> str:
    """`LicenseRef-<Company>-Proprietary`, the company reduced to what an SPDX id may hold."""
    return f"LicenseRef-{proprietary_keyword(company)}"


def proprietary_keyword(company: str) -> str:
    return f"{_id_part(company)}-Proprietary"


def still_placeholder(text: str) -> bool:
    """True while the proprietary template's paragraph has not been replaced by the owner's terms."""
    return PLACEHOLDER_MARK in text


def _id_part(company: str) -> str:
    """An SPDX idstring holds [A-Za-z0-9.-]: accents are dropped ("Société" -> "Societe"), every other
    run of characters becomes one "-". Kept short so the keyword stays within the schema's 100."""
    ascii_only = unicodedata.normalize("NFKD", company).encode("ascii", "ignore").decode("ascii")
    part = re.sub(r"[^A-Za-z0-9.]+", "-", ascii_only).strip("-.")[:64].strip("-.")
    return part or "Licensor"  # a name with no Latin letter at all ("株式会社")


def _template_text(template: Template, *, year: int, company: str) -> str:
    if not template.text_file:
        return PROPRIETARY_TEXT.format(year=year, company=company)
    text = _licence_text(template.text_file)
    # The MIT text's copyright line is part of the licence; the other texts are used as published.
    return text.replace("[year]", str(year)).replace("[fullname]", company) if template.key == "mit" else text


@cache
def _licence_text(name: str) -> str:
    """A public licence text as shipped in licensing/texts/ (read once per process)."""
    return (TEXTS / name).read_text(encoding="utf-8")
