"""The one refusal: what was asked cannot be done, said for a person.

Services raise a subclass of `Refused` (a revision not ready, a closed site, a quota reached, a bad
bundle); every API maps it once (acumos_portal.api.errors) and the pages show its message. Pure
Python: services import it without pulling in DRF."""

from __future__ import annotations


class Refused(Exception):
    """`field` names the input the refusal is about, if any; `details` is for API callers.
    `status` and `code` are what the API answers. A plain refusal is about one input: it answers as an
    invalid field does (400 "invalid", its message under `field`). Subclasses with a code of their own
    (a closed site, a quota, a bad bundle) answer their status, code, message and details."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, field: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details or {}
