"""What every staff endpoint shares: who may call it, how often, and that it answers JSON."""

from __future__ import annotations

from typing import Any

from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from analytics.params import ParamError
from api.permissions import StaffScope
from api.staff.authentication import STAFF_AUTHENTICATION
from api.staff.throttling import ApiKeyRateThrottle


class JsonAlways(BaseContentNegotiation):
    """Answer with the view's first renderer whatever `Accept` says: never a 406 for a read.

    Exports choose CSV or JSON lines with their `format` parameter instead.
    """

    def select_parser(self, request: Request, parsers: list[Any]) -> Any:
        """No request bodies here; the first parser if any."""
        return parsers[0] if parsers else None

    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        """The first renderer (JSON)."""
        return renderers[0], renderers[0].media_type


class StaffView(APIView):
    """A GET endpoint for staff sessions and API keys holding `required_scope`, rate limited per key."""

    authentication_classes = STAFF_AUTHENTICATION
    permission_classes = [StaffScope]
    throttle_classes = [ApiKeyRateThrottle]
    content_negotiation_class = JsonAlways
    http_method_names = ["get", "head", "options"]
    required_scope = "read"

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """Credentials, scope and rate first; then a parameter given empty is refused, not taken as absent.

        (The dashboard's own forms submit empty fields, so `analytics.params` reads them as absent;
        an API client that sends `start_date=` has a bug worth hearing about.)
        """
        super().initial(request, *args, **kwargs)
        for name, values in request.query_params.lists():
            if any(not value.strip() for value in values):
                raise ParamError(name, f"'{name[:40]}' is empty: give it a value, or leave it out.")
