"""DRF throttles keyed on the client as acumos_portal.accounts.clientip decides: DRF's own get_ident
believes any X-Forwarded-For unless NUM_PROXIES is set, so a new header on each try escaped it."""

from __future__ import annotations

from rest_framework.throttling import ScopedRateThrottle

from acumos_portal.accounts.clientip import client_ip


class ClientScopedRateThrottle(ScopedRateThrottle):
    """Kept in the cache: per process unless ACUMOS_CACHE_URL names a shared one. The sign-in lockout,
    which is what stops password guessing, is in the database; this bounds the cost of sign-ins that
    succeed (each checks a deliberately slow password hash)."""

    def get_ident(self, request):
        return client_ip(request._request) or "unknown"
