"""The disk full while an upload is taken (finding M4), on a real small disk (tmpfs): the upload page,
the native API and the Acumos API answer 507 saying so, each in its own shape, whether the disk fills
while the upload is received, while a bundle zip is split or while the parts are staged; and nothing
of the upload is kept (no half-written file, no row)."""

from __future__ import annotations

import os
import traceback

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from onboarding.models import OnboardingJob
from runner_image.pack import pack_bundle

from ..bundles import builders, parts_of
from ..disks import MIB, files_under, fill, free_bytes, small_disk
from .test_acumos_api import acumos_push

pytestmark = pytest.mark.django_db
PACKAGE_MIB = 4
MESSAGE = "The server's disk is full; nothing was kept; try later."
# Room left on the disk, and where the upload then meets the full disk (the function writing).
ROOM = {"received": PACKAGE_MIB * MIB // 2, "staged": PACKAGE_MIB * MIB * 3 // 2}
WRITER = {"received": "receive_data_chunk", "staged": "stage", "split": "_extract_part"}


@pytest.fixture(scope="module")
def big_parts(tmp_path_factory) -> dict[str, bytes]:
    """A valid bundle whose package is PACKAGE_MIB MiB that do not compress."""
    ballast = os.urandom(PACKAGE_MIB * MIB)

    def scale(x: float):
        return {"tag": f"big{len(ballast)}", "y": x}

    bundle = pack_bundle(model=scale, flavour="python", name="BigModel", method="scale", inputs="x:double",
                         outputs="tag:string,y:double", out=tmp_path_factory.mktemp("big") / "bundle",
                         sample={"x": 2.0}, check=False)
    return {part: path.read_bytes() for part, path in parts_of(bundle).items()}


@pytest.fixture
def disk(settings, tmp_path):
    """Artifacts (staging) and uploads on one small disk, as in finding M4."""
    with small_disk(tmp_path / "disk", 16) as mount:
        (mount / "uploads").mkdir()
        settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                                                              "OPTIONS": {"location": str(mount / "artifacts")}}}
        settings.FILE_UPLOAD_TEMP_DIR = str(mount / "uploads")
        yield mount
        for ballast in mount.glob("ballast"):
            ballast.unlink()


def assert_filled_in(caplog, where: str) -> None:
    """The 507 came from the disk filling where the test meant it to (the logged error's traceback)."""
    [record] = [r for r in caplog.records if r.name == "acumos_portal.capacity"]
    frames = [frame.name for frame in traceback.extract_tb(record.exc_info[2])]
    assert WRITER[where] in frames, frames


def assert_nothing_kept(disk, before: int) -> None:
    assert not OnboardingJob.objects.exists()
    assert files_under(disk / "artifacts") == [] and files_under(disk / "uploads") == []
    assert free_bytes(disk) == before


def files(parts: dict[str, bytes]) -> dict:
    return {part: SimpleUploadedFile(part, data) for part, data in parts.items()}


@pytest.mark.parametrize("where", ROOM)
def test_the_upload_page_says_the_disk_is_full_on_the_form(where, disk, big_parts, owner, client_for, caplog):
    fill(disk, ROOM[where])
    before = free_bytes(disk)
    response = client_for(owner).post("/onboarding/new/", files(big_parts),
                                      headers={"X-Requested-With": "XMLHttpRequest"})
    assert response.status_code == 507
    assert response["Content-Type"].startswith("text/html")  # the page's script puts the form back, with this
    assert MESSAGE in response.content.decode().replace("&#x27;", "'")
    assert_filled_in(caplog, where)
    assert_nothing_kept(disk, before)


@pytest.mark.parametrize("where", ROOM)
def test_the_native_api_answers_507_in_its_envelope(where, disk, big_parts, owner, client_for, caplog):
    fill(disk, ROOM[where])
    before = free_bytes(disk)
    response = client_for(owner).post("/api/v1/onboarding/jobs", files(big_parts))
    assert response.status_code == 507
    assert response.json() == {"error": {"code": "disk_full", "message": MESSAGE, "details": {}}}
    assert_filled_in(caplog, where)
    assert_nothing_kept(disk, before)


@pytest.mark.parametrize("where", ROOM)
def test_the_acumos_api_answers_507_in_its_envelope(where, disk, big_parts, owner, api_token, caplog):
    fill(disk, ROOM[where])
    before = free_bytes(disk)
    response = acumos_push(Client(), big_parts, f"{owner.username}:{api_token(owner)}")
    assert response.status_code == 507
    assert response.json() == {"status": "ERROR", "errorCode": "INSUFFICIENT_STORAGE", "errorMessage": MESSAGE,
                               "errors": []}
    assert_filled_in(caplog, where)
    assert_nothing_kept(disk, before)


def test_a_bundle_zip_that_cannot_be_split_on_a_full_disk_is_the_servers_fault_not_the_bundles(disk, big_parts, owner,
                                                                                             client_for, caplog):
    """Room to receive the zip, not to take its parts out of it: 507, not "the bundle is corrupt"."""
    bundle = builders.zip_bytes({"metadata.json": big_parts["metadata"], "model.proto": big_parts["schema"],
                                 "modelpackage.zip": big_parts["model"]})
    fill(disk, PACKAGE_MIB * MIB * 3 // 2)
    before = free_bytes(disk)
    response = client_for(owner).post("/api/v1/onboarding/jobs", {"bundle": SimpleUploadedFile("b.zip", bundle)})
    assert response.status_code == 507, response.content
    assert_filled_in(caplog, "split")
    assert_nothing_kept(disk, before)


def test_uploads_work_again_once_space_is_freed(disk, big_parts, owner, client_for, monkeypatch):
    from acumos_portal import jobs

    monkeypatch.setattr(jobs, "enqueue", lambda task, *args: None)  # the pipeline is not what is tested here
    ballast = fill(disk, ROOM["staged"])
    assert client_for(owner).post("/api/v1/onboarding/jobs", files(big_parts)).status_code == 507
    ballast.unlink()
    response = client_for(owner).post("/api/v1/onboarding/jobs", files(big_parts))
    assert response.status_code == 201, response.content
    [job] = OnboardingJob.objects.all()
    assert files_under(disk / "artifacts") == [f"staging/{job.pk}/{name}" for name in
                                               ("metadata.json", "model.proto", "modelpackage.zip")]
