"""Errors that carry their HTTP status, so every layer can raise and the server maps once.

The JSON shape matches the portal's: {"error": {"code", "message", "details"}}.
"""

from __future__ import annotations


class RunnerError(Exception):
    status = 500
    code = "internal_error"
    headers: dict[str, str] = {}  # noqa: RUF012 (a class default, never mutated)

    def __init__(self, message: str, details: dict | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if status is not None:
            self.status = status

    def to_dict(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}

    def to_oip_dict(self) -> dict:
        """The Open Inference Protocol's error body: `error` is the message itself (tritonclient and KServe's
        clients print it as a string); the house's code and details ride beside it."""
        return {"error": self.message, "code": self.code, "details": self.details}


class BadRequest(RunnerError):
    """The request body cannot be read as the message or file it claims to be."""

    status = 400
    code = "bad_request"


class ProtoError(BadRequest):
    """A .proto that does not compile or lacks what the runner needs."""

    code = "invalid_proto"


class PackageError(BadRequest):
    """A model package (zip or manifest) that is unsafe or malformed."""

    code = "invalid_package"


class NotFound(RunnerError):
    status = 404
    code = "not_found"


class Unauthorized(RunnerError):
    status = 401
    code = "unauthorized"


class Forbidden(RunnerError):
    status = 403
    code = "forbidden"


class InvalidEntitlement(RunnerError):
    """A document PUT /model/entitlement refuses; `details.reason` says which check failed."""

    status = 400
    code = "invalid_entitlement"


class UsageRefused(Forbidden):
    """A prediction the installed entitlement does not allow. `code` is one of LUM's denial types
    (agreement_not_found, timing_constraint, usage_exhausted, right_to_use_revoked, usage_prohibited),
    the same codes the portal answers with."""

    def __init__(self, code: str, message: str, details: dict | None = None):
        super().__init__(message, details)
        self.code = code


class UnsupportedMediaType(RunnerError):
    status = 415
    code = "unsupported_media_type"


class NotAcceptable(RunnerError):
    status = 406
    code = "not_acceptable"


class PayloadTooLarge(RunnerError):
    status = 413
    code = "payload_too_large"


class Conflict(RunnerError):
    status = 409
    code = "conflict"


class ModelRejected(RunnerError):
    """A candidate model that failed to load or to answer its sample: the old one keeps serving."""

    status = 422
    code = "model_rejected"


class PredictionFailed(RunnerError):
    """The model raised while answering; the id lets an operator find the traceback in the log."""

    status = 500
    code = "prediction_failed"


class NotReady(RunnerError):
    status = 503
    code = "not_ready"


class Busy(RunnerError):
    """Every slot for this kind of work is taken: the caller may try again after `retry_after` seconds."""

    status = 503
    code = "busy"

    def __init__(self, message: str, details: dict | None = None, status: int | None = None):
        super().__init__(message, details, status)
        self.headers = {"Retry-After": str(self.details.get("retry_after_seconds", 5))}
