"""Onboarding jobs and their steps as the REST API shows them (also the Acumos `taskId` status URL)."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from marketplace.models import Revision, Solution
from onboarding.models import OnboardingJob, StepResult


class StepSerializer(serializers.ModelSerializer):
    title = serializers.CharField(read_only=True)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)
    error = serializers.SerializerMethodField(help_text="why the step failed; null unless it failed")

    class Meta:
        model = StepResult
        fields = ["name", "title", "status", "attempts", "started", "finished", "duration_seconds", "error", "log"]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_error(self, step: StepResult) -> str | None:
        return step.error or None


class StepSummarySerializer(StepSerializer):
    class Meta(StepSerializer.Meta):
        fields = [f for f in StepSerializer.Meta.fields if f != "log"]
        read_only_fields = fields


class JobSerializer(serializers.ModelSerializer):
    """`revision` and `solution` stay null until the pipeline has created them (and again if it fails)."""

    name = serializers.CharField(source="model_name", read_only=True)
    revision = serializers.SerializerMethodField()
    solution = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField(help_text="this job's status URL")
    steps = StepSerializer(many=True, read_only=True)

    class Meta:
        model = OnboardingJob
        fields = ["id", "url", "status", "name", "version", "source", "tracking_id", "create_microservice",
                  "revision", "solution", "created", "started", "finished", "heartbeat", "error", "steps"]
        read_only_fields = fields

    @extend_schema_field(serializers.UUIDField(allow_null=True))
    def get_revision(self, job: OnboardingJob) -> str | None:
        exists = getattr(job, "has_revision", None)
        if exists is None:
            exists = Revision.objects.filter(pk=job.revision_uuid).exists()
        return str(job.revision_uuid) if exists else None

    @extend_schema_field(serializers.UUIDField(allow_null=True))
    def get_solution(self, job: OnboardingJob) -> str | None:
        exists = getattr(job, "has_solution", None)
        if exists is None:
            exists = Solution.objects.filter(pk=job.solution_uuid).exists()
        return str(job.solution_uuid) if exists else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_error(self, job: OnboardingJob) -> str | None:
        return job.error or None

    @extend_schema_field(serializers.CharField())
    def get_url(self, job: OnboardingJob) -> str:
        return reverse("api:onboarding-job-detail", args=[job.pk])


class JobSummarySerializer(JobSerializer):
    """For lists: the steps without their logs."""

    steps = StepSummarySerializer(many=True, read_only=True)


class JobUploadSerializer(serializers.Serializer):
    """The multipart upload (documentation): the Acumos parts, or the whole bundle as one zip."""

    model = serializers.FileField(required=False, help_text="modelpackage.zip")
    metadata = serializers.FileField(required=False, help_text="metadata.json")
    schema = serializers.FileField(required=False, help_text="model.proto")
    license = serializers.FileField(required=False, help_text="license.json (optional)")
    bundle = serializers.FileField(required=False, help_text="instead of the parts: one zip holding them")
    tracking_id = serializers.CharField(required=False, max_length=100)
    create_microservice = serializers.BooleanField(required=False, default=True)
