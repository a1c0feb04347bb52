"""Licence profiles (`license.json`, Acumos licence profile 1.0.0 plus `spdx`, `licenseText` and
`licenseUrl`): the SPDX expression canonicalised, the ids in it, and the text's hash.

Pure functions, no models: onboarding's validation, the licence editor and licensing's receiver all
read a profile through `check`. SPDX expressions go through PyPA's `packaging.licenses` (PEP 639's
reference implementation, which ships the SPDX licence list); design section 2, "Licence profile"."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from jsonschema import Draft7Validator
from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression

from acumos_portal.api.refusals import Refused

MAX_TEXT_BYTES = 256 * 1024
ALLOWED_IDS = "an SPDX id from https://spdx.org/licenses/ or LicenseRef-<name> for a custom licence"

_OPERATORS = {"and", "or", "with"}
# An expression's words: ids, operators and parentheses. "+" stays with its id ("GPL-2.0+").
_TOKEN = re.compile(r"[()]|[^\s()]+")


@dataclass(frozen=True)
class ProfileSummary:
    """What a profile says, as licensing records it. `profile` is the file with `spdx` canonicalised."""

    keyword: str
    licence_name: str
    spdx: str  # canonical: the file's spdx, else its keyword when that is one SPDX id, else ""
    spdx_ids: list[str] = field(default_factory=list)
    rtu_required: bool = False
    text_sha256: str = ""  # "" when the profile carries no text
    profile: dict = field(default_factory=dict)


# ---------------------------------------------------------------- SPDX

def canonical_spdx(expression: str) -> str:
    """The one canonical form of an SPDX expression ("apache-2.0 or mit" -> "Apache-2.0 OR MIT").
    Raises Refused naming the id at fault and what is allowed instead."""
    try:
        return str(canonicalize_license_expression(expression))
    except InvalidLicenseExpression:
        raise Refused(_why_not_spdx(expression)) from None


def spdx_ids(expression: str) -> list[str]:
    """The licence ids in a canonical expression, in order and once each: no operators, no parentheses,
    no exceptions (the id after WITH is an exception, not a licence). LicenseRef- ids are kept."""
    ids, after_with = [], False
    for token in _TOKEN.findall(expression):
        if token in "()":
            continue
        if token.lower() in _OPERATORS:
            after_with = token.lower() == "with"
            continue
        if not after_with and token not in ids:
            ids.append(token)
        after_with = False
    return ids


def _why_not_spdx(expression: str) -> str:
    """packaging says "Unknown license: 'foo-1.0'" (lower-cased); say which id, as written, and what to use."""
    if not expression.strip():
        return f"the SPDX expression is empty: use {ALLOWED_IDS}"
    unknown, is_exception = _first_unknown(expression)
    if unknown is None:
        return (f"{expression!r} is not a valid SPDX expression: join ids with AND, OR or WITH "
                f"(e.g. \"Apache-2.0 OR MIT\"); each id is {ALLOWED_IDS}")
    if is_exception:
        return (f"unknown licence exception {unknown!r} after WITH in {expression!r}: use an exception "
                f"from https://spdx.org/licenses/exceptions-index.html")
    if unknown.lower().startswith("documentref-"):
        return f"{unknown!r} is not accepted (DocumentRef- points to another document): use {ALLOWED_IDS}"
    return f"unknown licence id {unknown!r} in the SPDX expression {expression!r}: use {ALLOWED_IDS}"


def _first_unknown(expression: str) -> tuple[str | None, bool]:
    """The first id packaging does not know, as the person wrote it, and whether it stood after WITH
    (an exception). (None, False) when every word is known and only the grammar is wrong."""
    after_with = False
    for token in _TOKEN.findall(expression):
        if token in "()":
            continue
        if token.lower() in _OPERATORS:
            after_with = token.lower() == "with"
            continue
        # An exception is only valid after a licence, so it is tried after one packaging knows.
        if not _known(f"MIT WITH {token}" if after_with else token):
            return token, after_with
        after_with = False
    return None, False


def _known(expression: str) -> bool:
    try:
        canonicalize_license_expression(expression)
    except InvalidLicenseExpression:
        return False
    return True


# ---------------------------------------------------------------- text

def text_sha256(text: str) -> str:
    """sha256 hex of the text as UTF-8 after NFC and CRLF/CR -> LF, so the same text hashes the same
    whichever editor or operating system saved it."""
    normal = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- the profile

# Acumos licence profile 1.0.0 with the optional spdx, licenseText and licenseUrl: onboarding validates
# uploads against it, and relicensing the profiles it is given.
SCHEMA = Path(__file__).parent / "schemas" / "license-profile.json"


@cache
def _schema_validator() -> Draft7Validator:
    return Draft7Validator(json.loads(SCHEMA.read_text()))


def schema_errors(profile) -> list[dict]:
    """Where `profile` breaks the schema: [{"field": "copyright.year", "message": ...}], in field order."""
    errors = sorted(_schema_validator().iter_errors(profile), key=lambda e: list(e.absolute_path))
    return [{"field": ".".join(str(p) for p in e.absolute_path) or "(root)", "message": e.message} for e in errors]


def check(profile: dict) -> ProfileSummary:
    """Checks what the schema cannot (the SPDX expression, the text's size in bytes) and sums the
    profile up. Raises Refused with `field` "license.json <property>"."""
    spdx = _profile_spdx(profile)
    text = _profile_text(profile)
    checked = dict(profile)
    if spdx and _given(profile.get("spdx")):
        checked["spdx"] = spdx
    return ProfileSummary(
        keyword=profile.get("keyword", ""),
        licence_name=profile.get("licenseName", ""),
        spdx=spdx,
        spdx_ids=spdx_ids(spdx),
        rtu_required=bool(profile.get("rtuRequired", False)),
        text_sha256=text_sha256(text) if text else "",
        profile=checked,
    )


def _given(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _profile_spdx(profile: dict) -> str:
    given = profile.get("spdx")
    if given is not None and not isinstance(given, str):
        raise Refused("license.json: spdx must be a string (an SPDX expression)", field="license.json spdx")
    if _given(given):
        try:
            return canonical_spdx(given)
        except Refused as exc:
            raise Refused(f"license.json: spdx: {exc.message}", field="license.json spdx") from None
    return _keyword_as_spdx(profile.get("keyword"))


def _keyword_as_spdx(keyword) -> str:
    """Acumos profiles put the SPDX-ish name in `keyword` ("Apache-2.0", "MIT"). When it is exactly one
    valid SPDX id it is taken as the expression; anything else ("Company-B-Proprietary", "Apache 2.0")
    infers nothing, rather than guessing a licence the owner did not name."""
    if not isinstance(keyword, str) or not keyword.strip():
        return ""
    try:
        canonical = str(canonicalize_license_expression(keyword))
    except InvalidLicenseExpression:
        return ""
    return canonical if spdx_ids(canonical) == [canonical] else ""


def _profile_text(profile: dict) -> str:
    text = profile.get("licenseText")
    if text is None:
        return ""
    if not isinstance(text, str):
        raise Refused("license.json: licenseText must be a string (the licence's text)",
                      field="license.json licenseText")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate ("\\ud800" in the JSON): not text, and it cannot be hashed
        raise Refused("license.json: licenseText is not valid Unicode (it has an unpaired surrogate)",
                      field="license.json licenseText") from None
    if size > MAX_TEXT_BYTES:
        raise Refused(f"license.json: licenseText is {size} bytes as UTF-8; at most {MAX_TEXT_BYTES} "
                      f"(256 KiB) are accepted: link a longer text with licenseUrl",
                      field="license.json licenseText")
    # PostgreSQL cannot store NUL in text or JSON, and no licence text needs one.
    if "\x00" in text:
        raise Refused("license.json: licenseText contains a NUL character (U+0000)", field="license.json licenseText")
    return text
