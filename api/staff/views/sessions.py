"""/sessions/ (filtered, cursor-paginated) and /sessions/{id}/."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from analytics.params import check_known
from api.staff import params, schema
from api.staff.pagination import encode_cursor
from api.staff.selectors import sessions
from api.staff.serializers.sessions import SessionDetailSerializer, SessionPageSerializer
from api.staff.views.base import StaffView


@extend_schema_view(
    get=extend_schema(
        operation_id="sessions_list",
        summary="Conversations with their analytics",
        description="Sessions with at least one message, newest first, each with its analytics (resolution, "
        "escalation, rating, topics, sentiment, provider, tokens and cost). Filters combine (AND). Pages follow "
        "`next_cursor` (keyset pagination: a walk sees each session once, even while new ones start).",
        parameters=[*schema.SESSION_FILTERS, *schema.HEADERS],
        responses=schema.responses(SessionPageSerializer),
        tags=["staff: sessions"],
    )
)
class SessionListView(StaffView):
    """GET /api/v1/sessions/."""

    def get(self, request: Request) -> Response:
        """One page."""
        query = params.session_query(request.query_params)
        items, following = sessions.sessions_page(query)
        next_cursor = encode_cursor(following) if following else None
        next_url = None
        if next_cursor is not None:
            rest = [(key, value) for key, value in request.query_params.items() if key != "cursor"]
            next_url = request.build_absolute_uri(f"{request.path}?{urlencode([*rest, ('cursor', next_cursor)])}")
        return Response(
            {"results": items, "next_cursor": next_cursor, "next": next_url, "limit": query.limit,
             "filters": query.echo()}
        )  # fmt: skip


@extend_schema_view(
    get=extend_schema(
        operation_id="sessions_retrieve",
        summary="One conversation: messages, feedback, rating, analytics, provider calls",
        parameters=[
            OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The session's id."),
            *schema.HEADERS,
        ],
        responses=schema.responses(SessionDetailSerializer, 404),
        tags=["staff: sessions"],
    )
)
class SessionDetailView(StaffView):
    """GET /api/v1/sessions/{id}/."""

    def get(self, request: Request, id: str) -> Response:
        """The session, or 404."""
        check_known(request.query_params, set())
        try:
            public_id = uuid.UUID(id)
        except ValueError:
            raise NotFound("No session with that id.") from None
        data = sessions.session_detail(public_id)
        if data is None:
            raise NotFound("No session with that id.")
        return Response(data)
