"""The query filters of the marketplace API's lists (?name=, ?revision=, ?status=...)."""

from __future__ import annotations

import django_filters

from marketplace.choices import ArtifactKind, RequestStatus, RevisionStatus
from marketplace.models import Artifact, Notification, Publication, PublishRequest, Revision, Solution


class SolutionFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    owner = django_filters.CharFilter(field_name="owner__username")

    class Meta:
        model = Solution
        fields = ["name", "owner"]


class RevisionFilter(django_filters.FilterSet):
    solution = django_filters.UUIDFilter(field_name="solution_id")
    status = django_filters.ChoiceFilter(choices=RevisionStatus.choices)

    class Meta:
        model = Revision
        fields = ["solution", "status", "version"]


class ArtifactFilter(django_filters.FilterSet):
    revision = django_filters.UUIDFilter(field_name="revision_id")
    kind = django_filters.ChoiceFilter(choices=ArtifactKind.choices)

    class Meta:
        model = Artifact
        fields = ["revision", "kind"]


class PublicationFilter(django_filters.FilterSet):
    # Plain ids, not model choices: "not a valid choice" would tell a private id from a missing one.
    catalog = django_filters.UUIDFilter(field_name="catalog_id")
    solution = django_filters.UUIDFilter(field_name="solution_id")
    revision = django_filters.UUIDFilter(field_name="revision_id")

    class Meta:
        model = Publication
        fields = ["catalog", "solution", "revision"]


class PublishRequestFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=RequestStatus.choices)
    solution = django_filters.UUIDFilter(field_name="solution_id")
    catalog = django_filters.UUIDFilter(field_name="catalog_id")

    class Meta:
        model = PublishRequest
        fields = ["status", "solution", "catalog"]


class NotificationFilter(django_filters.FilterSet):
    unread = django_filters.BooleanFilter(field_name="read_at", lookup_expr="isnull", label="only the unread ones")

    class Meta:
        model = Notification
        fields = ["unread", "kind"]
