"""Forgetting a cached value safely around transactions."""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction


def forget_now_and_on_commit(forget: Callable[[], None]) -> None:
    """Now, so the writer's own next read is fresh, and again once the transaction commits: another
    request may have read the old rows, and cached them, in between."""
    forget()
    transaction.on_commit(forget)
