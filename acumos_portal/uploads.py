"""Upload handling: every file part streams to a temporary file, and the whole request is refused
as soon as it passes ACUMOS_MAX_UPLOAD_BYTES (not after it has been written in full), or as soon as
the disk cannot take more of it (then what was written is deleted at once)."""

from __future__ import annotations

import contextlib

from django.conf import settings
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler
from django.http import HttpResponse, QueryDict
from django.utils.datastructures import MultiValueDict

from acumos_portal import capacity


class UploadTooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(f"the upload is larger than the limit of {limit} bytes")
        self.limit = limit


class LimitedTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        self.received = 0
        self.limit = settings.ACUMOS_MAX_UPLOAD_BYTES
        if content_length and content_length > self.limit:
            # Django does not catch StopUpload here (only while reading files), so answer "nothing
            # parsed" instead: the body is never read, and check_upload_size reports the refusal.
            self.request.upload_too_large = self.limit
            return QueryDict(encoding=encoding), MultiValueDict()
        return None

    def new_file(self, *args, **kwargs):
        try:
            super().new_file(*args, **kwargs)
        except OSError as exc:
            self._stop_for(exc)

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            self.request.upload_too_large = self.limit
            raise StopUpload(connection_reset=False)
        try:
            return super().receive_data_chunk(raw_data, start)
        except OSError as exc:
            self._stop_for(exc)

    def _stop_for(self, exc: OSError):
        """Writing the upload failed (the disk is full): delete what was written (a temporary file
        goes when closed) and read no further; check_upload_size raises the error for the view."""
        self.request.upload_failed = exc
        with contextlib.suppress(AttributeError, OSError):
            self.file.close()
        raise StopUpload(connection_reset=False)


def check_upload_size(request) -> None:
    """Call after touching request.FILES: raises UploadTooLarge if the handler stopped the upload for
    its size, or the OSError (ENOSPC: acumos_portal.capacity answers 507) that stopped its writing."""
    limit = getattr(request, "upload_too_large", None)
    if limit:
        raise UploadTooLarge(limit)
    failed = getattr(request, "upload_failed", None)
    if failed is not None:
        raise failed


def csrf_failure(request, reason=""):
    """An upload refused for its size never had its body (and so its CSRF token) read: say why."""
    limit = getattr(request, "upload_too_large", None)
    if limit:
        return HttpResponse(f"The upload is larger than the limit of {limit} bytes.", status=413,
                            content_type="text/plain")
    shortage = capacity.shortage_of(getattr(request, "upload_failed", None))
    if shortage is not None:  # the disk filled before the token was read
        return capacity.page_response(shortage)
    from django.views.csrf import csrf_failure as default_failure

    return default_failure(request, reason)
