"""POST /api/v1/imports/: import a file of past conversations (docs/import.md), as the staff page does.

The body is either a multipart form (`file`, and `format`, `dry_run`, `force`, `strict` as form
fields or query parameters) or the raw file (any other content type; the options as query
parameters). `MAX_IMPORT_BYTES` is checked on Content-Length before anything is read, then while
the file streams to a temporary file: 413 `payload_too_large` naming the limit. Needs a staff
session or an API key with the `import` scope. Answers the run's id and its summary.
"""

from __future__ import annotations

import logging
from typing import IO, Any

from django.conf import settings
from django.http import HttpRequest
from django.http.multipartparser import MultiPartParserError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from analytics import imports
from analytics.imports import uploads
from api import errors
from api.errors import ApiError
from api.schema_common import error_responses
from api.staff import schema
from api.staff.views.base import StaffView

logger = logging.getLogger("api")

PAYLOAD_TOO_LARGE = "payload_too_large"
HEAD_BYTES = 4096
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}
OPTIONS = ("format", "dry_run", "force", "strict", "filename")

QUERY = OpenApiParameter.QUERY
PARAMETERS = [
    OpenApiParameter(
        "format", str, QUERY, enum=["auto", *imports.FORMATS],
        description="The file's format; auto (default) guesses from the file name and first bytes.",
    ),
    OpenApiParameter("dry_run", OpenApiTypes.BOOL, QUERY, description="Read and count, write nothing."),
    OpenApiParameter("force", OpenApiTypes.BOOL, QUERY, description="Rewrite every conversation, changed or not."),
    OpenApiParameter(
        "strict", OpenApiTypes.BOOL, QUERY, description="Stop at the first bad record (400) and write nothing."
    ),
    OpenApiParameter(
        "filename", {"type": "string", "maxLength": 255}, QUERY,
        description="The file's name, for a raw body (recorded on the run; its extension helps `auto`).",
    ),
]  # fmt: skip

SUMMARY = inline_serializer(
    "ImportResult",
    {
        "run_id": serializers.IntegerField(help_text="The ImportRun row (listed on the staff import page)."),
        "summary": serializers.DictField(
            help_text="conversations {read, created, updated, unchanged, outside_dates}, messages, dropped "
            "{autoresponses, duplicates}, skipped {reason: count}, skipped_total, examples [{reason, where, "
            "detail}], stopped, rollup_days, bytes_read, format, dry_run."
        ),
    },
)


class ImportView(StaffView):
    """POST /api/v1/imports/."""

    required_scope = "import"
    http_method_names = ["post", "options"]
    parser_classes: list[Any] = []  # the body is read here, bounded, never by a parser

    def handle_exception(self, exc: Exception) -> Response:
        """A form the session's CSRF check could not read, or that ran over the limit there: JSON 400 / 413."""
        if isinstance(exc, uploads.UploadTooLarge):
            exc = _too_large(exc.limit)
        elif isinstance(exc, MultiPartParserError):
            exc = ApiError(errors.INVALID_FIELD, f"Unreadable form: {str(exc)[:120]}", field="file")
        return super().handle_exception(exc)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        """Install the size-limited upload handler before anything (the CSRF check) reads the form."""
        request.upload_handlers = [uploads.LimitedUpload(request, limit=settings.MAX_IMPORT_BYTES)]
        return super().dispatch(request, *args, **kwargs)

    @extend_schema(
        operation_id="imports_create",
        summary="Import a file of past conversations",
        description="PowerPulse's fb-grouped export, jsonl or csv (docs/import.md), as a multipart form with a "
        "`file` field or as the raw body; options as query parameters (or form fields). Re-importing the same "
        "file changes nothing. Needs the `import` scope. At most MAX_IMPORT_BYTES.",
        parameters=[*PARAMETERS, *schema.HEADERS],
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            },
            "application/octet-stream": {"type": "string", "format": "binary"},
        },
        responses={
            200: OpenApiResponse(SUMMARY, description="The import ran; its run id and summary."),
            **schema.COMMON_ERRORS,
            **error_responses(
                413, 415, s413=f"`{PAYLOAD_TOO_LARGE}`: the file is larger than MAX_IMPORT_BYTES (named)."
            ),
        },
        tags=["staff: imports"],
    )
    def post(self, request: Request) -> Response:
        """Import the file; 400 naming a bad field, 413 over the limit."""
        django_request: HttpRequest = request._request
        limit = settings.MAX_IMPORT_BYTES
        multipart = (request.content_type or "").startswith("multipart/form-data")
        if uploads.declared_too_large(django_request.META, limit, multipart=multipart):
            raise _too_large(limit)
        try:
            stream, name, fields = self._body(django_request, multipart, limit)
        except uploads.UploadTooLarge:
            raise _too_large(limit) from None
        try:
            options = _options(fields, name, stream, request.user)
            try:
                result = imports.import_stream(stream, options)
            except imports.ImportAborted as aborted:
                raise ApiError(
                    errors.INVALID_FIELD, f"strict: stopped at {aborted}; nothing was written.", field="file"
                ) from None
        finally:
            stream.close()
        return Response({"run_id": result.run_id, "summary": result.summary.as_dict()})

    def _body(self, request: HttpRequest, multipart: bool, limit: int) -> tuple[IO[bytes], str, dict[str, str]]:
        """The file, its name, and the options (query parameters, form fields over them)."""
        fields = {name: request.GET[name] for name in OPTIONS if name in request.GET}
        if multipart:
            try:
                upload = request.FILES.get("file")
                fields.update({name: request.POST[name] for name in OPTIONS if name in request.POST})
            except MultiPartParserError as error:
                raise ApiError(errors.INVALID_FIELD, f"Unreadable form: {str(error)[:120]}", field="file") from None
            if upload is None:
                raise ApiError(errors.INVALID_FIELD, "Send the file in a `file` form field.", field="file")
            upload.seek(0)
            return upload.file, fields.get("filename") or upload.name or "", fields
        stream = uploads.spool(request.read, limit)
        return stream, fields.get("filename", ""), fields


def _too_large(limit: int) -> ApiError:
    logger.warning("Import upload refused: over MAX_IMPORT_BYTES (%d bytes)", limit)
    return ApiError(PAYLOAD_TOO_LARGE, uploads.too_large_message(limit), status_code=413, field="file")


def _options(fields: dict[str, str], name: str, stream: IO[bytes], user: Any) -> imports.ImportOptions:
    """The import's options; 400 naming the first bad one."""
    head = stream.read(HEAD_BYTES)
    stream.seek(0)
    if not head.strip():
        raise ApiError(errors.INVALID_FIELD, "The file is empty.", field="file")
    chosen = fields.get("format", "auto").strip() or "auto"
    if chosen == "auto":
        guessed = imports.guess_format(name, head)
        if guessed is None:
            raise ApiError(
                errors.INVALID_FIELD,
                f"Cannot tell the file's format: give format ({', '.join(imports.FORMATS)}).",
                field="format",
            )
        chosen = guessed
    elif chosen not in imports.FORMATS:
        raise ApiError(
            errors.INVALID_FIELD,
            f"format must be auto or one of {', '.join(imports.FORMATS)}, got {chosen[:40]!r}.",
            field="format",
        )
    if len(name) > 255:
        raise ApiError(errors.INVALID_FIELD, "filename has more than 255 characters.", field="filename")
    return imports.ImportOptions(
        format=chosen,
        filename=name,
        via="api",
        dry_run=_flag(fields, "dry_run"),
        force=_flag(fields, "force"),
        strict=_flag(fields, "strict"),
        started_by=user if getattr(user, "is_staff", False) else None,
    )


def _flag(fields: dict[str, str], name: str) -> bool:
    value = fields.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ApiError(errors.INVALID_FIELD, f"{name} must be true or false, got {value[:20]!r}.", field=name)
