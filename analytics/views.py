"""Staff analytics over HTTP: the dashboard and transcript pages, the JSON API, the exports.

Adapters only: parse the query (`analytics.params`), call one selector, render. Every number
comes from `analytics.selectors`, the same reads the weekly report uses. The views are async
(the exports stream); each reaches the ORM through one `sync_to_async` call, Django's own
bridge, whose request signals manage the connection (Channels' `database_sync_to_async` is for
consumers, which live outside a request).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse

from analytics import metrics, params, selectors
from analytics.access import staff_api, staff_page
from analytics.params import ParamError

_JSON = {"ensure_ascii": False}


def _bad_request(error: ParamError) -> JsonResponse:
    return JsonResponse(error.as_dict(), status=400)


def _period_endpoint(read: Callable[[params.PeriodQuery], dict[str, Any]]) -> Any:
    """A GET endpoint over a period and filters: 400 on bad parameters, else the selector's JSON."""

    @staff_api
    async def view(request: HttpRequest) -> HttpResponse:
        if request.method != "GET":
            return JsonResponse({"error": "Use GET."}, status=405)
        try:
            query = params.period_query(request.GET)
        except ParamError as error:
            return _bad_request(error)
        data = await sync_to_async(read)(query)
        data.setdefault("query", params.as_dict(query))
        return JsonResponse(data, json_dumps_params=_JSON)

    return view


snapshot_api = _period_endpoint(lambda q: selectors.snapshot(q.period, q.filters))
summary_api = _period_endpoint(
    lambda q: {**selectors.summary(q.period, q.filters), **selectors.breakdowns(q.period, q.filters)}
)
daily_api = _period_endpoint(lambda q: {"daily": selectors.daily_series(q.period, q.filters)})
cost_api = _period_endpoint(lambda q: selectors.cost_trend(q.period, q.filters))
features_api = _period_endpoint(lambda q: selectors.feature_usage(q.period, q.filters))
tables_api = _period_endpoint(lambda q: selectors.tables(q.period, q.filters))
definitions_api = _period_endpoint(
    lambda q: {"metrics": metrics.definitions(), "breakdowns": dict(metrics.BREAKDOWN_DEFINITIONS)}
)


@staff_api
async def transcript_api(request: HttpRequest, session_id: uuid.UUID) -> HttpResponse:
    """One session's messages, timing, feedback and analytics."""
    data = await sync_to_async(selectors.transcript)(session_id)
    if data is None:
        return JsonResponse({"error": "No session with that id."}, status=404)
    return JsonResponse(data, json_dumps_params=_JSON)


@staff_page
async def dashboard(request: HttpRequest) -> HttpResponse:
    """The live dashboard page (its numbers come from the API and the /ws/analytics/ socket).

    The page takes the API's period parameters (its filter form submits them): a bad one gets the
    page with a 400 and the error shown, so the form is there to correct it.
    """
    context = {
        "definitions": metrics.definitions(),  # the cards, their order and labels come from it
        "ranges": list(params.RANGES),
        "default_range": params.DEFAULT_RANGE,
        "min_date": params.MIN_DATE.isoformat(),
        "max_date": params.max_date().isoformat(),
        "error": None,
    }
    try:
        params.period_query(request.GET)
    except ParamError as error:
        context["error"] = error.as_dict()
        return TemplateResponse(request, "analytics/dashboard.html", context, status=400)
    return TemplateResponse(request, "analytics/dashboard.html", context)


@staff_page
async def transcript_page(request: HttpRequest, session_id: uuid.UUID) -> HttpResponse:
    """One session's transcript; new messages stream in while it is live."""
    data = await sync_to_async(selectors.transcript)(session_id)
    if data is None:
        raise Http404("No session with that id.")
    return TemplateResponse(request, "analytics/transcript.html", {"transcript": data, "session_id": str(session_id)})
