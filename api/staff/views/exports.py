"""/exports/{sessions,messages,analytics}/: the staff exports, streamed as CSV or JSON lines.

The same rows, columns and filters as the dashboard's exports (`analytics.exports`: one reader,
one encoder); an API key needs the `export` scope.
"""

from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.request import Request

from analytics import exports, params
from analytics.params import USER_TYPES
from api.staff import schema
from api.staff.views.base import StaffView

QUERY = OpenApiParameter.QUERY
FILTERS = [
    OpenApiParameter(
        "start_date", OpenApiTypes.DATE, QUERY, description="Sessions that started on or after this local day."
    ),
    OpenApiParameter(
        "end_date", OpenApiTypes.DATE, QUERY, description="Sessions that started on or before this local day."
    ),
    OpenApiParameter("user_type", str, QUERY, enum=list(USER_TYPES), description="The session's visitor type."),
    schema.SOURCE,
    schema.boolean("is_active", "true: sessions not closed; false: closed (ended, or idle past the idle window)."),
    schema.boolean("resolved", "Resolved (confirmed or assumed), as analytics records it."),
    OpenApiParameter("session_id", OpenApiTypes.UUID, QUERY, description="One session."),
    OpenApiParameter("format", str, QUERY, enum=["csv", "jsonl"], description="csv (default) or jsonl."),
]
SENDER = OpenApiParameter(
    "sender_type", str, QUERY, enum=["user", "assistant", "agent", "system"], description="Messages of this role."
)


class ExportView(StaffView):
    """Streams one export; subclasses name it."""

    required_scope = "export"
    export: exports.Export

    def get(self, request: Request) -> StreamingHttpResponse:
        """The rows, streamed; 400 naming a bad parameter."""
        query_params: Any = request.query_params
        self.export.check(query_params)
        query = params.export_query(query_params, allowed=set(self.export.allowed))
        response = StreamingHttpResponse(
            exports.stream(self.export, query), content_type=exports.CONTENT_TYPES[query.format]
        )
        response["Content-Disposition"] = f'attachment; filename="{exports.filename(self.export, query)}"'
        response["Cache-Control"] = "no-store"
        return response


def _described(name: str, text: str, parameters: list[OpenApiParameter]) -> Any:
    return extend_schema_view(
        get=extend_schema(
            operation_id=f"exports_{name}",
            summary=f"The {name} export (CSV or JSON lines)",
            description=f"{text} Streamed; CSV starts with its header row. Needs the `export` scope.",
            parameters=[*parameters, *schema.HEADERS],
            responses=schema.streamed(f"The {name}, one per row or line."),
            tags=["staff: exports"],
        )
    )


@_described("sessions", "One row per session with at least one message.", FILTERS)
class SessionsExportView(ExportView):
    """GET /api/v1/exports/sessions/."""

    export = exports.SESSIONS


@_described("messages", "Every message of the selected sessions, in the order written.", [*FILTERS, SENDER])
class MessagesExportView(ExportView):
    """GET /api/v1/exports/messages/."""

    export = exports.MESSAGES


@_described("analytics", "The analytics row of each selected session: its columns add up to the metrics.", FILTERS)
class AnalyticsExportView(ExportView):
    """GET /api/v1/exports/analytics/."""

    export = exports.ANALYTICS
