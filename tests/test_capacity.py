"""The server short of something (acumos_portal.capacity): a busy database answers 503 with Retry-After
and a full disk 507, saying so, on any page, wherever the exception was raised (a view, or a middleware
after it); any other error is still the 500 page."""

from __future__ import annotations

import errno
import sqlite3

import pytest
from django.contrib.sessions.middleware import SessionMiddleware
from django.db import OperationalError
from django.test import Client

from acumos_portal import capacity
from marketplace import selectors

from .onboarding.test_recovery import database_locked

pytestmark = pytest.mark.django_db


def disk_full_in_sqlite(tmp_path) -> OperationalError:
    """SQLite's own "database or disk is full" (its page limit reached), as Django raises it."""
    connection = sqlite3.connect(tmp_path / "full.sqlite3", isolation_level=None)
    try:
        connection.execute("PRAGMA max_page_count = 2")
        connection.execute("CREATE TABLE t (x)")
        connection.execute("INSERT INTO t VALUES (zeroblob(100000))")
    except sqlite3.OperationalError as exc:
        error = OperationalError(*exc.args)
        error.__cause__ = exc
        return error
    finally:
        connection.close()
    raise AssertionError("SQLite took more than its pages")


def test_it_tells_a_shortage_from_a_real_error(tmp_path):
    assert capacity.shortage_of(database_locked(tmp_path)).status == 503
    assert capacity.shortage_of(disk_full_in_sqlite(tmp_path)).status == 507
    assert capacity.shortage_of(OSError(errno.ENOSPC, "No space left on device")).status == 507
    assert capacity.shortage_of(OSError(errno.EDQUOT, "Disk quota exceeded")).status == 507
    assert capacity.shortage_of(OSError(errno.ENOENT, "No such file or directory")) is None
    assert capacity.shortage_of(OperationalError("no such table: marketplace_solution")) is None
    assert capacity.shortage_of(ValueError("database is locked")) is None  # not from the database


def test_a_page_that_meets_a_busy_database_answers_503_saying_so(tmp_path, monkeypatch, settings):
    locked = database_locked(tmp_path)
    monkeypatch.setattr(selectors, "search_solutions", lambda *args: (_ for _ in ()).throw(locked))
    response = Client(raise_request_exception=False).get("/")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    page = response.content.decode()
    assert "The server is busy" in page
    assert f"its database stayed locked by other work for more than {settings.ACUMOS_SQLITE_BUSY_SECONDS} s" in page


def test_a_middleware_that_meets_a_full_disk_answers_507_saying_so(monkeypatch):
    """The session is saved after the view, by a middleware: no middleware of ours could catch that;
    the 500 handler sees it."""
    def full(self, request, response):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(SessionMiddleware, "process_response", full)
    response = Client(raise_request_exception=False).get("/")
    assert response.status_code == 507 and "Retry-After" not in response
    assert "The server&#x27;s disk is full; nothing was kept; try later." in response.content.decode()


def test_any_other_error_is_still_the_500_page(monkeypatch):
    monkeypatch.setattr(selectors, "search_solutions", lambda *args: 1 / 0)
    response = Client(raise_request_exception=False).get("/")
    assert response.status_code == 500 and "Something went wrong" in response.content.decode()
