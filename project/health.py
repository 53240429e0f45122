"""`/healthz` for load balancers and container health checks.

It is answered by middleware placed first, before anything validates the Host header, because
probes call the container by IP address, which ALLOWED_HOSTS rightly does not list.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)
PATH = "/healthz"


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        logger.exception("Health check: database unreachable")
        return False
    finally:
        connection.close()


async def _channel_layer_ok() -> bool:
    layer = get_channel_layer()
    try:
        channel = await asyncio.wait_for(layer.new_channel("health."), 2)
        await asyncio.wait_for(layer.send(channel, {"type": "health.ping"}), 2)
        await asyncio.wait_for(layer.receive(channel), 2)
        return True
    except Exception:
        logger.exception("Health check: channel layer unreachable")
        return False


async def health_response() -> HttpResponse:
    """200 with each dependency's state, or 503 when one is down."""
    database = await sync_to_async(_database_ok, thread_sensitive=False)()
    layer = await _channel_layer_ok()
    healthy = database and layer
    body = {"status": "ok" if healthy else "unavailable", "database": database, "channel_layer": layer}
    return HttpResponse(json.dumps(body), status=200 if healthy else 503, content_type="application/json")


class HealthCheckMiddleware:
    """Answer `/healthz` before host validation and sessions."""

    async_capable = True
    sync_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[HttpResponse]]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == PATH:
            return await health_response()
        return await self.get_response(request)
