"""Read-only representations of solutions, revisions and artifacts for the REST API."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from marketplace.models import Artifact, Revision, Solution


class SolutionSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    tags = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")
    revision_count = serializers.IntegerField(read_only=True)
    revisions = serializers.SerializerMethodField(help_text="URL listing this solution's revisions")

    class Meta:
        model = Solution
        fields = ["id", "name", "description", "owner", "model_type", "toolkit", "tags", "created", "modified",
                  "revision_count", "revisions"]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField())
    def get_revisions(self, solution: Solution) -> str:
        return f"{reverse('api:revision-list')}?solution={solution.pk}"


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
        fields = [*RevisionSerializer.Meta.fields, "metadata"]
        read_only_fields = fields


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
