"""Download responses for artifacts and whole bundles. The caller has already checked that the
user may see the revision (marketplace.selectors); everything streams from storage."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

from django.http import FileResponse, Http404

from marketplace import storage
from marketplace.choices import ARTIFACT_FILE_NAMES, BUNDLE_KINDS
from marketplace.models import Artifact, Revision

CHUNK = 1 << 20


def artifact_response(artifact: Artifact) -> FileResponse:
    if artifact.blob is None:
        raise Http404("this artifact is a reference, not a file")
    response = FileResponse(storage.open_blob(artifact.blob), as_attachment=True, filename=artifact.file_name)
    response["Content-Length"] = str(artifact.blob.size)
    response["ETag"] = f'"{artifact.blob.sha256}"'
    response["X-Checksum-Sha256"] = artifact.blob.sha256
    return response


def bundle_file_name(revision: Revision) -> str:
    return f"{revision.solution.name}-{revision.version}.zip".replace(" ", "_")


def bundle_response(revision: Revision) -> FileResponse:
    """metadata.json, model.proto, modelpackage.zip (and license.json): what `runner serve` takes."""
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (the response closes it, which removes it)
    with zipfile.ZipFile(spool, "w", zipfile.ZIP_STORED) as archive:
        for artifact in revision.artifacts.filter(kind__in=BUNDLE_KINDS).select_related("blob"):
            _add(archive, artifact)
    size = spool.tell()
    spool.seek(0)
    response = FileResponse(spool, as_attachment=True, filename=bundle_file_name(revision))
    response["Content-Length"] = str(size)
    return response


def _add(archive: zipfile.ZipFile, artifact: Artifact) -> None:
    info = zipfile.ZipInfo(ARTIFACT_FILE_NAMES[artifact.kind])
    info.file_size = artifact.blob.size
    with storage.open_blob(artifact.blob) as source, archive.open(info, "w") as target:
        while chunk := source.read(CHUNK):
            target.write(chunk)


def write_bundle(artifacts: list[Artifact], folder: Path) -> Path:
    """The bundle's files into a new directory, as `runner serve` (and an image) takes them."""
    folder.mkdir(parents=True)
    for artifact in artifacts:
        if artifact.kind not in BUNDLE_KINDS:
            continue
        with storage.open_blob(artifact.blob) as source, open(folder / ARTIFACT_FILE_NAMES[artifact.kind], "wb") as out:
            shutil.copyfileobj(source, out, CHUNK)
    return folder
