"""API authentication: `Bearer <api token or JWT>` and Acumos's `<login>:<api token>`."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from acumos_portal.accounts import services


class TokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "").strip()
        if not header:
            return None
        scheme, _, rest = header.partition(" ")
        if scheme.lower() == "basic":
            return None
        credential = rest.strip() if scheme.lower() == "bearer" else header
        user = services.user_for_credential(credential)
        if user is None:
            raise exceptions.AuthenticationFailed("the token is wrong, expired or revoked")
        return user, credential

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
