"""The dashboard banner's read: the alerts firing now, as JSON, for staff.

The dashboard page belongs to analytics, which must not import alerts; its script reads this
endpoint (every 30 s) and shows a banner. Staff only, like the analytics JSON API
(`analytics.access.staff_api`: anonymous 401, not staff 403). A dashboard open in a process
also keeps that process's alert sweep running.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse

from alerts import selectors, sweep
from analytics.access import staff_api


@staff_api
async def active_api(request: HttpRequest) -> HttpResponse:
    """GET: `{alerts: [...], count, history_url, evaluated_at}`; no query parameters."""
    if request.method != "GET":
        response = JsonResponse({"error": "Use GET."}, status=405)
        response["Allow"] = "GET"
        return response
    if request.GET:
        name = next(iter(request.GET))[:40]
        return JsonResponse({"error": f"Unknown parameter {name!r}: this endpoint takes none.", "parameter": name},
                            status=400)  # fmt: skip
    sweep.ensure_running()
    data = await sync_to_async(selectors.banner)()
    return JsonResponse(data, json_dumps_params={"ensure_ascii": False})
