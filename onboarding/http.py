"""From an HTTP upload to bundle parts, for the web page and both APIs alike.

Files arrive as temporary files (acumos_portal.uploads streams them to disk and enforces the size
limit); a whole bundle may come as one zip (part `bundle`), which is split into its parts."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from django.conf import settings

from acumos_portal.uploads import check_upload_size
from onboarding.bundle import PART_NAMES, split_bundle_zip


def parts_from_request(request, workdir: Path) -> dict[str, Path]:
    """The uploaded parts as local paths. `workdir` receives a split bundle; the caller removes it."""
    files = request.FILES  # parsing the body happens here, streamed to temporary files
    check_upload_size(request)
    if "bundle" in files:
        return split_bundle_zip(_path(files["bundle"]), workdir, settings.ACUMOS_MAX_PACKAGE_BYTES)
    return {name: _path(files[name]) for name in PART_NAMES if name in files}


def _path(upload) -> Path:
    return Path(upload.temporary_file_path())


@contextlib.contextmanager
def workdir():
    """A private temporary directory (as a Path) for a split bundle, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="acumos-upload-", dir=settings.FILE_UPLOAD_TEMP_DIR) as tmp:
        yield Path(tmp)
