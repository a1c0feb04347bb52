"""GET /healthz: 200 when this process answers and its database does, 503 when the database does not.
For a load balancer, compose's health check or a Kubernetes probe.

Answered by a middleware placed first, before the host check and the HTTPS redirect: a probe calls the
process by its address over plain http (`http://127.0.0.1:8000/healthz`), which DJANGO_ALLOWED_HOSTS and
DJANGO_SSL_REDIRECT would otherwise answer with 400 or 301. It tells nothing but ok or not."""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.utils.cache import add_never_cache_headers

log = logging.getLogger(__name__)
PATH = "/healthz"


def health_check_middleware(get_response):
    def middleware(request):
        if request.path_info == PATH and request.method in {"GET", "HEAD"}:
            return healthz()
        return get_response(request)

    return middleware


def healthz() -> JsonResponse:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        log.warning("health check: the database does not answer: %s", exc)
        response = JsonResponse({"status": "unavailable", "database": "not answering"}, status=503)
    else:
        response = JsonResponse({"status": "ok", "database": "ok"})
    add_never_cache_headers(response)
    return response
