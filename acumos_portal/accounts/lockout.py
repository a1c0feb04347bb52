"""The sign-in lockout, on django-axes (settings: AXES_*, ACUMOS_SIGNIN_*).

axes records each failed authenticate() in its AccessAttempt table, keyed here on the account and the
client's address (acumos_portal.accounts.clientip), and refuses a client past a bound before any
password or token is checked. This module adds what axes does not have: a second, larger bound for the
address alone; clearing an account's own count when its owner signs in; the usernames typed
compared as one (case and width folded); and a page that says when to try again."""

from __future__ import annotations

import unicodedata
from datetime import datetime

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Q, Sum
from django.shortcuts import render
from django.utils import timezone


def username_key(request, credentials: dict | None) -> str | None:
    """The account a sign-in names, as axes keys it: "Alice" and "ａｌｉｃｅ" are one account's tries."""
    raw = (credentials or {}).get("username") if credentials is not None else request.POST.get("username")
    return unicodedata.normalize("NFKC", raw).casefold() if isinstance(raw, str) and raw else None


def lockout_seconds() -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds())


def retry_at() -> datetime:
    """A locked-out client may try again this long after its last try (each try in a lockout counts)."""
    return timezone.now() + settings.AXES_COOLOFF_TIME


def lockout_message() -> str:
    minutes = lockout_seconds() // 60
    return (f"Too many failed sign-ins from your address: signing in is paused until "
            f"{retry_at():%H:%M} UTC ({minutes} minutes from now). Each try before then starts the wait again.")


class LockoutHandler(AxesDatabaseHandler):
    """axes' database handler with two bounds over its one table: the groups of AXES_LOCKOUT_PARAMETERS
    ([account and address], [address]). axes compares each group with one limit, AXES_FAILURE_LIMIT; the
    address's count is scaled here so that it reaches that limit exactly when it reaches its own,
    ACUMOS_SIGNIN_FAILURES_PER_ADDRESS."""

    def get_failures(self, request, credentials: dict | None = None) -> int:
        # Both counts in one query (axes asks one per group): every API call with a token asks this.
        recent = AccessAttempt.objects.filter(ip_address=request.axes_ip_address,
                                              attempt_time__gte=get_cool_off_threshold(request))
        counts = recent.aggregate(
            address=Sum("failures_since_start"),
            account_and_address=Sum("failures_since_start",
                                    filter=Q(username=get_client_username(request, credentials))))
        limit = get_failure_limit(request, credentials)
        scaled = (counts["address"] or 0) * limit // settings.ACUMOS_SIGNIN_FAILURES_PER_ADDRESS
        return max(counts["account_and_address"] or 0, scaled)

    def user_logged_in(self, sender, request, user, **kwargs):
        """Whoever signs in has shown the password: their typos from this address stop counting. The
        address's count of other accounts stays (signing in to an account of one's own must not clear
        what was spent guessing others)."""
        super().user_logged_in(sender, request, user, **kwargs)
        username = get_client_username(request, {"username": user.get_username()})
        AccessAttempt.objects.filter(username=username, ip_address=request.axes_ip_address).delete()


def lockout_page(request, original_response=None, credentials=None):
    """What the sign-in page and the admin's answer while the client is locked out (AXES_LOCKOUT_CALLABLE).
    The APIs answer in their own envelopes (accounts.services.LockedOut)."""
    response = render(request, "accounts/locked_out.html",
                      {"message": lockout_message(), "retry_at": retry_at()}, status=429)
    response["Retry-After"] = str(lockout_seconds())
    return response


def forget_failures(*, username: str, ip_address: str | None) -> None:
    """The account's own count from this address (after a password reset from there)."""
    key = username_key(None, {"username": username})
    AccessAttempt.objects.filter(username=key, ip_address=ip_address).delete()
