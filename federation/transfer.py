"""Serving bytes to peers: a stored blob with HTTP Range (one range: enough to resume a transfer),
and an image's manifest and blobs read from this site's registry."""

from __future__ import annotations

import contextlib
import json
import re

from django.http import HttpResponse, StreamingHttpResponse

from images import oci
from images import services as image_services
from marketplace import storage

CHUNK = 1 << 20
RANGE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$")  # 19 digits: beyond any file


class NotInImage(Exception):
    """A blob the image does not name."""


def byte_range(header: str, size: int) -> tuple[int, int] | None | bool:
    """(first, last) of a `Range: bytes=a-b` header for a file of `size` bytes; None when there is no
    usable header (serve it all), False when it cannot be satisfied (416)."""
    match = RANGE.match(header.strip()) if header else None
    if match is None:
        return None
    first, last = match.groups()
    if first == "":
        if last == "":
            return None
        length = int(last)  # the last `length` bytes
        return (max(size - length, 0), size - 1) if length else False
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    return (start, end) if start <= end and start < size else False


def ranged_blob_response(request, blob, file_name: str):
    wanted = byte_range(request.headers.get("Range", ""), blob.size)
    if wanted is False:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{blob.size}"
        return response
    first, last = wanted or (0, blob.size - 1)
    response = StreamingHttpResponse(_read(blob, first, last - first + 1), status=206 if wanted else 200,
                                     content_type="application/octet-stream")
    response["Content-Length"] = str(max(last - first + 1, 0))
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = f'"{blob.sha256}"'
    response["Content-Disposition"] = f'attachment; filename="{file_name}"'
    if wanted:
        response["Content-Range"] = f"bytes {first}-{last}/{blob.size}"
    return response


def _read(blob, first: int, length: int):
    with storage.open_blob(blob) as handle:
        if first:
            handle.seek(first)
        while length > 0:
            chunk = handle.read(min(CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


def _image_ref(artifact) -> oci.ImageRef:
    return oci.ImageRef.parse(artifact.uri)


def image_manifest(artifact) -> tuple[bytes, str, str]:
    ref = _image_ref(artifact)
    with image_services.registry(ref.registry) as registry:
        return registry.manifest_bytes(ref.repository, ref.digest or ref.reference)


def image_blob(artifact, digest: str):
    """A generator of the blob's bytes, if the image's manifest names it."""
    body, _, _ = image_manifest(artifact)
    manifest = json.loads(body)
    named = {manifest.get("config", {}).get("digest")} | {layer.get("digest") for layer in manifest.get("layers", [])}
    if digest not in named:
        raise NotInImage(digest)
    ref = _image_ref(artifact)
    registry = image_services.registry(ref.registry)
    response = registry.open_blob(ref.repository, digest)

    def stream():
        with contextlib.closing(response), contextlib.closing(registry):
            yield from response.iter_content(CHUNK)

    return stream()
