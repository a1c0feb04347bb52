"""The peer API's answers: Acumos's JsonResponse envelope {error, message, content} (error is null on
success, else a code), and the decorator every peer API view goes through (who calls, what went wrong)."""

from __future__ import annotations

import functools
import logging

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from federation import authentication, identity
from federation.authentication import PeerRefused

log = logging.getLogger(__name__)


def ok(content, message: str = "", status: int = 200) -> JsonResponse:
    return JsonResponse({"error": None, "message": message, "content": content}, status=status)


def refused(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": code, "message": message, "content": None}, status=status)


def not_found(what: str) -> JsonResponse:
    return refused("not_found", f"no such {what}, or this peer may not see it", 404)


def peer_api(methods=("GET",), *, registered: bool = True):
    """A peer API view: only the methods given, the caller authenticated as an active peer (passed as
    `peer`), refusals and a missing identity answered in the envelope. `registered=False` lets a
    caller with no peer yet in (self-registration), as `caller`."""

    def wrap(view):
        @csrf_exempt  # machine-to-machine, authenticated by client certificate: no cookies, no CSRF
        @require_http_methods(list(methods))
        @functools.wraps(view)
        def answer(request, *args, **kwargs):
            try:
                if registered:
                    return view(request, authentication.authenticate(request), *args, **kwargs)
                return view(request, authentication.identify(request), *args, **kwargs)
            except PeerRefused as exc:
                log.info("peer API call refused (%s): %s", exc.code, exc.message)
                return refused(exc.code, exc.message, exc.status)
            except identity.NoIdentity as exc:
                return refused("no_identity", str(exc), 503)

        return answer

    return wrap
