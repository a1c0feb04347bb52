"""A batch job (a JobRow: claimed, heartbeated, retried, reaped as every job is), its shards (the checkpoint a
resumed job starts from) and the files people upload as inputs. How they are used: batch.services."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from acumos_portal.choices import JobStatus
from acumos_portal.models import JobRow
from batch.choices import InputFormat, InputKind, OutputFormat, RequestShape, ShardState


class BatchUpload(models.Model):
    """A file its owner uploaded to be a batch job's input, kept in the portal's storage."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="batch_uploads")
    name = models.CharField(max_length=255)
    storage_key = models.CharField(max_length=500)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return self.name


class BatchJob(JobRow):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="batch_jobs")
    # Where it runs: a running deployment, or a revision in a sandbox of its own on this host for the job's time.
    deployment = models.ForeignKey("deployment.Deployment", null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="batch_jobs")
    revision = models.ForeignKey("marketplace.Revision", null=True, blank=True, on_delete=models.CASCADE,
                                 related_name="batch_jobs")
    method = models.CharField(max_length=100)
    # The input.
    input_kind = models.CharField(max_length=10, choices=InputKind.choices)
    input_ref = models.CharField(max_length=1000, help_text="the S3 key or the URL (an upload: its name)")
    upload = models.ForeignKey(BatchUpload, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    expected_sha256 = models.CharField(max_length=64, blank=True)
    expected_size = models.BigIntegerField(null=True, blank=True)
    input_bytes = models.BigIntegerField(null=True, blank=True, help_text="the input's size, once known")
    format = models.CharField(max_length=10, choices=InputFormat.choices)
    id_column = models.CharField(max_length=200, blank=True)
    # The output: under `output_prefix` in the S3 store, else under batch/jobs/<id>/ in the portal's storage.
    output_prefix = models.CharField(max_length=500, blank=True)
    output_format = models.CharField(max_length=10, choices=OutputFormat.choices, default=OutputFormat.CSV)
    shard_rows = models.PositiveIntegerField()
    request_shape = models.CharField(max_length=10, choices=RequestShape.choices, blank=True)
    # Progress, over every run (a resumed job counts on from its committed shards).
    rows_read = models.BigIntegerField(default=0)
    rows_predicted = models.BigIntegerField(default=0)
    rows_failed = models.BigIntegerField(default=0)
    shards_done = models.PositiveIntegerField(default=0)
    bytes_read = models.BigIntegerField(default=0)
    rows_per_second = models.FloatField(null=True, blank=True, help_text="over the current (or last) run")
    predictions_key = models.CharField(max_length=600, blank=True)
    errors_key = models.CharField(max_length=600, blank=True)
    cancel_requested = models.DateTimeField(null=True, blank=True)
    cancelled = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["requested_by", "-created"], name="batchjob_owner_created"),
                   models.Index(fields=["status"], name="batchjob_status")]
        constraints = [models.CheckConstraint(
            condition=models.Q(deployment__isnull=False, revision__isnull=True)
            | models.Q(deployment__isnull=True, revision__isnull=False),
            name="batchjob_runs_on_one")]

    def __str__(self):
        return f"batch job {self.pk} on {self.runs_on} ({self.state})"

    @property
    def runs_on(self) -> str:
        """What the pages and notices call where it runs."""
        if self.deployment_id:
            return self.deployment.display_name
        return f"{self.revision.solution.name} {self.revision.version} in the sandbox"

    @property
    def state(self) -> str:
        """What the pages and the API say: the job status, or "cancelled"."""
        return "cancelled" if self.cancelled else self.status

    @property
    def progress_percent(self) -> int | None:
        """By bytes (the rows are not counted before they are read); None while the size is unknown."""
        if self.status == JobStatus.SUCCEEDED:
            return 100
        if not self.input_bytes:
            return None
        return min(99, int(100 * self.bytes_read / self.input_bytes))


class BatchShard(models.Model):
    """One shard's checkpoint: `shard_rows` consecutive input rows. Its output is its own objects (part
    keys); the row says `done` in the same transaction that counts them, so a resumed job skips it."""

    job = models.ForeignKey(BatchJob, on_delete=models.CASCADE, related_name="shards")
    index = models.PositiveIntegerField()
    state = models.CharField(max_length=10, choices=ShardState.choices, default=ShardState.RUNNING)
    rows = models.PositiveIntegerField(default=0)
    predicted = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    part_key = models.CharField(max_length=600, blank=True)
    errors_part_key = models.CharField(max_length=600, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="batchshard_job_index")]

    def __str__(self):
        return f"shard {self.index} of {self.job_id} ({self.state})"
