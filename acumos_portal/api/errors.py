"""One JSON error shape for the whole API: {"error": {"code", "message", "details"}}. Every refusal of
a service (acumos_portal.api.refusals.Refused) is mapped here, so views do not catch them one by one."""

from __future__ import annotations

from contextlib import contextmanager

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from acumos_portal import capacity
from acumos_portal.api.refusals import Refused
from acumos_portal.uploads import UploadTooLarge

# Django's own exceptions, which DRF turns into responses but which carry no code of their own.
_DJANGO_CODES = {Http404: "not_found", PermissionDenied: "permission_denied"}


class ApiError(exceptions.APIException):
    """A service error that knows its status, code and details."""

    def __init__(self, message: str, *, code: str = "bad_request", status_code: int = 400, details=None):
        super().__init__(message)
        self.status_code = status_code
        self.error_code = code
        self.details = details or {}


def error_body(code: str, message: str, details=None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def refusal_error(refused: Refused, subject: str | None = None) -> exceptions.APIException:
    """A plain refusal is about one input: it answers as an invalid field does, under its `field`, or
    `subject` (what the call is about) if it names none. Any other answers its own status and code."""
    if refused.code == Refused.code:
        about = refused.field or subject or api_settings.NON_FIELD_ERRORS_KEY
        return exceptions.ValidationError({about: [refused.message]})
    return ApiError(refused.message, code=refused.code, status_code=refused.status, details=refused.details)


@contextmanager
def refusals_about(subject: str):
    """A refusal raised in this block that names no field is answered as being about `subject`."""
    try:
        yield
    except Refused as refused:
        raise refusal_error(refused, subject) from refused


def upload_too_large_error(too_large: UploadTooLarge) -> ApiError:
    return ApiError(str(too_large), code="upload_too_large", status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                    details={"limit_bytes": too_large.limit})


def exception_handler(exc, context):
    if isinstance(exc, Refused):
        exc = refusal_error(exc)
    elif isinstance(exc, UploadTooLarge):
        exc = upload_too_large_error(exc)
    if isinstance(exc, ApiError):
        return Response(error_body(exc.error_code, str(exc.detail), exc.details), status=exc.status_code)
    shortage = capacity.shortage_of(exc)  # a busy database (503) or a full disk (507): not a bug
    if shortage is not None:
        return Response(error_body(shortage.code, shortage.message), status=shortage.status, headers=shortage.headers)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = getattr(exc, "default_code", None) or _DJANGO_CODES.get(type(exc), "error")
    if isinstance(exc, exceptions.ValidationError):
        return Response(error_body("invalid", "the request has invalid fields", response.data),
                        status=status.HTTP_400_BAD_REQUEST)
    message = response.data.get("detail", str(exc)) if isinstance(response.data, dict) else str(exc)
    response.data = error_body(code, str(message))
    return response
