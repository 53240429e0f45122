"""Bounded uploads for the staff page and the API: the size limit checked before and while reading.

`MAX_IMPORT_BYTES` is checked twice: on the declared `Content-Length` before any of the body is
parsed (plus `MULTIPART_SLACK` for the form's own framing), and while the file streams to a
temporary file (`LimitedUpload` for forms, `spool` for a raw body), since a chunked body
declares no length. Either way the answer is a 413 naming the limit.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import IO, Any

from django.core.files.uploadhandler import TemporaryFileUploadHandler

#: Bytes a multipart form adds around the file (boundaries, headers, the other fields).
MULTIPART_SLACK = 64 * 1024
CHUNK = 64 * 1024


class UploadTooLarge(Exception):
    """The body is over the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(too_large_message(limit))
        self.limit = limit


def too_large_message(limit: int) -> str:
    """The 413's text: the limit, and what to do instead."""
    return (
        f"The file is larger than MAX_IMPORT_BYTES ({limit:,} bytes, {limit / 1_048_576:.1f} MiB). "
        "Split it, or import it on the server with manage.py import_conversations (no limit)."
    )


def declared_too_large(meta: dict[str, Any], limit: int, *, multipart: bool) -> bool:
    """Whether the request's Content-Length alone is over the limit (a bad header is left to the parser)."""
    try:
        declared = int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    return declared > limit + (MULTIPART_SLACK if multipart else 0)


class LimitedUpload(TemporaryFileUploadHandler):
    """Django's temporary-file upload handler, counting: `UploadTooLarge` past `limit` bytes of files."""

    def __init__(self, request: Any = None, *, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        """Count, refuse past the limit, else write to the temporary file."""
        self.received += len(raw_data)
        if self.received > self.limit:
            raise UploadTooLarge(self.limit)
        return super().receive_data_chunk(raw_data, start)


def spool(read: Callable[[int], bytes], limit: int) -> IO[bytes]:
    """A raw body copied to a temporary file, counting; `UploadTooLarge` past `limit` bytes."""
    spooled = tempfile.TemporaryFile()  # noqa: SIM115 (the caller closes it)
    size = 0
    try:
        while chunk := read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise UploadTooLarge(limit)
            spooled.write(chunk)
    except BaseException:
        spooled.close()
        raise
    spooled.seek(0)
    return spooled
