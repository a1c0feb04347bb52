"""Who may start, see and cancel batch jobs (the personas, through the API and the pages), and the inputs a
job refuses before it starts: each refusal names its field, says what is wrong and what is allowed, and
leaves no job behind."""

from __future__ import annotations

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from acumos_portal.api.refusals import Refused
from acumos_portal.choices import JobStatus
from batch import services
from batch.models import BatchJob

pytestmark = pytest.mark.django_db
URL = "/api/v1/batch-jobs"


def key_of(user, name: str = "in.csv") -> str:
    """An object in the user's own folder of the store (anonymous: a folder nobody has)."""
    return f"batch-data/{user.username if user else 'nobody'}/{name}"


def body(deployment, user=None, **changes) -> dict:
    return {"deployment": str(deployment.pk), "method": "classify",
            "input": {"kind": "s3", "key": key_of(user or deployment.created_by)}, **changes}


@pytest.fixture
def people(owner, other_user, operator, admin_user):
    return {"owner": owner, "other": other_user, "operator": operator, "admin": admin_user, "anonymous": None}


@pytest.mark.parametrize(("who", "expected"), [("owner", 202), ("operator", 202), ("admin", 202), ("other", 404),
                                               ("anonymous", 401)])
def test_who_may_start_a_job_on_a_deployment(who, expected, people, running, s3_store, client_for):
    answer = client_for(people[who]).post(URL, body(running, people[who]), content_type="application/json")

    assert answer.status_code == expected, answer.content
    assert BatchJob.objects.count() == (1 if expected == 202 else 0)
    if expected == 202:
        assert answer.json()["state"] == "pending" and answer.json()["requested_by"] == people[who].username


def test_someone_who_sees_a_deployment_but_does_not_manage_it_may_not_start_one(other_user, running, s3_store):
    with pytest.raises(services.NotAllowed, match="only whoever created this deployment"):
        services.start_job(user=other_user, deployment=running, method="classify",
                           input={"kind": "s3", "key": key_of(other_user)})


@pytest.fixture
def job(owner, running, s3_store):
    return services.start_job(user=owner, deployment=running, method="classify",
                              input={"kind": "s3", "key": key_of(owner)})


@pytest.mark.parametrize(("who", "sees"), [("owner", True), ("admin", True), ("operator", False), ("other", False),
                                           ("anonymous", False)])
def test_only_its_owner_and_admins_see_and_cancel_a_job(who, sees, people, job, client_for):
    client = client_for(people[who])

    assert client.get(f"{URL}/{job.pk}").status_code == (200 if sees else 404 if people[who] else 401)
    assert client.get(f"/batch-jobs/{job.pk}/").status_code == (200 if sees else 404 if people[who] else 302)
    listed = client.get(URL)
    if people[who] is not None:
        assert [j["id"] for j in listed.json()["results"]] == ([str(job.pk)] if sees else [])
    cancelled = client.post(f"{URL}/{job.pk}/cancel")
    assert cancelled.status_code == (200 if sees else 404 if people[who] else 401)
    job.refresh_from_db()
    assert job.state == ("cancelled" if sees else "pending")


def test_a_pending_job_cancelled_ends_at_once_and_a_finished_one_cannot_be(owner, job):
    services.cancel(job, owner)
    assert (job.status, job.cancelled, job.error) == (JobStatus.FAILED, True, "cancelled by owner")
    with pytest.raises(services.BatchRefused, match="already ended"):
        services.cancel(job, owner)


def test_the_page_polls_while_the_job_runs_and_stops_once_it_ended(owner, job, client_for):
    client = client_for(owner)
    running = client.get(f"/batch-jobs/{job.pk}/progress/").content.decode()
    assert 'hx-trigger="every 2s"' in running and "Cancel" in running
    services.cancel(job, owner)
    ended = client.get(f"/batch-jobs/{job.pk}/progress/").content.decode()
    assert "hx-trigger" not in ended and "cancelled by owner" in ended
    assert str(job.pk)[:8] in client.get("/batch-jobs/").content.decode()


# ---------------------------------------------------------------- refusals

def refused(owner, deployment, field: str, match: str, **given):
    with pytest.raises(Refused, match=match) as caught:
        services.start_job(user=owner, deployment=deployment, method="classify", **given)
    assert caught.value.field == field
    assert not BatchJob.objects.exists()


def test_a_url_that_is_not_http_is_refused(owner, running, settings):
    settings.ACUMOS_BATCH_ALLOWED_URL_PREFIXES = ["file:///"]
    refused(owner, running, "input.url", "must start with http:// or https://, not file:",
            input={"kind": "url", "url": "file:///etc/passwd"})


def test_a_url_to_a_private_address_is_refused_even_under_an_allowed_prefix(owner, running, settings):
    settings.ACUMOS_BATCH_ALLOWED_URL_PREFIXES = ["http://127.0.0.1:8000/", "http://10.1.2.3/"]
    refused(owner, running, "input.url", "127.0.0.1 is a loopback address: batch inputs may only be read from public",
            input={"kind": "url", "url": "http://127.0.0.1:8000/data.csv"})
    refused(owner, running, "input.url", "10.1.2.3 is a private address",
            input={"kind": "url", "url": "http://10.1.2.3/data.csv"})


def test_a_url_outside_the_allowed_prefixes_is_refused(owner, running, settings):
    settings.ACUMOS_BATCH_ALLOWED_URL_PREFIXES = []
    refused(owner, running, "input.url", r"not under a prefix an admin allows for batch inputs \(allowed: none yet\)",
            input={"kind": "url", "url": "http://93.184.215.14/data.csv"})


def test_an_s3_key_outside_the_users_own_folder_is_refused(owner, running, s3_store):
    refused(owner, running, "input.key", r"batch jobs may only use keys under batch-data/owner/ \(your own folder\)",
            input={"kind": "s3", "key": "blobs/ab/abcdef"})
    refused(owner, running, "input.key", "batch jobs may only use keys under batch-data/owner/",
            input={"kind": "s3", "key": "batch-data/other/their-data.csv"})  # another user's data
    refused(owner, running, "input.key", "batch jobs may only use keys under batch-data/owner/",
            input={"kind": "s3", "key": "batch-data/owner-2/x.csv"})  # a name that only starts like theirs
    refused(owner, running, "input.key", "may not hold control characters",
            input={"kind": "s3", "key": "batch-data/owner/a\x00.csv"})
    refused(owner, running, "output_prefix", "batch jobs may only use keys under batch-data/owner/",
            input={"kind": "s3", "key": key_of(owner)}, output_prefix="blobs/")
    refused(owner, running, "output_prefix", "batch jobs may only use keys under batch-data/owner/",
            input={"kind": "s3", "key": key_of(owner)}, output_prefix="batch-data/other/out")
    refused(owner, running, "output_prefix", "at most 400 characters",
            input={"kind": "s3", "key": key_of(owner)}, output_prefix="batch-data/owner/" + "x" * 400)


def test_an_admin_reads_any_key_under_the_batch_prefixes(admin_user, running, s3_store):
    job = services.start_job(user=admin_user, deployment=running, method="classify",
                             input={"kind": "s3", "key": "batch-data/owner/in.csv"})

    assert job.input_ref == "batch-data/owner/in.csv"


def test_a_malformed_upload_id_is_refused_as_no_upload(owner, running, local_storage, client_for):
    for given in ("-" * 36, "0" * 33, "{not-a-uuid}"):
        answer = client_for(owner).post(URL, body(running, input={"kind": "upload", "upload": given}),
                                        content_type="application/json")
        assert answer.status_code == 400 and "no upload of yours has this id" in str(answer.json()), answer.content


def test_s3_inputs_need_an_s3_store(owner, running, local_storage):
    refused(owner, running, "input.key", "stores its files locally",
            input={"kind": "s3", "key": key_of(owner, "a.csv")})


def test_an_input_over_the_size_cap_is_refused(owner, running, s3_store, settings):
    settings.ACUMOS_BATCH_MAX_INPUT_BYTES = 1000
    refused(owner, running, "input.size", r"over the limit of 1000 bytes",
            input={"kind": "s3", "key": key_of(owner, "a.csv"), "size": 1001})


def test_a_malformed_checksum_is_refused(owner, running, s3_store):
    refused(owner, running, "input.sha256", "64 hexadecimal digits",
            input={"kind": "s3", "key": key_of(owner, "a.csv"), "sha256": "abc"})


@pytest.mark.parametrize(("given", "name", "match"), [
    (None, "batch-data/owner/a.xlsx", "cannot be told from its name; say it: csv, jsonl, parquet"),
    ("xml", "batch-data/owner/a.csv", "'xml' is not a format batch jobs read; they read csv, jsonl, parquet")])
def test_an_unknown_format_is_refused(given, name, match, owner, running, s3_store):
    refused(owner, running, "format", match, input={"kind": "s3", "key": name}, format=given)


def test_another_persons_upload_is_not_an_input(owner, other_user, running, local_storage):
    upload = services.upload_input(user=other_user, uploaded=SimpleUploadedFile("x.csv", b"a,b\n1,2\n"))
    refused(owner, running, "input.upload", "no upload of yours has this id",
            input={"kind": "upload", "upload": str(upload.pk)})


def test_an_upload_through_the_api_is_kept_with_its_checksum(owner, client_for, local_storage):
    answer = client_for(owner).post("/api/v1/batch-uploads", {"file": SimpleUploadedFile("in.csv", b"a,b\n1,2\n")})
    assert answer.status_code == 201, answer.content
    assert answer.json()["sha256"] == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert answer.json()["size"] == 8


# ---------------------------------------------------------------- the page's form

def test_the_page_starts_a_job_on_a_file_and_a_refusal_lands_beside_its_field_leaving_no_file(
        owner, client_for, running):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from batch.models import BatchJob, BatchUpload

    page = client_for(owner).get("/batch-jobs/").content.decode()
    assert "Start a batch job" in page and running.display_name in page
    refused = client_for(owner).post("/batch-jobs/new/", {
        "runs_on": f"deployment:{running.pk}", "method": "classify", "shard_rows": 0,
        "file": SimpleUploadedFile("rows.csv", b"x\n1\n")})
    assert refused.status_code == 400 and "Ensure this value is greater than or equal to 1" in refused.content.decode()
    wrong_format = client_for(owner).post("/batch-jobs/new/", {
        "runs_on": f"deployment:{running.pk}", "method": "classify",
        "file": SimpleUploadedFile("rows.xlsx", b"x\n1\n")})
    assert wrong_format.status_code == 400 and "xlsx" in wrong_format.content.decode()
    assert not BatchUpload.objects.exists() and not BatchJob.objects.exists()  # nothing left of either

    started = client_for(owner).post("/batch-jobs/new/", {  # its task is sent after the commit: not here
        "runs_on": f"deployment:{running.pk}", "method": "classify", "id_column": "id",
        "file": SimpleUploadedFile("rows.csv", b"id,x\na,1\n")})
    job = BatchJob.objects.get()
    assert started.status_code == 302 and started["Location"] == f"/batch-jobs/{job.pk}/"
    assert (job.input_kind, job.input_ref, job.id_column, job.requested_by) == ("upload", "rows.csv", "id", owner)


# ---------------------------------------------------------------- on a revision, in the sandbox

@pytest.fixture
def public_revision(owner, co_owner, catalogs):
    """A ready version of the owner's model, published where everyone signed in sees it; shared with the co-owner."""
    from marketplace.models import SolutionShare

    from ..factories import published_revision

    revision = published_revision(catalogs["public"], owner=owner)
    SolutionShare.objects.create(solution=revision.solution, user=co_owner, shared_by=owner)
    return revision


def on_revision(revision, user=None, **changes) -> dict:
    return {"revision": str(revision.pk), "method": "classify",
            "input": {"kind": "s3", "key": key_of(user or revision.solution.owner)}, **changes}


@pytest.mark.parametrize(("who", "expected"), [
    ("owner", 202), ("co_owner", 202), ("operator", 202), ("admin", 202), ("other", 403), ("anonymous", 401)])
def test_who_may_run_a_revision_in_the_sandbox(who, expected, people, co_owner, public_revision, s3_store,
                                               client_for):
    people = {**people, "co_owner": co_owner}
    answer = client_for(people[who]).post(URL, on_revision(public_revision, people[who]),
                                          content_type="application/json")

    assert answer.status_code == expected, answer.content
    assert BatchJob.objects.count() == (1 if expected == 202 else 0)
    if expected == 202:
        assert answer.json()["revision"] == str(public_revision.pk) and answer.json()["deployment"] is None
    if who == "other":
        assert "only the model's owners and co-owners, operators and admins run it in the sandbox" in answer.json()[
            "error"]["message"]


def test_a_revision_the_caller_cannot_see_is_not_found(other_user, owner, s3_store, client_for):
    from ..factories import RevisionFactory, SolutionFactory

    private = RevisionFactory(solution=SolutionFactory(owner=owner))
    answer = client_for(other_user).post(URL, on_revision(private), content_type="application/json")

    assert answer.status_code == 404 and not BatchJob.objects.exists()


def test_a_licensee_runs_a_licensed_model_on_a_metered_deployment_not_in_the_sandbox(
        other_user, public_revision, s3_store):
    from ..factories import agreement_for, licensed

    licensed(public_revision)
    agreement_for(public_revision.solution, user=other_user)

    with pytest.raises(services.NotAllowed, match="deploy this version, then start the job on the") as caught:
        services.start_job(user=other_user, revision=public_revision, method="classify",
                           input={"kind": "s3", "key": key_of(other_user)})
    assert caught.value.field == "revision" and not BatchJob.objects.exists()


def test_a_version_that_is_not_ready_does_not_run(owner, s3_store):
    from marketplace.choices import RevisionStatus

    from ..factories import RevisionFactory, SolutionFactory

    onboarding = RevisionFactory(solution=SolutionFactory(owner=owner), status=RevisionStatus.ONBOARDING)
    with pytest.raises(Refused, match=r"is onboarding, not ready: only a ready version runs") as caught:
        services.start_job(user=owner, revision=onboarding, method="classify",
                           input={"kind": "s3", "key": key_of(owner)})
    assert caught.value.field == "revision" and not BatchJob.objects.exists()


def test_a_job_runs_on_a_deployment_or_a_revision_and_says_so_when_given_neither_or_both(
        owner, running, public_revision, s3_store, client_for):
    neither = client_for(owner).post(URL, {"method": "classify", "input": {"kind": "s3", "key": key_of(owner)}},
                                     content_type="application/json")
    both = client_for(owner).post(URL, {**body(running), "revision": str(public_revision.pk)},
                                  content_type="application/json")

    for answer in (neither, both):
        assert answer.status_code == 400, answer.content
        assert "a deployment (running) or a revision (run in the sandbox), not both" in str(
            answer.json()["error"]["details"]["deployment"])
    assert not BatchJob.objects.exists()


def test_unfinished_jobs_are_capped_per_user_and_the_refusal_says_how_to_free_one(
        owner, running, public_revision, s3_store, settings, client_for):
    settings.ACUMOS_QUOTA_BATCH_JOBS = 2
    first = services.start_job(user=owner, deployment=running, method="classify",
                               input={"kind": "s3", "key": key_of(owner, "a.csv")})
    services.start_job(user=owner, revision=public_revision, method="classify",
                       input={"kind": "s3", "key": key_of(owner, "b.csv")})

    third = client_for(owner).post(URL, body(running), content_type="application/json")

    assert third.status_code == 429, third.content
    refusal = third.json()["error"]
    assert refusal["code"] == "quota_exceeded" and "the most allowed per user is 2" in refusal["message"]
    assert refusal["details"]["quota"] == 2 and str(first.pk) in refusal["details"]["jobs"]
    services.cancel(first, owner)  # an ended job frees its place
    assert client_for(owner).post(URL, body(running), content_type="application/json").status_code == 202


def test_the_page_offers_the_owners_ready_versions_and_a_model_page_link_chooses_one(
        owner, public_revision, client_for, local_storage):
    public_revision.interface = {"classify": {"inputs": [], "outputs": []}}
    public_revision.save(update_fields=["interface"])
    page = client_for(owner).get(f"/batch-jobs/?revision={public_revision.pk}").content.decode()

    assert "Versions, in the sandbox" in page
    assert f'<option value="revision:{public_revision.pk}" selected>' in page
    assert 'name="method" value="classify"' in page  # its one method, filled in

    started = client_for(owner).post("/batch-jobs/new/", {
        "runs_on": f"revision:{public_revision.pk}", "method": "classify",
        "file": SimpleUploadedFile("rows.csv", b"id,x\na,1\n")})
    job = BatchJob.objects.get()
    assert started.status_code == 302 and (job.revision, job.deployment) == (public_revision, None)
    detail = client_for(owner).get(started["Location"]).content.decode()
    assert "run in a sandbox of its own on this host" in detail


def test_the_page_does_not_offer_someone_elses_version_by_a_link(other_user, public_revision, client_for):
    page = client_for(other_user).get(f"/batch-jobs/?revision={public_revision.pk}").content.decode()

    assert f"revision:{public_revision.pk}" not in page


def test_the_version_page_offers_a_batch_job_to_whoever_may_run_it_in_the_sandbox(
        owner, other_user, public_revision, client_for):
    link = f"/batch-jobs/?revision={public_revision.pk}"

    assert link in client_for(owner).get(f"/revisions/{public_revision.pk}/").content.decode()
    assert link not in client_for(other_user).get(f"/revisions/{public_revision.pk}/").content.decode()


@pytest.mark.parametrize(("who", "status"), [("owner", 200), ("admin", 200), ("other", 404)])
def test_a_finished_jobs_outputs_are_downloaded_over_the_api_with_a_token(who, status, people, job, api_token,
                                                                          local_storage):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {api_token(people[who])}")
    assert client.get(f"{URL}/{job.pk}/predictions").status_code == 404  # not written yet
    default_storage.save(f"batch/jobs/{job.pk}/predictions.jsonl", ContentFile(b'{"row":1,"species":2}\n'))
    default_storage.save(f"batch/jobs/{job.pk}/errors.jsonl", ContentFile(b""))
    BatchJob.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, output_format="jsonl",
                                              predictions_key=f"batch/jobs/{job.pk}/predictions.jsonl",
                                              errors_key=f"batch/jobs/{job.pk}/errors.jsonl")

    answer = client.get(f"{URL}/{job.pk}/predictions")

    assert answer.status_code == status
    if status == 200:
        assert answer["Content-Type"] == "application/x-ndjson"
        assert b"".join(answer.streaming_content) == b'{"row":1,"species":2}\n'
        listed = client.get(f"{URL}/{job.pk}").json()["downloads"]
        assert listed == {"predictions": f"{URL}/{job.pk}/predictions", "errors": f"{URL}/{job.pk}/errors"}
        assert client.get(f"{URL}/{job.pk}/errors").status_code == 200


def test_who_may_run_it_is_asked_again_when_the_job_runs(owner, co_owner, public_revision, s3_store, monkeypatch):
    """A job waits, and resumes after a crash: a co-owner taken off the model by then runs nothing."""
    from acumos_portal import jobs
    from marketplace.models import SolutionShare

    monkeypatch.setattr(jobs, "send", lambda *args, **kwargs: None)
    job = services.start_job(user=co_owner, revision=public_revision, method="classify",
                             input={"kind": "s3", "key": key_of(co_owner)})
    SolutionShare.objects.filter(user=co_owner).delete()

    services.run_job(str(job.pk))

    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "co-owner may no longer run this version in the sandbox" in job.error
