"""What the batch job endpoints read and answer."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from batch.choices import InputFormat, InputKind, OutputFormat
from batch.models import BatchJob, BatchUpload


class BatchInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=InputKind.choices)
    key = serializers.CharField(required=False, help_text="kind s3: the object's key (under an allowed prefix)")
    url = serializers.CharField(required=False, help_text="kind url: http(s), under a prefix an admin allows")
    upload = serializers.UUIDField(required=False, help_text="kind upload: the id POST /batch-uploads answered")
    sha256 = serializers.CharField(required=False, help_text="the whole file's sha256: a mismatch fails the job")
    size = serializers.IntegerField(required=False, help_text="the file's size in bytes")


class BatchStartSerializer(serializers.Serializer):
    """POST: what to predict, where, and how (the service checks the values and names what is wrong)."""

    deployment = serializers.UUIDField(required=False, help_text="a running deployment you manage (or revision)")
    revision = serializers.UUIDField(required=False, help_text="a ready version of a model you own, run in a sandbox "
                                     "of its own on the portal's host for the job's time (or deployment)")
    method = serializers.CharField(max_length=100)
    input = serializers.JSONField(help_text="{kind: s3|upload|url, key | url | upload, sha256?, size?}")
    format = serializers.ChoiceField(choices=InputFormat.choices, required=False,
                                     help_text="default: from the file's name")
    id_column = serializers.CharField(required=False, allow_blank=True, max_length=200)
    output_prefix = serializers.CharField(required=False, allow_blank=True, max_length=400)
    output_format = serializers.ChoiceField(choices=OutputFormat.choices, required=False,
                                            help_text="csv (the default) or jsonl (each value keeps its type)")
    shard_rows = serializers.IntegerField(required=False)


class BatchJobSerializer(serializers.ModelSerializer):
    state = serializers.CharField(read_only=True, help_text="pending, running, succeeded, failed or cancelled")
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    progress_percent = serializers.IntegerField(read_only=True, allow_null=True)
    errors_count = serializers.IntegerField(source="rows_failed", read_only=True)
    downloads = serializers.SerializerMethodField()

    class Meta:
        model = BatchJob
        fields = ["id", "state", "status", "requested_by", "deployment", "revision", "method", "input_kind",
                  "input_ref", "upload", "expected_sha256", "expected_size", "input_bytes", "format", "id_column",
                  "output_prefix", "output_format", "shard_rows", "request_shape", "rows_read", "rows_predicted",
                  "rows_failed", "errors_count", "shards_done", "bytes_read", "progress_percent", "rows_per_second",
                  "predictions_key", "errors_key", "downloads", "attempts", "error", "created", "started", "finished"]
        read_only_fields = fields

    def get_downloads(self, job) -> dict:
        if not job.predictions_key:
            return {}
        return {which: reverse(f"api:batch-job-{which}", args=[job.pk]) for which in ("predictions", "errors")}


class BatchUploadSerializer(serializers.ModelSerializer):
    class Meta:
        model = BatchUpload
        fields = ["id", "name", "size", "sha256", "created"]
        read_only_fields = fields
