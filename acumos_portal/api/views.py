"""What every API view of the portal shares: content negotiation for file answers, 404s in the API's
error shape, filters that narrow lists only, the permission lists, and reading a request's input.
The floor of the API: it imports no app."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, permissions
from rest_framework.negotiation import DefaultContentNegotiation


class AnyAcceptNegotiation(DefaultContentNegotiation):
    """For endpoints that answer a file (or a fixed JSON shape): any `Accept` is fine; errors are JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class VisibleObjectMixin:
    """404 with the API's error shape (code "not_found") for what is missing or not visible."""

    not_found_message = "not found"

    def get_object(self):
        try:
            return super().get_object()
        except Http404:
            raise exceptions.NotFound(self.not_found_message) from None


class ListFiltersOnlyMixin:
    """Query filters narrow lists only: an action on one object never 404s because of `?name=`."""

    def filter_queryset(self, queryset):
        return super().filter_queryset(queryset) if self.action == "list" else queryset


FILE_RESPONSE = OpenApiResponse(OpenApiTypes.BINARY, description="the file, streamed")
READ_OR_SIGNED_IN = [permissions.IsAuthenticatedOrReadOnly]
SIGNED_IN = [permissions.IsAuthenticated]
NO_CONTENT = {204: None}


def valid(serializer_class, request) -> dict:
    """The request body as `serializer_class` reads it; a 400 naming the fields that are wrong."""
    given = serializer_class(data=request.data)
    given.is_valid(raise_exception=True)
    return given.validated_data


def forbid_unless(allowed: bool, message: str) -> None:
    if not allowed:
        raise exceptions.PermissionDenied(message)
