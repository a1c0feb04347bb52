"""Waiting in tests: one poll loop for every test that waits for a real process to get somewhere."""

from __future__ import annotations

import time

import pytest


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2, diagnose=lambda: ""):
    """Poll `predicate` until it returns something truthy; fail with `what` (and diagnostics) on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{diagnose()}")
