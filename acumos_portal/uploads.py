"""Upload handling: every file part streams to a temporary file, and the whole request is refused
as soon as it passes ACUMOS_MAX_UPLOAD_BYTES (not after it has been written in full)."""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler
from django.http import QueryDict
from django.utils.datastructures import MultiValueDict


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

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            self.request.upload_too_large = self.limit
            raise StopUpload(connection_reset=False)
        return super().receive_data_chunk(raw_data, start)


def check_upload_size(request) -> None:
    """Call after touching request.FILES: raises UploadTooLarge if the handler stopped the upload."""
    limit = getattr(request, "upload_too_large", None)
    if limit:
        raise UploadTooLarge(limit)


def csrf_failure(request, reason=""):
    """An upload refused for its size never had its body (and so its CSRF token) read: say why."""
    limit = getattr(request, "upload_too_large", None)
    if limit:
        from django.http import HttpResponse

        return HttpResponse(f"The upload is larger than the limit of {limit} bytes.", status=413,
                            content_type="text/plain")
    from django.views.csrf import csrf_failure as default_failure

    return default_failure(request, reason)
