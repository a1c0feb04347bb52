"""Batch jobs for real: sandboxed local runners of the iris example, the input on moto's S3 or in the portal's
storage. 10,000 rows through the repeated-field model (many rows per request) equal the runner's answers row by
row, joined to their ids; bad rows land in the errors file with their row numbers while the others are
predicted; a crash after shard k resumes at shard k+1 with no row output twice; cancelling stops it and keeps
nothing; the one-row-per-message model is called a row per request and answers the same."""

from __future__ import annotations

import hashlib
import json
import random

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from acumos_portal import jobs
from acumos_portal.choices import JobStatus
from batch import services
from batch.choices import RequestShape, ShardState
from batch.models import BatchJob

from .conftest import as_csv, iris_rows, predict_one, read_csv, run_job

pytestmark = pytest.mark.django_db


def start(owner, deployment, key: str, **options) -> BatchJob:
    return services.start_job(user=owner, deployment=deployment, method="classify",
                              input={"kind": "s3", "key": key, **options.pop("input", {})}, **options)


@pytest.fixture
def no_send(monkeypatch):
    """Jobs are run by the test (run_job), not by a background thread."""
    monkeypatch.setattr(jobs, "send", lambda *args, **kwargs: None)


def test_ten_thousand_rows_from_s3_equal_row_by_row_predictions_joined_to_their_ids(
        owner, repeated_deployment, s3_store, no_send):
    rows = iris_rows(10_000)
    data = as_csv(rows)
    s3_store.client.put_object(Bucket=s3_store.name, Key="batch-data/owner/iris.csv", Body=data)

    job = run_job(start(owner, repeated_deployment, "batch-data/owner/iris.csv", id_column="id", shard_rows=2_500,
                        input={"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}))

    assert job.status == JobStatus.SUCCEEDED, job.error
    assert (job.rows_read, job.rows_predicted, job.rows_failed, job.shards_done) == (10_000, 10_000, 0, 4)
    assert job.request_shape == RequestShape.COLUMNS and job.bytes_read == len(data) and job.rows_per_second > 0
    predictions = read_csv(s3_store.read(job.predictions_key))
    assert [p["row"] for p in predictions] == [str(i) for i in range(1, 10_001)]
    assert [p["id"] for p in predictions] == [r["id"] for r in rows]
    sample = random.Random(1).sample(range(10_000), 300)
    assert [int(predictions[i]["species"]) for i in sample] == [
        predict_one(repeated_deployment, rows[i], repeated=True) for i in sample]
    assert read_csv(s3_store.read(job.errors_key)) == []
    # Only the two outputs are left: the parts were assembled and deleted.
    assert s3_store.object_keys(f"batch/jobs/{job.pk}/") == sorted([job.predictions_key, job.errors_key])


def test_bad_rows_go_to_the_errors_file_with_their_row_numbers_and_the_others_are_predicted(
        owner, repeated_deployment, s3_store, no_send):
    rows = iris_rows(1_000)
    bad = {17: "sepal_length", 500: "petal_width", 999: "sepal_width"}
    for index, column in bad.items():
        rows[index][column] = "not-a-number"
    s3_store.client.put_object(Bucket=s3_store.name, Key="batch-data/owner/bad.csv", Body=as_csv(rows))

    job = run_job(start(owner, repeated_deployment, "batch-data/owner/bad.csv", id_column="id", shard_rows=400,
                        output_prefix="batch-data/owner/out"))

    assert job.status == JobStatus.SUCCEEDED, job.error
    assert (job.rows_predicted, job.rows_failed) == (997, 3)
    assert job.predictions_key == f"batch-data/owner/out/{job.pk}/predictions.csv"
    errors = read_csv(s3_store.read(job.errors_key))
    assert [(e["row"], e["id"]) for e in errors] == [(str(i + 1), rows[i]["id"]) for i in sorted(bad)]
    for error, index in zip(errors, sorted(bad), strict=True):
        assert bad[index] in error["error"] and "not-a-number" in error["error"]
    predicted = read_csv(s3_store.read(job.predictions_key))
    assert [p["id"] for p in predicted] == [r["id"] for i, r in enumerate(rows) if i not in bad]
    good = [i for i in range(1_000) if i not in bad][::50]
    by_id = {p["id"]: int(p["species"]) for p in predicted}
    assert [by_id[rows[i]["id"]] for i in good] == [predict_one(repeated_deployment, rows[i], repeated=True)
                                                    for i in good]


def test_json_lines_output_keeps_each_value_typed_and_says_the_same_as_csv(
        owner, repeated_deployment, s3_store, no_send):
    rows = iris_rows(600, seed=5)
    rows[42]["petal_width"] = "wide"
    s3_store.client.put_object(Bucket=s3_store.name, Key="batch-data/owner/typed.csv", Body=as_csv(rows))

    as_lines = run_job(start(owner, repeated_deployment, "batch-data/owner/typed.csv", id_column="id", shard_rows=250,
                             output_format="jsonl"))
    as_table = run_job(start(owner, repeated_deployment, "batch-data/owner/typed.csv", id_column="id", shard_rows=250))

    assert as_lines.status == as_table.status == JobStatus.SUCCEEDED, (as_lines.error, as_table.error)
    assert as_lines.predictions_key.endswith("/predictions.jsonl") and as_lines.errors_key.endswith("/errors.jsonl")
    lines = [json.loads(line) for line in s3_store.read(as_lines.predictions_key).decode().splitlines()]
    assert all(isinstance(line["species"], int) and isinstance(line["row"], int) for line in lines)
    assert [(str(line["row"]), line["id"], str(line["species"])) for line in lines] == [
        (p["row"], p["id"], p["species"]) for p in read_csv(s3_store.read(as_table.predictions_key))]
    errors = [json.loads(line) for line in s3_store.read(as_lines.errors_key).decode().splitlines()]
    assert [(e["row"], e["id"]) for e in errors] == [(43, rows[42]["id"])] and "wide" in errors[0]["error"]


def test_a_parquet_id_column_of_dates_is_written_as_text_in_json_lines(owner, repeated_deployment, s3_store, no_send):
    import datetime
    import io as bytes_io

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = iris_rows(40, seed=8)
    days = [datetime.date(2026, 1, 1) + datetime.timedelta(days=i) for i in range(40)]
    table = pa.table({"day": days, **{name: [float(r[name]) for r in rows] for name in
                                      ("sepal_length", "sepal_width", "petal_length", "petal_width")}})
    data = bytes_io.BytesIO()
    pq.write_table(table, data)
    s3_store.client.put_object(Bucket=s3_store.name, Key="batch-data/owner/days.parquet", Body=data.getvalue())

    job = run_job(start(owner, repeated_deployment, "batch-data/owner/days.parquet", id_column="day",
                        output_format="jsonl"))

    assert job.status == JobStatus.SUCCEEDED, job.error
    lines = [json.loads(line) for line in s3_store.read(job.predictions_key).decode().splitlines()]
    assert [line["day"] for line in lines] == [day.isoformat() for day in days]


class Crash(BaseException):
    """Not an Exception: like a killed worker, it gets past the job's own error handling."""


def test_a_crash_after_shard_k_resumes_at_shard_k_plus_1_without_output_twice(
        owner, repeated_deployment, local_storage, monkeypatch, no_send):
    rows = iris_rows(1_000)
    upload = services.upload_input(user=owner, uploaded=SimpleUploadedFile("iris.csv", as_csv(rows)))
    job = services.start_job(user=owner, deployment=repeated_deployment, method="classify", id_column="id",
                             input={"kind": "upload", "upload": str(upload.pk)}, shard_rows=200)
    commit, predicted_shards = services._commit_shard, []

    def crash_after_shard_2(job, index, **counts):
        commit(job, index, **counts)
        predicted_shards.append(index)
        if index == 2:
            raise Crash

    monkeypatch.setattr(services, "_commit_shard", crash_after_shard_2)
    with pytest.raises(Crash):
        services.run_job(str(job.pk))
    job.refresh_from_db()
    assert (job.status, job.shards_done, job.rows_read) == (JobStatus.RUNNING, 3, 600)
    # Its worker is gone: the reaper takes it up again (not failed), and the task goes on.
    BatchJob.objects.filter(pk=job.pk).update(claimed_by="elsewhere:1:0")
    monkeypatch.setattr(jobs, "process_gone", lambda claimant: claimant == "elsewhere:1:0")
    sent = []
    monkeypatch.setattr(jobs, "send", lambda task, *args, **kwargs: sent.append(args))
    assert services.JOBS.reap() == [f"batch job {job.pk}: taken up again from shard 3"]
    assert sent == [(str(job.pk),)]
    job = run_job(job)

    assert job.status == JobStatus.SUCCEEDED, job.error
    assert predicted_shards == [0, 1, 2, 3, 4]  # shards 0-2 were not predicted again
    assert (job.rows_read, job.rows_predicted, job.shards_done, job.attempts) == (1_000, 1_000, 5, 2)
    predictions = read_csv(default_storage.open(job.predictions_key).read())
    assert [p["id"] for p in predictions] == [r["id"] for r in rows]  # each once, in order
    assert list(job.shards.values_list("state", flat=True)) == [ShardState.DONE] * 5


def test_a_shard_written_but_not_committed_is_written_again_in_place(
        owner, repeated_deployment, local_storage, monkeypatch, no_send):
    rows = iris_rows(300)
    upload = services.upload_input(user=owner, uploaded=SimpleUploadedFile("iris.csv", as_csv(rows)))
    job = services.start_job(user=owner, deployment=repeated_deployment, method="classify", id_column="id",
                             input={"kind": "upload", "upload": str(upload.pk)}, shard_rows=100)
    commit = services._commit_shard

    def die_before_committing_shard_1(job, index, **counts):
        if index == 1:
            raise Crash  # its parts are written, its row not done
        commit(job, index, **counts)

    monkeypatch.setattr(services, "_commit_shard", die_before_committing_shard_1)
    with pytest.raises(Crash):
        services.run_job(str(job.pk))
    monkeypatch.setattr(services, "_commit_shard", commit)
    BatchJob.objects.filter(pk=job.pk).update(status=JobStatus.PENDING)  # as the reaper puts it back
    job = run_job(job)

    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.rows_predicted == 300
    assert [p["id"] for p in read_csv(default_storage.open(job.predictions_key).read())] == [r["id"] for r in rows]


def test_cancelling_a_running_job_stops_it_after_its_shard_and_keeps_nothing(
        owner, repeated_deployment, s3_store, monkeypatch, no_send):
    s3_store.client.put_object(Bucket=s3_store.name, Key="batch-data/owner/c.csv", Body=as_csv(iris_rows(1_000)))
    job = start(owner, repeated_deployment, "batch-data/owner/c.csv", shard_rows=100)
    commit = services._commit_shard

    def cancel_during_shard_1(job, index, **counts):
        commit(job, index, **counts)
        if index == 1:
            services.cancel(BatchJob.objects.get(pk=job.pk), owner)

    monkeypatch.setattr(services, "_commit_shard", cancel_during_shard_1)
    job = run_job(job)

    assert (job.state, job.shards_done, job.error) == ("cancelled", 2, "cancelled by owner")
    assert (job.predictions_key, job.errors_key) == ("", "")
    assert s3_store.object_keys("batch/") == [] and not job.shards.exists()
    assert owner.notifications.filter(title__startswith="Batch job cancelled").exists()


def test_a_model_of_one_row_per_message_is_called_a_row_per_request_and_answers_the_same(
        owner, single_deployment, s3_store, no_send):
    rows = iris_rows(300, seed=3)
    rows[41]["petal_length"] = ""
    s3_store.client.put_object(Bucket=s3_store.name, Key="batch-data/owner/one.csv", Body=as_csv(rows))

    job = run_job(start(owner, single_deployment, "batch-data/owner/one.csv", id_column="id", shard_rows=128))

    assert job.status == JobStatus.SUCCEEDED, job.error
    assert (job.request_shape, job.rows_predicted, job.rows_failed) == (RequestShape.PER_ROW, 299, 1)
    errors = read_csv(s3_store.read(job.errors_key))
    assert [(e["row"], e["id"]) for e in errors] == [("42", "r00041")] and "petal_length" in errors[0]["error"]
    predicted = {p["id"]: int(p["species"]) for p in read_csv(s3_store.read(job.predictions_key))}
    assert predicted == {r["id"]: predict_one(single_deployment, r, repeated=False) for i, r in enumerate(rows)
                         if i != 41}


def test_a_wrong_checksum_or_an_object_over_the_cap_fails_the_job_clearly_and_keeps_nothing(
        owner, repeated_deployment, s3_store, settings, no_send):
    data = as_csv(iris_rows(500))
    s3_store.client.put_object(Bucket=s3_store.name, Key="batch-data/owner/w.csv", Body=data)

    wrong = run_job(start(owner, repeated_deployment, "batch-data/owner/w.csv", shard_rows=100,
                          input={"sha256": "f" * 64}))

    assert wrong.status == JobStatus.FAILED
    assert wrong.error == (f"s3 object batch-data/owner/w.csv has sha256 {hashlib.sha256(data).hexdigest()}, not the "
                           f"{'f' * 64} given: it is not the file you meant (or it changed); no output was kept")
    assert s3_store.object_keys("batch/") == [] and not wrong.shards.exists()

    settings.ACUMOS_BATCH_MAX_INPUT_BYTES = len(data) - 1
    over = run_job(start(owner, repeated_deployment, "batch-data/owner/w.csv", shard_rows=100))
    assert over.status == JobStatus.FAILED
    assert over.error == (f"s3 object batch-data/owner/w.csv has {len(data)} bytes, over the limit of {len(data) - 1} "
                          "bytes (ACUMOS_BATCH_MAX_INPUT_BYTES)")
    assert s3_store.object_keys("batch/") == []
