"""The staff page that imports a file of past conversations (docs/import.md): upload, run, summary.

An adapter: checks the size (`analytics.imports.uploads`), the form's fields, then calls the one
import service (`analytics.imports.import_stream`) and shows its summary beside the latest runs.
The CSRF check runs after the size-limited upload handler is installed (Django reads the form to
find the token, and would otherwise read the whole file first with its default handlers).
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from analytics import imports
from analytics.access import staff_page
from analytics.imports import uploads

logger = logging.getLogger(__name__)

TEMPLATE = "analytics/import.html"
_TRUE = {"on", "true", "1", "yes"}
_FALSE = {"", "off", "false", "0", "no"}


class FieldError(ValueError):
    """A form field with a bad value: the 400 names it."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field
        self.detail = detail


@staff_page
@csrf_exempt  # checked by `_submit` once the limited upload handler is in place
async def import_page(request: HttpRequest) -> HttpResponse:
    """GET: the form and the latest runs. POST: import the file, then the same page with its summary."""
    if request.method == "POST":
        limit = settings.MAX_IMPORT_BYTES
        if uploads.declared_too_large(request.META, limit, multipart=True):
            return await _page(request, status=413, error={"field": "file", "detail": uploads.too_large_message(limit)})
        request.upload_handlers = [uploads.LimitedUpload(request, limit=limit)]
        try:
            return await _submit(request)
        except uploads.UploadTooLarge as error:  # met by the CSRF check, which reads the form first
            logger.warning("Import upload refused: over MAX_IMPORT_BYTES (%d bytes)", limit)
            return await _page(request, status=413, error={"field": "file", "detail": str(error)})
    if request.method not in {"GET", "HEAD"}:
        return HttpResponse("Use GET or POST.", status=405, headers={"Allow": "GET, HEAD, POST"})
    return await _page(request)


@csrf_protect
async def _submit(request: HttpRequest) -> HttpResponse:
    limit = settings.MAX_IMPORT_BYTES
    try:
        upload = request.FILES.get("file")
        options = _options(request, upload)
    except uploads.UploadTooLarge as error:
        logger.warning("Import upload refused: over MAX_IMPORT_BYTES (%d bytes)", limit)
        return await _page(request, status=413, error={"field": "file", "detail": str(error)})
    except FieldError as error:
        logger.warning("Import upload refused: %s: %s", error.field, error.detail)
        return await _page(request, status=400, error={"field": error.field, "detail": error.detail})
    assert upload is not None
    try:
        upload.seek(0)
        result = await sync_to_async(imports.import_stream)(upload.file, options)
    finally:
        upload.close()
    return await _page(request, summary=result.summary.as_dict(), run_id=result.run_id)


def _options(request: HttpRequest, upload: Any) -> imports.ImportOptions:
    """The form's fields; `FieldError` naming the first bad one."""
    if upload is None:
        raise FieldError("file", "Choose a file to import.")
    if upload.size == 0:
        raise FieldError("file", "The file is empty.")
    chosen = request.POST.get("format", "auto").strip()
    if chosen == "auto":
        head = upload.read(4096)
        upload.seek(0)
        guessed = imports.guess_format(upload.name or "", head)
        if guessed is None:
            raise FieldError("format", f"Cannot tell the file's format: choose one of {', '.join(imports.FORMATS)}.")
        chosen = guessed
    elif chosen not in imports.FORMATS:
        raise FieldError("format", f"format must be auto or one of {', '.join(imports.FORMATS)}, got {chosen[:40]!r}.")
    return imports.ImportOptions(
        format=chosen,
        filename=(upload.name or "")[:255],
        via="upload",
        force=_flag(request, "force"),
        dry_run=_flag(request, "dry_run"),
        started_by=request.user,
    )


def _flag(request: HttpRequest, name: str) -> bool:
    value = request.POST.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise FieldError(name, f"{name} must be on or off, got {value[:20]!r}.")


async def _page(
    request: HttpRequest,
    *,
    status: int = 200,
    error: dict[str, str] | None = None,
    summary: dict[str, Any] | None = None,
    run_id: int | None = None,
) -> HttpResponse:
    runs = await sync_to_async(imports.recent_runs)()
    context = {
        "formats": imports.FORMATS,
        "max_bytes": settings.MAX_IMPORT_BYTES,
        "max_mib": round(settings.MAX_IMPORT_BYTES / 1_048_576, 1),
        "error": error,
        "summary": summary,
        "run_id": run_id,
        "runs": runs,
    }
    return TemplateResponse(request, TEMPLATE, context, status=status)
