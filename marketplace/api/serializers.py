"""Representations for the REST API: what it answers (solutions, revisions, artifacts, catalogs,
publications, publish requests, ratings, comments, notifications) and what it takes (the *Input
serializers, one per action, so that a bad field is named in the error)."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from marketplace import cards
from marketplace.choices import Audience, ModelType, NotificationKind, RevisionStatus, SortOrder
from marketplace.models import (
    Artifact,
    Catalog,
    Comment,
    Notification,
    Publication,
    PublishRequest,
    Rating,
    Revision,
    Solution,
    SolutionShare,
)

AUDIENCES = {Audience.PRIVATE: "private", Audience.SIGNED_IN: "signed_in", Audience.ANYONE: "anyone"}


class CatalogRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class RevisionRefSerializer(serializers.Serializer):
    """A version as a solution lists it: enough to pick one (to deploy, download or publish it)."""

    id = serializers.UUIDField()
    version = serializers.CharField()
    status = serializers.ChoiceField(choices=RevisionStatus.choices)
    ready = serializers.BooleanField(source="is_ready", help_text="onboarding finished: it can be deployed")
    created = serializers.DateTimeField()
    url = serializers.SerializerMethodField(help_text="the revision in this API (its artifacts, bundle, metadata)")

    def get_url(self, revision: Revision) -> str:
        return reverse("api:revision-detail", args=[revision.pk])


class SolutionSerializer(serializers.ModelSerializer):
    """Reads what marketplace.api.views.decorate_solutions prefetches and annotates: no query per row."""

    owner = serializers.CharField(source="owner.username", read_only=True)
    model_type_label = serializers.CharField(source="get_model_type_display", read_only=True,
                                             help_text="the model type as people read it (model_type is its code)")
    tags = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")
    audience = serializers.SerializerMethodField(help_text="who may see it: private, signed_in or anyone")
    catalogs = serializers.SerializerMethodField(help_text="the catalogs (you may see) it is published in")
    revision_count = serializers.IntegerField(read_only=True, help_text="the revisions you may see")
    is_favorite = serializers.BooleanField(read_only=True, help_text="whether it is one of your favorites")
    revisions = serializers.SerializerMethodField(help_text="URL listing this solution's revisions")
    versions = serializers.SerializerMethodField(
        help_text="its revisions you may see, newest first: the unpublished ones only to those who manage it")
    licence_ids = serializers.SerializerMethodField(help_text="the SPDX ids in its licence expression")
    rtu_required = serializers.BooleanField(read_only=True,
                                            help_text="whether its licence needs an agreement (rtuRequired)")

    class Meta:
        model = Solution
        fields = ["id", "name", "description", "owner", "model_type", "model_type_label", "toolkit", "tags", "licence",
                  "licence_ids", "rtu_required", "audience", "catalogs", "rating_avg", "rating_count", "view_count",
                  "download_count", "is_favorite", "created", "modified", "revision_count", "revisions", "versions"]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=list(AUDIENCES.values())))
    def get_audience(self, solution: Solution) -> str:
        return AUDIENCES[solution.audience]

    @extend_schema_field(CatalogRefSerializer(many=True))
    def get_catalogs(self, solution: Solution) -> list[dict]:
        catalogs = {p.catalog_id: p.catalog for p in getattr(solution, "visible_publications", [])}
        return [{"id": c.pk, "name": c.name} for c in sorted(catalogs.values(), key=lambda c: c.name)]

    @extend_schema_field(serializers.CharField())
    def get_revisions(self, solution: Solution) -> str:
        return f"{reverse('api:revision-list')}?solution={solution.pk}"

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_licence_ids(self, solution: Solution) -> list[str]:
        return solution.licence_ids.split()

    @extend_schema_field(RevisionRefSerializer(many=True))
    def get_versions(self, solution: Solution) -> list[dict]:
        return RevisionRefSerializer(solution.listed_revisions, many=True).data


class DeletedSolutionSerializer(SolutionSerializer):
    class Meta(SolutionSerializer.Meta):
        fields = [*SolutionSerializer.Meta.fields, "deleted_at"]
        read_only_fields = fields


class SolutionSearchSerializer(serializers.Serializer):
    """The browse page's search and filters, as query parameters (marketplace.selectors.SearchParams)."""

    q = serializers.CharField(required=False, allow_blank=True, max_length=200,
                              help_text="words to find in the name, description, tags and author")
    model_type = serializers.ChoiceField(choices=ModelType.choices, required=False, allow_blank=True)
    toolkit = serializers.CharField(required=False, allow_blank=True, max_length=30)
    tag = serializers.CharField(required=False, allow_blank=True, max_length=50)
    catalog = serializers.UUIDField(required=False, allow_null=True, help_text="a catalog's id")
    licence = serializers.CharField(required=False, allow_blank=True, max_length=100,
                                    help_text="a whole licence expression, or one SPDX id in it (MIT)")
    access = serializers.ChoiceField(choices=[("open", "no agreement needed"), ("agreement", "an agreement needed")],
                                     required=False, allow_blank=True,
                                     help_text="open: licences anyone may use; agreement: rtuRequired licences")
    sort = serializers.ChoiceField(choices=SortOrder.choices, required=False, allow_blank=True,
                                   help_text="default: relevance with `q`, otherwise recent")


class SolutionDetailsInput(serializers.Serializer):
    """PATCH: what is not given keeps its value."""

    description = serializers.CharField(required=False, allow_blank=True, max_length=100_000,
                                        trim_whitespace=False, help_text="Markdown")
    tags = serializers.ListField(child=serializers.SlugField(max_length=50), required=False)
    model_type = serializers.ChoiceField(choices=ModelType.choices, required=False)


class ShareInput(serializers.Serializer):
    username = serializers.CharField(max_length=150, help_text="who becomes a co-owner")


class SolutionShareSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    shared_by = serializers.CharField(source="shared_by.username", read_only=True)

    class Meta:
        model = SolutionShare
        fields = ["user", "username", "shared_by", "created"]
        read_only_fields = fields


class FavoriteSerializer(serializers.Serializer):
    favorite = serializers.BooleanField(help_text="whether it is one of your favorites now")
    count = serializers.IntegerField(help_text="how many people have it as a favorite")


# ---------------------------------------------------------------- ratings and comments

class RatingSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Rating
        fields = ["id", "user", "stars", "review", "created", "modified"]
        read_only_fields = fields


class RatingInput(serializers.Serializer):
    stars = serializers.IntegerField(min_value=1, max_value=5)
    review = serializers.CharField(required=False, allow_blank=True, max_length=4000, default="")


class CommentSerializer(serializers.ModelSerializer):
    author = serializers.SerializerMethodField(help_text="null once deleted")
    deleted = serializers.SerializerMethodField(
        help_text="deleted while it had replies: it stays in the thread with no author and no text")

    class Meta:
        model = Comment
        fields = ["id", "parent", "author", "text", "created", "deleted"]
        read_only_fields = fields

    def get_author(self, comment) -> str | None:
        return None if comment.deleted_at else comment.author.username

    def get_deleted(self, comment) -> bool:
        return comment.deleted_at is not None


class CommentInput(serializers.Serializer):
    text = serializers.CharField(max_length=8192)
    parent = serializers.IntegerField(required=False, allow_null=True, min_value=1,
                                      help_text="the comment this one answers")


# ---------------------------------------------------------------- revisions and artifacts

class RevisionSerializer(serializers.ModelSerializer):
    solution_name = serializers.CharField(source="solution.name", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    artifacts = serializers.SerializerMethodField(help_text="URL listing this revision's artifacts")
    bundle = serializers.SerializerMethodField(help_text="URL of the bundle zip (what `runner_image serve` takes)")

    class Meta:
        model = Revision
        fields = ["id", "solution", "solution_name", "version", "status", "description", "created_by", "created",
                  "ready_at", "artifacts", "bundle"]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField())
    def get_artifacts(self, revision: Revision) -> str:
        return reverse("api:revision-artifacts", args=[revision.pk])

    @extend_schema_field(serializers.CharField())
    def get_bundle(self, revision: Revision) -> str:
        return reverse("api:revision-bundle", args=[revision.pk])


class RevisionDetailSerializer(RevisionSerializer):
    class Meta(RevisionSerializer.Meta):
        fields = [*RevisionSerializer.Meta.fields, "metadata", "resources", "card", "interface"]
        read_only_fields = fields


class CardSerializer(serializers.Serializer):
    card = serializers.JSONField(help_text=(
        "the model card: task, hyperparameters {name: value}, explainability {methods, local, global}, evaluation "
        "[{metric, value, dataset}] (self-reported: never verified), intendedUse, limitations, details"))


class DescriptionSerializer(serializers.Serializer):
    """marketplace.cards.described: the card, the framework, the interface and the measured resources."""

    revision = serializers.UUIDField(read_only=True)
    card = serializers.JSONField(read_only=True, help_text="the model card its owners declare (self-reported)")
    framework = serializers.CharField(read_only=True)
    framework_version = serializers.CharField(read_only=True)
    interface = serializers.JSONField(read_only=True, help_text="{method: {inputs: [...], outputs: [...]}}")
    resources = serializers.JSONField(read_only=True, help_text="measured in the sandboxed smoke test")

    def to_representation(self, instance):
        return {"revision": str(instance.pk), **cards.described(instance)}


class ArtifactSerializer(serializers.ModelSerializer):
    kind_label = serializers.CharField(source="get_kind_display", read_only=True)
    file_name = serializers.CharField(read_only=True)
    size = serializers.IntegerField(read_only=True)
    sha256 = serializers.CharField(read_only=True)
    download = serializers.SerializerMethodField(help_text="URL of the file; null for references such as images")

    class Meta:
        model = Artifact
        fields = ["id", "revision", "kind", "kind_label", "name", "file_name", "size", "sha256", "uri", "created",
                  "download"]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_download(self, artifact: Artifact) -> str | None:
        return reverse("api:artifact-download", args=[artifact.pk]) if artifact.blob_id else None


# ---------------------------------------------------------------- catalogs and publishing

class CatalogSerializer(serializers.ModelSerializer):
    access_label = serializers.CharField(source="get_access_display", read_only=True)

    class Meta:
        model = Catalog
        fields = ["id", "name", "description", "access", "access_label", "self_publish", "created"]
        read_only_fields = ["id", "access_label", "created"]


class PublicationSerializer(serializers.ModelSerializer):
    catalog_name = serializers.CharField(source="catalog.name", read_only=True)
    solution_name = serializers.CharField(source="solution.name", read_only=True)
    version = serializers.CharField(source="revision.version", read_only=True)
    published_by = serializers.CharField(source="published_by.username", read_only=True)
    approved_by = serializers.CharField(source="approved_by.username", read_only=True, allow_null=True)

    class Meta:
        model = Publication
        fields = ["id", "catalog", "catalog_name", "solution", "solution_name", "revision", "version",
                  "published_by", "approved_by", "created"]
        read_only_fields = fields


class PublishInput(serializers.Serializer):
    revision = serializers.UUIDField(help_text="a ready revision of a model you manage")
    catalog = serializers.UUIDField(help_text="a catalog's id (GET /api/v1/catalogs)")
    message = serializers.CharField(required=False, allow_blank=True, max_length=4000, default="",
                                    help_text="what the publisher reads, when the catalog needs approval")


class PublishRequestSerializer(serializers.ModelSerializer):
    solution_name = serializers.CharField(source="solution.name", read_only=True)
    version = serializers.CharField(source="revision.version", read_only=True)
    catalog_name = serializers.CharField(source="catalog.name", read_only=True)
    requested_by = serializers.CharField(source="requested_by.username", read_only=True)
    reviewed_by = serializers.CharField(source="reviewed_by.username", read_only=True, allow_null=True)
    status_label = serializers.CharField(source="get_status_display", read_only=True)

    class Meta:
        model = PublishRequest
        fields = ["id", "solution", "solution_name", "revision", "version", "catalog", "catalog_name",
                  "requested_by", "message", "status", "status_label", "reviewed_by", "review_comment", "created",
                  "reviewed_at"]
        read_only_fields = fields


class ApproveInput(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=4000, default="")


class DeclineInput(serializers.Serializer):
    comment = serializers.CharField(max_length=4000, help_text="why: the owner reads it")


# ---------------------------------------------------------------- notifications

class NotificationSerializer(serializers.ModelSerializer):
    kind_label = serializers.CharField(source="get_kind_display", read_only=True)
    is_read = serializers.BooleanField(read_only=True)

    class Meta:
        model = Notification
        fields = ["id", "kind", "kind_label", "title", "message", "url", "count", "created", "read_at", "is_read"]
        read_only_fields = fields


class MarkReadInput(serializers.Serializer):
    ids = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False, max_length=1000,
                               help_text="the notifications to mark read; omitted: all of yours")


class MarkedReadSerializer(serializers.Serializer):
    marked = serializers.IntegerField(help_text="how many were unread and are read now")
    unread = serializers.IntegerField(help_text="how many of yours are still unread")


class UnreadCountSerializer(serializers.Serializer):
    unread = serializers.IntegerField()


class NotificationChoiceSerializer(serializers.Serializer):
    """One kind of notification and whether you hear of it (marketplace.selectors.NotificationChoice)."""

    kind = serializers.ChoiceField(choices=NotificationKind.choices)
    label = serializers.CharField(help_text="its name in your notifications (their kind_label)")
    description = serializers.CharField(help_text="what it is about")
    group = serializers.CharField(help_text="the settings page's section it is in")
    enabled = serializers.BooleanField(help_text="whether you are told of it")
    always_on = serializers.BooleanField(help_text="it cannot be turned off")


class NotificationPreferencesSerializer(serializers.Serializer):
    preferences = NotificationChoiceSerializer(many=True)


class NotificationChoiceInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=NotificationKind.choices)
    enabled = serializers.BooleanField()


class NotificationPreferencesInput(serializers.Serializer):
    """What GET answers may be sent back as it is (only kind and enabled are read); kinds not listed keep
    their setting."""

    preferences = NotificationChoiceInput(many=True, allow_empty=True)
