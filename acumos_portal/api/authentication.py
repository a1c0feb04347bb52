"""API authentication: `Bearer <api token or JWT>` and Acumos's `<login>:<api token>`, through the
sign-in lockout (accounts.services.user_for_api_credential): a wrong token counts as a failed sign-in,
and a locked-out client gets 429 with Retry-After before any token is checked. A scoped token (a retraining
hook's) is refused with 401 by every view but the few that take it (`accepts_scoped_tokens`)."""

from __future__ import annotations

from rest_framework import authentication, exceptions, status

from acumos_portal.accounts import services


class LockedOut(exceptions.Throttled):
    """429 in each API's own envelope (a Throttled to DRF: Retry-After from `wait`)."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "locked_out"

    def __init__(self, locked: services.LockedOut):
        exceptions.APIException.__init__(self, str(locked), self.default_code)
        self.wait = locked.retry_after


class TokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "").strip()
        if not header:
            return None
        scheme, _, rest = header.partition(" ")
        if scheme.lower() == "basic":
            return None
        credential = rest.strip() if scheme.lower() == "bearer" else header
        try:
            user = services.user_for_api_credential(request._request, credential)
        except services.LockedOut as locked:
            raise LockedOut(locked) from None
        if user is None:
            raise exceptions.AuthenticationFailed("the token is wrong, expired or revoked")
        scope = services.token_scope(user)
        if scope is not None and not _takes_scoped_tokens(request):
            raise exceptions.AuthenticationFailed(
                f"this token is scoped to solution {scope}: it may only push revisions of that solution "
                f"(POST /onboarding-app/v2/models or /api/v1/onboarding/jobs) and follow their onboarding jobs "
                f"(/api/v1/onboarding/jobs/{{id}}); use a token of your own for anything else")
        return user, credential

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


def _takes_scoped_tokens(request) -> bool:
    """A view that accepts a scoped token says so (`accepts_scoped_tokens = True`) and narrows what it
    does to the token's solution itself (onboarding's push and job views): every other refuses it here,
    so a view added later is closed to scoped tokens until it decides otherwise."""
    view = (getattr(request, "parser_context", None) or {}).get("view")
    return bool(getattr(view, "accepts_scoped_tokens", False))
