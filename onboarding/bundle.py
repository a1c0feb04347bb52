"""What a bundle is: its parts, the file each one is, how a one-zip bundle splits into them, and
where a job's parts wait (staged in the default storage) until the job ends. The only module that
names the parts; the forms, the APIs and the pipeline's steps read them here."""

from __future__ import annotations

import contextlib
import zipfile
from datetime import timedelta
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.utils import timezone

from acumos_portal import capacity
from acumos_portal.choices import UNFINISHED
from marketplace import storage
from marketplace.choices import ARTIFACT_FILE_NAMES, ArtifactKind
from onboarding.models import OnboardingJob
from onboarding.validation import Invalid
from runner_image.package import Manifest, read_manifest_from_zip

# Acumos part names -> the artifact each becomes, and so the file it is in a bundle
# (marketplace.choices.ARTIFACT_FILE_NAMES: metadata.json, model.proto, modelpackage.zip, license.json).
PART_KINDS = {"metadata": ArtifactKind.METADATA, "schema": ArtifactKind.PROTO, "model": ArtifactKind.MODEL,
              "license": ArtifactKind.LICENCE}
PART_FILES = {part: ARTIFACT_FILE_NAMES[kind] for part, kind in PART_KINDS.items()}
PART_NAMES = tuple(PART_FILES)
REQUIRED_PARTS = ("model", "metadata", "schema")
PART_LABELS = {part: f"{part} ({file})" for part, file in PART_FILES.items()}
STAGING = "staging"  # staging/<job id>/<part file> in the default storage, until the job ends


# ---------------------------------------------------------------- staged parts

@contextlib.contextmanager
def staged(job, part: str):
    """A staged part of the job as a local file (a copy when the storage is remote)."""
    with storage.local_copy(job.parts[part], suffix=Path(PART_FILES[part]).suffix) as path:
        yield path


def package_manifest(job) -> Manifest:
    """The staged model package's runner.json (flavour, model file, samples, requirements), read with
    the runner's own package code. Called after the package step has validated it."""
    with staged(job, "model") as path:
        return read_manifest_from_zip(path)


def stage(job_id, part: str, path: Path, staged: list[str]) -> str:
    key = f"staging/{job_id}/{PART_FILES[part]}"
    staged.append(key)  # before the save: a save cut short (the disk full) leaves part of a file
    with open(path, "rb") as handle:
        saved = default_storage.save(key, File(handle))
    if saved != key:
        staged.append(saved)
    return saved


def discard_staged(job_id, keys) -> None:
    """Delete a job's staged files and its staging directory (of a local storage)."""
    for key in keys:
        default_storage.delete(key)
    with contextlib.suppress(NotImplementedError, OSError):  # remote storage has no directories
        Path(default_storage.path(f"staging/{job_id}")).rmdir()


def sweep_staging() -> list[str]:
    """Staged files no unfinished job holds, left by a process that died between staging an upload
    and its commit, or while discarding a finished job's. Only those untouched for
    ACUMOS_JOB_STALE_SECONDS: a directory being staged right now has no job row yet."""
    try:
        folders, _ = default_storage.listdir(STAGING)
    except FileNotFoundError:
        return []
    cutoff = timezone.now() - timedelta(seconds=settings.ACUMOS_JOB_STALE_SECONDS)
    live = {str(pk) for pk in OnboardingJob.objects.filter(status__in=UNFINISHED).values_list("pk", flat=True)}
    done = []
    for folder in sorted(set(folders) - live):
        keys = [f"{STAGING}/{folder}/{name}" for name in default_storage.listdir(f"{STAGING}/{folder}")[1]]
        if all(default_storage.get_modified_time(key) < cutoff for key in keys):
            discard_staged(folder, keys)
            done.append(f"staging/{folder}: removed (no unfinished job holds it)")
    return done


# ---------------------------------------------------------------- a whole bundle in one zip

_BUNDLE_NAMES = {"metadata.json": "metadata", "model.proto": "schema", "modelpackage.zip": "model",
                 "model.zip": "model", "license.json": "license"}


def split_bundle_zip(bundle: Path, dest: Path, max_bytes: int) -> dict[str, Path]:
    """The parts of a bundle uploaded as one zip (flat, or inside one folder), streamed out."""
    try:
        archive = zipfile.ZipFile(bundle)
    except (zipfile.BadZipFile, OSError) as exc:
        raise Invalid("bundle", f"the bundle is not a readable zip: {exc}") from exc
    parts: dict[str, Path] = {}
    with archive:
        for info in archive.infolist():
            part = _BUNDLE_NAMES.get(PurePosixPath(info.filename).name)
            if part and not info.is_dir() and part not in parts:
                parts[part] = _extract_part(archive, info, dest / PART_FILES[part], max_bytes)
    return parts


def _extract_part(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, max_bytes: int) -> Path:
    if info.file_size > max_bytes:
        raise Invalid("bundle", f"{info.filename} is larger than the limit of {max_bytes} bytes")
    written = 0
    try:
        with archive.open(info) as src, open(target, "wb") as out:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > max_bytes:
                    raise Invalid("bundle", f"{info.filename} expands past the limit of {max_bytes} bytes")
                out.write(chunk)
    except OSError as exc:
        if capacity.is_disk_full(exc):  # the server's fault, not the bundle's (507)
            raise
        raise Invalid("bundle", f"{info.filename} in the bundle is corrupt: {exc}") from exc
    except (zipfile.BadZipFile, EOFError, RuntimeError, NotImplementedError) as exc:
        raise Invalid("bundle", f"{info.filename} in the bundle is corrupt: {exc}") from exc
    return target
