"""What every API operation's schema shares: the error body and the error responses.

Every error is `{code, detail}` plus `field`, `parameter` or `retry_after` when they apply
(`api.errors`); operations declare each status they can answer with `error_responses(...)`, so
that the schema at /api/v1/schema/ lists every response a client (or schemathesis) can get.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """An error: a stable `code`, a human `detail`, and what was at fault."""

    code = serializers.CharField(help_text="Stable, machine-readable: `invalid_field`, `not_found`, `rate_limited`…")
    detail = serializers.CharField(help_text="What went wrong, for a person.")
    field = serializers.CharField(required=False, help_text="The request body field at fault (dotted for nested).")
    parameter = serializers.CharField(required=False, help_text="The query parameter or header at fault.")
    retry_after = serializers.IntegerField(
        required=False, min_value=1, help_text="Seconds to wait before trying again (also the Retry-After header)."
    )


#: What each error status means on this API (the description of its response in the schema).
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "The request is malformed: `invalid_json`, `invalid_field` (with `field`), `invalid_parameter` "
    "(with `parameter`), or an operation's own code.",
    401: "`unauthorized`: no credentials, or malformed ones (WWW-Authenticate says which scheme).",
    403: "`forbidden`: the credentials may not do this, or the browser's Origin is not allowed.",
    404: "`not_found`: nothing here, or nothing these credentials may see.",
    405: "`method_not_allowed` (the Allow header lists the methods).",
    406: "`not_acceptable`: no representation matches the Accept header.",
    409: "A conflicting state, for example `reply_in_progress`.",
    413: "`payload_too_large`: the request body is larger than the operation accepts.",
    415: "`unsupported_media_type`: send `application/json`.",
    429: "`rate_limited`: wait `retry_after` seconds (the Retry-After header).",
    503: "The server cannot take this now (`server_busy`, `restarting`); retry after Retry-After.",
}


def error_responses(*statuses: int, **descriptions: str) -> dict[int, OpenApiResponse]:
    """Schema responses for error `statuses` (a description per status may be given as `s409="…"`)."""
    return {
        status: OpenApiResponse(
            response=ErrorSerializer,
            description=descriptions.get(f"s{status}") or ERROR_DESCRIPTIONS.get(status, "An error."),
        )
        for status in statuses
    }


#: The statuses any operation may answer besides its own: bad credentials, origin, method,
#: content negotiation, body size and type, the per-address limit, a busy or restarting server.
COMMON_ERRORS = (401, 403, 405, 406, 413, 415, 429, 503)


def error_headers(*retry_statuses: int) -> list[OpenApiParameter]:
    """The headers of error responses: Retry-After (on `retry_statuses`), WWW-Authenticate (on 401)."""
    return [
        OpenApiParameter(
            "Retry-After",
            OpenApiTypes.INT,
            OpenApiParameter.HEADER,
            response=list(retry_statuses),
            description="Seconds to wait before trying again.",
        ),
        OpenApiParameter(
            "WWW-Authenticate",
            OpenApiTypes.STR,
            OpenApiParameter.HEADER,
            response=[401],
            description='The scheme to authenticate with: `Bearer realm="api"`.',
        ),
    ]
