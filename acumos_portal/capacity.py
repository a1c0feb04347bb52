"""The server short of something for a moment: its database busy, or its disk full. Neither is the
caller's fault nor a bug, so neither answers 500 with an error id: a busy database answers 503 with
Retry-After (try again in a few seconds), a full disk 507 (try later; nothing of the request was kept).

One classifier (`shortage_of`) for every place that turns an exception into an answer: the pages'
500 handler (`server_error`, which sees every exception a page, a middleware or a session save
raises), the two APIs' error handlers (each in its own envelope) and the onboarding pipeline (a busy
database is a transient error there: the step is retried)."""

from __future__ import annotations

import errno
import logging
import sqlite3
import sys
from dataclasses import dataclass

from django.conf import settings
from django.db import OperationalError
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.views import defaults

log = logging.getLogger(__name__)
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# SQLite's primary result codes (the low byte of an extended one).
_SQLITE_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_SQLITE_FULL = sqlite3.SQLITE_FULL
BUSY_RETRY_SECONDS = 5


@dataclass(frozen=True)
class Shortage:
    status: int
    code: str  # the portal API's error code; the Acumos API's is acumos_code
    acumos_code: str
    message: str
    retry_after: int | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after else {}


def database_busy() -> Shortage:
    return Shortage(503, "database_busy", "SERVICE_UNAVAILABLE",
                    f"The server is busy: its database stayed locked by other work for more than "
                    f"{settings.ACUMOS_SQLITE_BUSY_SECONDS} s. Try again in a few seconds.",
                    retry_after=BUSY_RETRY_SECONDS)


DISK_FULL = Shortage(507, "disk_full", "INSUFFICIENT_STORAGE",
                     "The server's disk is full; nothing was kept; try later.")


def is_database_busy(exc: BaseException) -> bool:
    """'database is locked' (or busy): another writer held SQLite's one write lock past the busy timeout."""
    if not isinstance(exc, OperationalError):
        return False
    code = _sqlite_code(exc)
    if code is not None:
        return code in _SQLITE_BUSY_CODES
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in DISK_FULL_ERRNOS
    if isinstance(exc, OperationalError):  # SQLite: "database or disk is full"
        code = _sqlite_code(exc)
        return code == _SQLITE_FULL if code is not None else "disk is full" in str(exc).lower()
    return False


def _sqlite_code(exc: OperationalError) -> int | None:
    cause = exc.__cause__
    code = getattr(cause, "sqlite_errorcode", None) if isinstance(cause, sqlite3.Error) else None
    return code & 0xFF if code is not None else None


def shortage_of(exc: BaseException | None) -> Shortage | None:
    """What the server is short of, if that is why `exc` was raised (else None: a real error)."""
    if exc is None:
        return None
    shortage = database_busy() if is_database_busy(exc) else DISK_FULL if is_disk_full(exc) else None
    if shortage is not None:  # the operator's to know (and to fix, for a disk: where it filled), though no bug
        log.warning("answered %s (%s): %s", shortage.status, shortage.code, exc, exc_info=exc)
    return shortage


def page_response(shortage: Shortage) -> HttpResponse:
    """A page saying what happened. Drawn without the database or the request's context (the database
    may be the thing that is short)."""
    body = render_to_string("unavailable.html", {"shortage": shortage})
    response = HttpResponse(body, status=shortage.status)
    for name, value in shortage.headers.items():
        response[name] = value
    return response


def server_error(request, template_name: str = "500.html"):
    """handler500: Django calls it inside the `except` that caught the exception, wherever it was
    raised (a view, a middleware, the session save after the view), which no middleware can do."""
    shortage = shortage_of(sys.exc_info()[1])
    if shortage is None:
        return defaults.server_error(request, template_name)
    return page_response(shortage)
