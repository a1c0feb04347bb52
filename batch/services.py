"""Batch jobs: starting one (checked, then a job row and its task), running it in shards, resuming it, cancelling
it, and the files people upload as inputs.

Shards and resume. The input is read from its start as a stream (batch.inputs) and cut into shards of
`shard_rows` consecutive rows (shard k holds rows k*shard_rows+1 ...). Each shard is predicted (batch.runner),
then its output is written as objects of its own, at keys fixed by the job and the shard's index
(batch/jobs/<job>/parts/<k>.csv and <k>.errors.csv, or .jsonl), and only then committed: in one transaction its
BatchShard row says `done` and the job's counters grow by its rows. A job taken up again after its worker stopped (the
reaper puts it back to pending, see `_reap`: a batch is not failed for a lost worker, it goes on) reads the
input again from the start, skips the rows of the shards that are done without predicting them, and goes on at
the first shard that is not. A shard that was being written when the worker died is predicted again and its
part written again at the same keys: it replaces what was there, so no row is ever output twice, and no shard's
rows are counted twice (the count moves only with `done`).

The outputs. When every shard is done (and the input's size and sha256 are what was given), the parts are
assembled in shard order into two files, `predictions.csv` (row, the id column when asked, then one column per
output field) and `errors.csv` (row, id, error), or the same as JSON lines (`.jsonl`, each value of its own type),
streamed through a temporary file into the storage, under
`<output_prefix><job id>/` in the S3 store, or batch/jobs/<job id>/ in the portal's storage; then the parts are
deleted. Assembled rather than a manifest of parts: one file is what people download and what the next tool
reads. A job that fails or is cancelled keeps nothing (parts and outputs are deleted): a wrong checksum above
all must leave no output of the wrong data.

The end is told to whoever asked (a notification of the kind "deployment status": the job ran on one)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import time
import uuid
from datetime import timedelta
from pathlib import PurePosixPath

import botocore.exceptions
import requests
import urllib3
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from acumos_portal import jobs, sandbox
from acumos_portal.accounts.services import lock_for_quota
from acumos_portal.api.refusals import Refused
from acumos_portal.choices import UNFINISHED, JobStatus
from batch import inputs, outputs, runner, selectors
from batch.choices import InputKind, OutputFormat, ShardState
from batch.models import BatchJob, BatchShard, BatchUpload
from deployment import selectors as deployment_selectors
from deployment.backends import BackendError
from deployment.backends import local as local_runner
from deployment.choices import DeploymentStatus
from marketplace import services as marketplace_services
from marketplace.choices import NotificationKind, RevisionStatus

log = logging.getLogger(__name__)
TASK = "batch.run_job"
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
CHUNK = 1 << 20


class BatchRefused(Refused):
    """A batch job that cannot be started or changed: the message says which field, what is wrong, what goes."""


class NotAllowed(BatchRefused):
    status = 403
    code = "permission_denied"


class Cancelled(BatchRefused):
    """Raised in the worker between shards once someone asked to cancel."""


# ---------------------------------------------------------------- starting a job

def start_job(*, user, method, input, deployment=None, revision=None, format=None, id_column="",  # noqa: A002
              output_prefix="", output_format=None, shard_rows=None) -> BatchJob:
    """Check everything that can be checked now (each refusal names its field), make the row, send its task. It
    runs on `deployment` (running, managed by the user) or on `revision` (ready; run in a sandbox of its own)."""
    if (deployment is None) == (revision is None):
        raise BatchRefused("say where the job runs: a deployment (running) or a revision (run in the sandbox), "
                           "not both", "deployment")
    if deployment is not None:
        _check_deployment(user, deployment)
    else:
        _check_revision(user, revision)
    if not isinstance(method, str) or not method.strip() or len(method) > 100:
        raise BatchRefused("method must be the name of one of the model's methods (at most 100 characters)",
                           "method")
    fields = _input_fields(user, input)
    fields["format"] = inputs.detect_format(format, fields["upload"].name if fields["upload"] else fields["input_ref"])
    job = BatchJob(requested_by=user, deployment=deployment, revision=revision, method=method.strip(), **fields,
                   id_column=_id_column(id_column), output_prefix=_output_prefix(output_prefix, user),
                   output_format=_output_format(output_format), shard_rows=_shard_rows(shard_rows))
    with transaction.atomic():
        lock_for_quota(user)
        check_quota(user)
        job.save()
        jobs.enqueue(TASK, str(job.pk))
    return job


def _check_deployment(user, deployment) -> None:
    if not selectors.can_start(user, deployment):
        raise NotAllowed("only whoever created this deployment, an operator or an admin may run batch jobs on it",
                         "deployment")
    if deployment.status != DeploymentStatus.RUNNING or not deployment.endpoint_url:
        raise BatchRefused(f"the deployment is {deployment.get_status_display().lower()}, not running: start it "
                           "first", "deployment")


def _check_revision(user, revision) -> None:
    if not selectors.can_start_on_revision(user, revision):
        if deployment_selectors.can_deploy(user, revision):  # a licensee: the meter is a deployment's
            raise NotAllowed("a licensed model runs over a file on a deployment of yours, whose runner meters its "
                             "predictions: deploy this version, then start the job on the deployment", "revision")
        raise NotAllowed("only the model's owners and co-owners, operators and admins run it in the sandbox; "
                         "you may run a batch job on a deployment you manage", "revision")
    if revision.status != RevisionStatus.READY:
        raise BatchRefused(f"version {revision.version} is {revision.get_status_display().lower()}, not ready: "
                           "only a ready version runs", "revision")


# ---------------------------------------------------------------- the unfinished-jobs quota

class BatchQuotaReached(BatchRefused):
    """The user has as many unfinished batch jobs as ACUMOS_QUOTA_BATCH_JOBS allows (everyone, admins too:
    each keeps a model busy, a sandbox of this host's or a deployment's runner, for as long as its input lasts).
    429: not now, until one of them ends."""

    status = 429
    code = "quota_exceeded"


def check_quota(user) -> None:
    limit = settings.ACUMOS_QUOTA_BATCH_JOBS
    unfinished = [str(pk) for pk in BatchJob.objects.filter(requested_by=user, status__in=UNFINISHED)
                  .order_by("created").values_list("pk", flat=True)]
    if len(unfinished) >= limit:
        raise BatchQuotaReached(
            f"You have {len(unfinished)} unfinished batch job{'' if len(unfinished) == 1 else 's'} and the most "
            f"allowed per user is {limit}: wait for one to end, or cancel one (Batch jobs), then start this one.",
            details={"quota": limit, "unfinished": len(unfinished), "jobs": unfinished,
                     "setting": "ACUMOS_QUOTA_BATCH_JOBS"})


def _input_fields(user, given) -> dict:
    if not isinstance(given, dict):
        raise BatchRefused("input must be an object: {kind: s3|upload|url, key|url|upload, sha256?, size?}", "input")
    kind = given.get("kind")
    fields = {"input_kind": kind, "upload": None, "expected_sha256": _sha256(given.get("sha256")),
              "expected_size": _size(given.get("size"))}
    if kind == InputKind.S3:
        fields["input_ref"] = inputs.check_s3_key(_text(given.get("key"), "input.key"), user)
    elif kind == InputKind.URL:
        fields["input_ref"] = inputs.check_url(_text(given.get("url"), "input.url"))
    elif kind == InputKind.UPLOAD:
        upload = selectors.own_uploads(user).filter(pk=_uuid(given.get("upload"))).first()
        if upload is None:
            raise BatchRefused("no upload of yours has this id (upload the file first: POST /api/v1/batch-uploads)",
                               "input.upload")
        if fields["expected_sha256"] and fields["expected_sha256"] != upload.sha256:
            raise BatchRefused(f"the upload has sha256 {upload.sha256}, not the {fields['expected_sha256']} given",
                               "input.sha256")
        fields.update(upload=upload, input_ref=upload.name, input_bytes=upload.size)
    else:
        raise BatchRefused(f"input.kind must be one of {', '.join(InputKind.values)}; got {kind!r}", "input.kind")
    return fields


def _text(value, field: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 1000:
        raise BatchRefused(f"{field} must be text of 1 to 1000 characters", field)
    return value.strip()


def _uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value or ""))
    except ValueError:
        return None


def _sha256(value) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or not SHA256.match(value):
        raise BatchRefused("input.sha256 must be 64 hexadecimal digits (the sha256 of the whole file)", "input.sha256")
    return value.lower()


def _size(value) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BatchRefused("input.size must be the file's size in bytes (a whole number)", "input.size")
    limit = settings.ACUMOS_BATCH_MAX_INPUT_BYTES
    if value > limit:
        raise BatchRefused(f"the input's size ({value} bytes) is over the limit of {limit} bytes", "input.size")
    return value


def _id_column(value) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or len(value) > 200:
        raise BatchRefused("id_column must be the name of a column of the input (at most 200 characters)",
                           "id_column")
    return value


def _output_prefix(value, user) -> str:
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or len(value) > 400:
        raise BatchRefused("output_prefix must be a key prefix in the S3 store (at most 400 characters)",
                           "output_prefix")
    prefix = inputs.check_s3_key(value, user, "output_prefix")
    return prefix if prefix.endswith("/") else prefix + "/"


def _output_format(value) -> str:
    if value in (None, ""):
        return OutputFormat.CSV
    if value not in OutputFormat.values:
        raise BatchRefused(f"output_format {value!r} is not one batch jobs write; they write "
                           f"{', '.join(OutputFormat.values)}", "output_format")
    return value


def _shard_rows(value) -> int:
    largest = settings.ACUMOS_BATCH_MAX_SHARD_ROWS
    if value is None:
        return min(settings.ACUMOS_BATCH_SHARD_ROWS, largest)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= largest:
        raise BatchRefused(f"shard_rows must be a whole number from 1 to {largest}", "shard_rows")
    return value


# ---------------------------------------------------------------- uploads

def upload_input(*, user, uploaded) -> BatchUpload:
    """Store an uploaded file (already streamed to a temporary file by the upload handler) as an input."""
    limit = settings.ACUMOS_BATCH_MAX_INPUT_BYTES
    if uploaded.size > limit:
        raise BatchRefused(f"the file has {uploaded.size} bytes, over the limit of {limit} bytes", "file")
    name = PurePosixPath(uploaded.name or "input").name[:200] or "input"
    digest = hashlib.sha256()
    for chunk in uploaded.chunks(CHUNK):
        digest.update(chunk)
    uploaded.seek(0)
    key = f"batch/uploads/{uuid.uuid4().hex}/{re.sub(r'[^A-Za-z0-9._-]', '_', name)}"
    saved = default_storage.save(key, uploaded)
    return BatchUpload.objects.create(owner=user, name=name, storage_key=saved, size=uploaded.size,
                                      sha256=digest.hexdigest())


def discard_upload(upload: BatchUpload) -> None:
    """An upload no job uses (the job it came with was refused): its file and its row."""
    default_storage.delete(upload.storage_key)
    upload.delete()


# ---------------------------------------------------------------- cancelling

def cancel(job: BatchJob, user) -> BatchJob:
    """A pending job ends at once; a running one at its next shard (its worker looks between shards)."""
    if not selectors.can_cancel(user, job):
        raise NotAllowed("only whoever started this job or an admin may cancel it")
    if job.status not in UNFINISHED:
        raise BatchRefused(f"this job has already ended ({job.state}): there is nothing to cancel", "status")
    now = timezone.now()
    BatchJob.objects.filter(pk=job.pk, cancel_requested__isnull=True).update(cancel_requested=now)
    pending = BatchJob.objects.filter(pk=job.pk, status=JobStatus.PENDING)
    if pending.update(status=JobStatus.FAILED, finished=now, cancelled=True, error=_cancelled_by(user)):
        _discard_outputs(job)
    elif not job.cancelled:
        # The worker ends it after its shard, with this sentence (_failed).
        BatchJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(error=_cancelled_by(user))
    job.refresh_from_db()
    return job


def _cancelled_by(user) -> str:
    return f"cancelled by {user.username}"


# ---------------------------------------------------------------- running: the task's body

def run_job(job_id: str) -> None:
    rows = BatchJob.objects.filter(pk=job_id)
    if not jobs.claim(rows):
        return
    job = BatchJob.objects.select_related("deployment", "upload", "requested_by").get(pk=job_id)
    jobs.run_claimed(job, _run, fail=_failed, permanent=(Refused,),
                     transient=(requests.RequestException, urllib3.exceptions.HTTPError,
                                botocore.exceptions.BotoCoreError),
                     what=f"batch job {job_id}", where=" while running the batch")


class _Run:
    """This run's own pace (a resumed job's rows per second are those it predicted since it was taken up)."""

    def __init__(self):
        self.started = time.monotonic()
        self.rows = 0

    def add(self, rows: int) -> float:
        self.rows += rows
        return round(self.rows / max(time.monotonic() - self.started, 1e-6), 1)


def _run(job: BatchJob) -> None:
    _stop_if_cancelled(job)
    with _endpoint(job) as endpoint:
        interface = runner.describe(endpoint, job.method)
        BatchJob.objects.filter(pk=job.pk).update(request_shape=interface.shape)
        done = set(job.shards.filter(state=ShardState.DONE).values_list("index", flat=True))
        pace = _Run()
        with inputs.open_source(job) as (meter, size), runner.Predictor(interface) as predictor:
            if size is not None:
                BatchJob.objects.filter(pk=job.pk).update(input_bytes=size)
            for index, rows in _shards(inputs.read_rows(meter, job.format), job.shard_rows):
                if index == 0:
                    _check_columns(job, interface, rows)
                if index in done:
                    continue
                _stop_if_cancelled(job)
                _predict_shard(job, interface, predictor=predictor, index=index, rows=rows, meter=meter, pace=pace)
            meter.verify(job.expected_sha256)
            BatchJob.objects.filter(pk=job.pk).update(bytes_read=meter.count, input_bytes=meter.count)
    _stop_if_cancelled(job)
    _assemble(job, interface)


@contextlib.contextmanager
def _endpoint(job: BatchJob):
    """The runner the rows go to: the deployment's (running), or one of the revision's, started in a sandbox for
    this run and ended with it (a resumed job starts another; the sweep ends one whose worker died)."""
    if job.deployment_id:
        deployment = job.deployment
        if not selectors.can_start(job.requested_by, deployment):
            raise NotAllowed(f"{job.requested_by.username} may no longer run batch jobs on this deployment",
                             "deployment")
        if deployment.status != DeploymentStatus.RUNNING or not deployment.endpoint_url:
            raise BatchRefused(f"the deployment is {deployment.get_status_display().lower()}, not running",
                               "deployment")
        yield deployment.endpoint_url.rstrip("/")
        return
    if not selectors.can_start_on_revision(job.requested_by, job.revision):  # asked again: a job may wait or resume
        raise NotAllowed(f"{job.requested_by.username} may no longer run this version in the sandbox", "revision")
    try:
        with local_runner.serving(job.revision, "batch") as url:
            yield url
    except sandbox.Unavailable as exc:
        raise BatchRefused(f"the model cannot run in the sandbox on this host: {exc}", "revision") from exc
    except BackendError as exc:
        raise BatchRefused(f"the model's runner did not start in the sandbox: {exc}", "revision") from exc


def _shards(rows, size: int):
    """(index, [(row number, row)]) for each `size` consecutive rows."""
    shard, index = [], 0
    for number, row in rows:
        if (number - 1) // size != index:
            yield index, shard
            shard, index = [], (number - 1) // size
        shard.append((number, row))
    if shard:
        yield index, shard


def _check_columns(job: BatchJob, interface, rows) -> None:
    """A table (CSV, Parquet) lacking a column the method takes, or the id column, fails at once: every row would."""
    first = next((row for _, row in rows if isinstance(row, dict)), None)
    if first is None or job.format == "jsonl":
        return
    columns = list(first)
    if job.id_column and job.id_column not in first:
        raise BatchRefused(f"id_column {job.id_column!r} is not a column of the input; its columns are "
                           f"{', '.join(columns)}", "id_column")
    missing = [name for name, _ in interface.inputs if name not in first]
    if missing:
        raise BatchRefused(f"the input has no column {', '.join(missing)}; method {job.method} takes "
                           f"{', '.join(name for name, _ in interface.inputs)} (its columns are "
                           f"{', '.join(columns)})", "input")


def _stop_if_cancelled(job: BatchJob) -> None:
    if BatchJob.objects.filter(pk=job.pk, cancel_requested__isnull=False).exists():
        raise Cancelled("cancelled")


def _predict_shard(job, interface, *, predictor, index: int, rows, meter, pace: _Run) -> None:
    BatchShard.objects.update_or_create(job=job, index=index, defaults={"state": ShardState.RUNNING})
    fields = [name for name, _ in interface.inputs]
    ready, refused = [], {}
    for number, row in rows:
        why = row.message if isinstance(row, inputs.BadRow) else _missing(row, fields)
        if why:
            refused[number] = why
        else:
            ready.append((number, row))
    outcomes = dict(zip([n for n, _ in ready], predictor.predict([row for _, row in ready]), strict=True))
    out, err = outputs.Writer(job.output_format), outputs.Writer(job.output_format)
    predicted = failed = 0
    for number, row in rows:
        ident = row.get(job.id_column) if job.id_column and isinstance(row, dict) else None
        outcome = outcomes.get(number)
        if outcome is not None and outcome.outputs is not None:
            out.write([("row", number), *([(job.id_column, ident)] if job.id_column else []),
                       *((name, outcome.outputs.get(name)) for name in interface.outputs)])
            predicted += 1
        else:
            err.write([("row", number), (job.id_column or "id", ident),
                       ("error", f"row {number} {refused[number]}" if number in refused else outcome.error)])
            failed += 1
    part, errors_part = outputs.part_keys(job, index)
    outputs.put(part, out.getvalue())
    outputs.put(errors_part, err.getvalue())
    _commit_shard(job, index, rows=len(rows), predicted=predicted, failed=failed, bytes_read=meter.count,
                  rate=pace.add(len(rows)))


def _missing(row: dict, fields: list[str]) -> str:
    absent = [name for name in fields if name not in row]
    return f"has no value for input field {', '.join(absent)}" if absent else ""


def _commit_shard(job, index: int, *, rows: int, predicted: int, failed: int, bytes_read: int, rate: float) -> None:
    """The checkpoint: the shard is done and counted together, or neither."""
    part, errors_part = outputs.part_keys(job, index)
    now = timezone.now()
    with transaction.atomic():
        BatchShard.objects.filter(job=job, index=index).update(
            state=ShardState.DONE, rows=rows, predicted=predicted, failed=failed, part_key=part,
            errors_part_key=errors_part, finished=now)
        BatchJob.objects.filter(pk=job.pk).update(
            rows_read=F("rows_read") + rows, rows_predicted=F("rows_predicted") + predicted,
            rows_failed=F("rows_failed") + failed, shards_done=F("shards_done") + 1, bytes_read=bytes_read,
            rows_per_second=rate, heartbeat=now)


def _assemble(job: BatchJob, interface) -> None:
    shards = list(job.shards.filter(state=ShardState.DONE).order_by("index"))
    predictions, errors = outputs.assemble(job, interface.outputs, shards)
    for shard in shards:
        default_storage.delete(shard.part_key)
        default_storage.delete(shard.errors_part_key)
    jobs.finish(BatchJob.objects.filter(pk=job.pk), JobStatus.SUCCEEDED, predictions_key=predictions,
                errors_key=errors, error="")
    job.refresh_from_db()
    _tell(job, f"Batch job done: {job.rows_predicted} rows predicted, {job.rows_failed} in the errors file")


def _discard_outputs(job: BatchJob) -> None:
    """Every part and output of the job (a failed or cancelled job keeps nothing)."""
    keys = [key for shard in job.shards.all() for key in (shard.part_key, shard.errors_part_key) if key]
    keys += [*outputs.output_keys(job), *outputs.part_keys(job, 0)]
    keys += [key for index in job.shards.values_list("index", flat=True) for key in outputs.part_keys(job, index)]
    for key in set(keys):
        with contextlib.suppress(OSError, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            default_storage.delete(key)
    job.shards.all().delete()


# ---------------------------------------------------------------- the end

def _failed(job: BatchJob, message: str) -> None:
    current = BatchJob.objects.filter(pk=job.pk).values("cancel_requested", "error").first() or {}
    cancelled = current.get("cancel_requested") is not None
    if cancelled:  # cancel() said who: "cancelled by <username>"
        said = current.get("error") or ""
        message = said if said.startswith("cancelled") else "cancelled"
    _discard_outputs(job)
    jobs.finish(BatchJob.objects.filter(pk=job.pk), JobStatus.FAILED, error=message, cancelled=cancelled,
                predictions_key="", errors_key="")
    _tell(job, "Batch job cancelled" if cancelled else "Batch job failed", message)


def _tell(job: BatchJob, title: str, message: str = "") -> None:
    marketplace_services.notify(job.requested_by, NotificationKind.DEPLOYMENT,
                                f"{title} ({job.runs_on})"[:200], url=f"/batch-jobs/{job.pk}/",
                                message=message, target=f"batch-job:{job.pk}")


# ---------------------------------------------------------------- the reaper's part

def _reap(send: bool) -> list[str]:
    """A batch whose worker stopped is not failed: it goes back to pending and is sent again, to go on from
    its last done shard (bounded by ACUMOS_JOB_MAX_ATTEMPTS claims). A pending one whose task was lost (no
    heartbeat for a stale period) is sent again."""
    stale = timezone.now() - timedelta(seconds=settings.ACUMOS_JOB_STALE_SECONDS)
    running = BatchJob.objects.filter(status=JobStatus.RUNNING)
    actions = [_stopped(row, send) for row in running
               if jobs.process_gone(row.claimed_by) or (row.heartbeat or row.started or row.created) < stale]
    if send:
        for row in BatchJob.objects.filter(status=JobStatus.PENDING).exclude(heartbeat__gte=stale).filter(
                created__lt=stale):
            actions.append(_send_again(row))
    return [action for action in actions if action]


def _resume() -> list[str]:
    """At the start of the process that runs the jobs: what a stopped one left goes on now."""
    actions = [_stopped(row, True) for row in BatchJob.objects.filter(status=JobStatus.RUNNING)
               if jobs.process_gone(row.claimed_by)]
    actions += [_send_again(row) for row in BatchJob.objects.filter(status=JobStatus.PENDING)]
    return [action for action in actions if action]


def _stopped(row: BatchJob, send: bool) -> str:
    claimed = BatchJob.objects.filter(pk=row.pk, status=JobStatus.RUNNING, claimed_by=row.claimed_by)
    if row.cancel_requested is not None or row.attempts >= settings.ACUMOS_JOB_MAX_ATTEMPTS:
        if claimed.exists():
            _failed(row, "cancelled" if row.cancel_requested else
                    f"its worker stopped {row.attempts} times; giving up (the shards done were discarded)")
            return f"batch job {row.pk}: failed"
        return ""
    if not claimed.update(status=JobStatus.PENDING, heartbeat=timezone.now()):
        return ""
    if send:
        jobs.send(jobs.task_named(TASK), str(row.pk))
    return f"batch job {row.pk}: taken up again from shard {row.shards.filter(state=ShardState.DONE).count()}"


def _send_again(row: BatchJob) -> str:
    if row.attempts >= settings.ACUMOS_JOB_MAX_ATTEMPTS:
        _failed(row, f"this batch job did not finish after {row.attempts} attempts; giving up")
        return f"batch job {row.pk}: failed after {row.attempts} attempts"
    BatchJob.objects.filter(pk=row.pk).update(heartbeat=timezone.now())
    jobs.send(jobs.task_named(TASK), str(row.pk))
    return f"batch job {row.pk}: sent again"


JOBS = jobs.JobKind(label="batch job", model=BatchJob, task=TASK, fail=_failed, reaper=_reap, resumer=_resume)
