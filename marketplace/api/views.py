"""REST API over solutions, revisions and artifacts. What a user may see comes only from
marketplace.selectors: anything else answers 404, exactly as if it did not exist."""

from __future__ import annotations

import django_filters
from django.db.models import Count
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, viewsets
from rest_framework.decorators import action
from rest_framework.negotiation import DefaultContentNegotiation

from marketplace import downloads, selectors
from marketplace.api.serializers import (
    ArtifactSerializer,
    RevisionDetailSerializer,
    RevisionSerializer,
    SolutionSerializer,
)
from marketplace.choices import ArtifactKind, RevisionStatus
from marketplace.models import Artifact, Revision, Solution


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


FILE_RESPONSE = OpenApiResponse(OpenApiTypes.BINARY, description="the file, streamed")


# ---------------------------------------------------------------- solutions

class SolutionFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    owner = django_filters.CharFilter(field_name="owner__username")

    class Meta:
        model = Solution
        fields = ["name", "owner", "toolkit", "model_type"]


@extend_schema(tags=["marketplace"])
class SolutionViewSet(VisibleObjectMixin, viewsets.ReadOnlyModelViewSet):
    """Solutions (models) the caller may see."""

    serializer_class = SolutionSerializer
    filterset_class = SolutionFilter
    not_found_message = "no such solution"

    def get_queryset(self):
        return selectors.visible_solutions(self.request.user).annotate(revision_count=Count("revisions")).order_by(
            "-modified", "id")


# ---------------------------------------------------------------- revisions

class RevisionFilter(django_filters.FilterSet):
    solution = django_filters.UUIDFilter(field_name="solution_id")
    status = django_filters.ChoiceFilter(choices=RevisionStatus.choices)

    class Meta:
        model = Revision
        fields = ["solution", "status", "version"]


@extend_schema(tags=["marketplace"])
class RevisionViewSet(VisibleObjectMixin, viewsets.ReadOnlyModelViewSet):
    """Revisions (versions) of the solutions the caller may see; `?solution=<id>` for one solution's."""

    filterset_class = RevisionFilter
    not_found_message = "no such revision"

    def get_queryset(self):
        return selectors.visible_revisions(self.request.user).select_related("created_by")

    def get_serializer_class(self):
        return RevisionDetailSerializer if self.action == "retrieve" else RevisionSerializer

    @extend_schema(responses=ArtifactSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"], filterset_class=None, serializer_class=ArtifactSerializer)
    def artifacts(self, request, pk=None):
        """The artifacts of one revision."""
        revision = self.get_object()
        artifacts = selectors.visible_artifacts(request.user).filter(revision=revision)
        page = self.paginate_queryset(artifacts)
        return self.get_paginated_response(ArtifactSerializer(page, many=True).data)

    @extend_schema(responses={200: FILE_RESPONSE}, filters=False)
    @action(detail=True, methods=["get"], filterset_class=None, content_negotiation_class=AnyAcceptNegotiation)
    def bundle(self, request, pk=None):
        """A zip of metadata.json, model.proto, modelpackage.zip (and license.json): what `runner_image serve` takes."""
        return downloads.bundle_response(self.get_object())


# ---------------------------------------------------------------- artifacts

class ArtifactFilter(django_filters.FilterSet):
    revision = django_filters.UUIDFilter(field_name="revision_id")
    kind = django_filters.ChoiceFilter(choices=ArtifactKind.choices)

    class Meta:
        model = Artifact
        fields = ["revision", "kind"]


@extend_schema(tags=["marketplace"])
class ArtifactViewSet(VisibleObjectMixin, viewsets.ReadOnlyModelViewSet):
    """Artifacts of the revisions the caller may see; `?revision=<id>` for one revision's."""

    serializer_class = ArtifactSerializer
    filterset_class = ArtifactFilter
    not_found_message = "no such artifact"

    def get_queryset(self):
        return selectors.visible_artifacts(self.request.user)

    @extend_schema(responses={200: FILE_RESPONSE}, filters=False)
    @action(detail=True, methods=["get"], filterset_class=None, content_negotiation_class=AnyAcceptNegotiation)
    def download(self, request, pk=None):
        """The artifact's file, streamed, with its sha256 in `ETag` and `X-Checksum-Sha256`."""
        artifact = self.get_object()
        if artifact.blob_id is None:
            raise exceptions.NotFound("this artifact is a reference, not a file; see its uri")
        return downloads.artifact_response(artifact)
