"""Every API error is JSON `{code, detail}` (plus `field` or `parameter` naming what was wrong).

The codes are the websocket's (`assistant.protocol`), plus the HTTP ones: `unauthorized`,
`forbidden`, `not_found`, `rate_limited` (with a `Retry-After` header), `method_not_allowed`,
`not_acceptable`, `unsupported_media_type`, `invalid_json`. A client's bad request is logged as
one WARNING line, bounded per client address (`project.logs.client_warnings`).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from analytics.params import ParamError
from assistant import protocol
from assistant.protocol import ClientError
from project.logs import client_warnings

logger = logging.getLogger("api")

UNAUTHORIZED = "unauthorized"
FORBIDDEN = protocol.FORBIDDEN
NOT_FOUND = protocol.NOT_FOUND
RATE_LIMITED = protocol.RATE_LIMITED
INVALID_FIELD = protocol.INVALID_FIELD
INVALID_PARAMETER = "invalid_parameter"
INVALID_JSON = protocol.INVALID_JSON

#: HTTP status of each websocket error code when a service raises `ClientError` under the API.
CLIENT_ERROR_STATUS = {
    protocol.SESSION_NOT_FOUND: 404,
    protocol.NOT_FOUND: 404,
    protocol.FORBIDDEN: 403,
    protocol.RATE_LIMITED: 429,
    protocol.REPLY_IN_PROGRESS: 409,
    protocol.ALREADY_CLAIMED: 409,
    protocol.LIMIT_REACHED: 409,
    protocol.PROVIDER_UNAVAILABLE: 502,
    protocol.PROVIDER_INTERRUPTED: 502,
    protocol.REPLY_TIMEOUT: 504,
    protocol.RESTARTING: 503,
    protocol.INTERNAL_ERROR: 500,
}


class ApiError(exceptions.APIException):
    """An API error with a code of ours, an HTTP status, and optionally the field or parameter at fault."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        status_code: int = 400,
        field: str | None = None,
        parameter: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail=detail, code=code)
        self.status_code = status_code
        self.error_code = code
        self.field = field
        self.parameter = parameter
        self.retry_after = retry_after

    @classmethod
    def from_client_error(cls, error: ClientError) -> ApiError:
        """A service's `ClientError` (the websocket's error) as the matching HTTP error."""
        return cls(
            error.code,
            error.detail,
            status_code=CLIENT_ERROR_STATUS.get(error.code, 400),
            field=error.field,
            retry_after=error.retry_after,
        )


def body(
    code: str, detail: str, *, field: str | None = None, parameter: str | None = None, retry_after: float | None = None
) -> dict[str, Any]:
    """An error body: `{code, detail}` and whichever of field / parameter / retry_after apply."""
    data: dict[str, Any] = {"code": code, "detail": detail}
    if field is not None:
        data["field"] = field
    if parameter is not None:
        data["parameter"] = parameter
    if retry_after is not None:
        data["retry_after"] = retry_after
    return data


def _first_error(detail: Any, path: str = "") -> tuple[str | None, str]:
    """The first (field path, message) of a DRF validation error's nested detail."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = str(key) if key != "non_field_errors" else ""
            return _first_error(value, f"{path}.{name}" if path and name else (name or path))
    if isinstance(detail, list) and detail:
        if all(not isinstance(item, (dict, list)) for item in detail):
            return path or None, str(detail[0])
        for index, item in enumerate(detail):
            if item:
                return _first_error(item, f"{path}[{index}]")
    return path or None, str(detail)


def _rounded_wait(seconds: float) -> int:
    return max(1, math.ceil(seconds))


def convert(exc: Exception) -> ApiError | None:
    """Any exception an API view may raise, as an `ApiError` (None: not ours to answer)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ClientError):
        return ApiError.from_client_error(exc)
    if isinstance(exc, ParamError):
        return ApiError(INVALID_PARAMETER, exc.message, parameter=exc.parameter)
    if isinstance(exc, Http404):
        return ApiError(NOT_FOUND, "Not found.", status_code=404)
    if isinstance(exc, DjangoPermissionDenied):
        return ApiError(FORBIDDEN, str(exc) or "You may not do this.", status_code=403)
    if isinstance(exc, exceptions.ValidationError):
        field, message = _first_error(exc.detail)
        return ApiError(INVALID_FIELD, message, field=field)
    if isinstance(exc, exceptions.ParseError):
        return ApiError(INVALID_JSON, str(exc.detail))
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        return ApiError(UNAUTHORIZED, str(exc.detail), status_code=401)
    if isinstance(exc, exceptions.PermissionDenied):
        return ApiError(FORBIDDEN, str(exc.detail), status_code=403)
    if isinstance(exc, exceptions.NotFound):
        return ApiError(NOT_FOUND, str(exc.detail), status_code=404)
    if isinstance(exc, exceptions.Throttled):
        wait = exc.wait if exc.wait is not None else 60.0
        return ApiError(RATE_LIMITED, "Too many requests; try again later.", status_code=429, retry_after=wait)
    if isinstance(exc, exceptions.MethodNotAllowed):
        return ApiError("method_not_allowed", str(exc.detail), status_code=405)
    if isinstance(exc, exceptions.NotAcceptable):
        return ApiError("not_acceptable", str(exc.detail), status_code=406)
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return ApiError("unsupported_media_type", str(exc.detail), status_code=415)
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        return ApiError(codes if isinstance(codes, str) else "error", str(exc.detail), status_code=exc.status_code)
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: `{code, detail, …}`, `Retry-After` on 429, one WARNING per bad client."""
    error = convert(exc)
    if error is None:
        return None  # a server error: Django's 500 handling (and its ERROR log) takes over
    retry_after = None if error.retry_after is None else _rounded_wait(error.retry_after)
    data = body(
        error.error_code, str(error.detail), field=error.field, parameter=error.parameter, retry_after=retry_after
    )
    response = Response(data, status=error.status_code)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    if error.status_code == 401:
        response["WWW-Authenticate"] = 'Bearer realm="api"'
    request = context.get("request")
    if error.status_code < 500 and request is not None:
        ip = request.META.get("REMOTE_ADDR") or "unknown"
        client_warnings.warning(
            logger,
            "api",
            ip,
            "API client %s: %s %s → %s %s: %s",
            ip,
            request.method,
            request.path[:200],
            error.status_code,
            error.error_code,
            protocol.printable(str(error.detail), 300),
        )
    return response


__all__ = ["ApiError", "body", "convert", "exception_handler", "status"]
