"""API credentials as a Django authentication backend, so that every way to sign in goes through
authenticate(): django-axes (the backend before this one) refuses a locked-out client before any
token is checked, and counts a wrong token as a failed sign-in."""

from __future__ import annotations

from django.contrib.auth.backends import BaseBackend

from acumos_portal.accounts.services import user_for_credential


class ApiCredentialBackend(BaseBackend):
    """`authenticate(request, api_credential=...)`: an API token, `<login>:<api token>` or a JWT."""

    def authenticate(self, request, api_credential: str | None = None, **kwargs):
        if api_credential is None:
            return None
        return user_for_credential(api_credential)
