"""Which active endpoints want which event type, cached in the process: the chat's zero-cost check.

Every chat write asks `wanted(...)` (through `assistant.events.recording`) before building
anything, so the answer must cost no query: it is a dictionary kept in memory, read again from
the database at most every WEBHOOK_ROUTES_TTL_S seconds (so that other processes notice an
endpoint saved in the admin), and dropped at once in this process when an endpoint is saved or
deleted (`invalidate`, connected to the model's signals in `WebhooksConfig.ready`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from django.conf import settings
from django.db import connection, transaction

from webhooks.models import EVENT_TYPE_NAMES, WebhookEndpoint

logger = logging.getLogger(__name__)

_lock = threading.Lock()
#: Event type → ids of the active endpoints that want it (types nobody wants are absent).
_routes: dict[str, tuple[int, ...]] = {}
_expires_at = 0.0  # time.monotonic(); 0 forces a read


def endpoints_for(event_type: str) -> tuple[int, ...]:
    """Ids of the active endpoints that want `event_type` (usually no query: see the module)."""
    if time.monotonic() >= _expires_at:
        _refresh()
    return _routes.get(event_type, ())


def wanted(*event_types: str) -> bool:
    """Whether any active endpoint wants one of `event_types`."""
    if time.monotonic() >= _expires_at:
        _refresh()
    return any(event_type in _routes for event_type in event_types)


def invalidate() -> None:
    """Read the endpoints again at the next check (an endpoint was saved or deleted)."""
    global _expires_at
    _expires_at = 0.0


def _refresh() -> None:
    """Read the active endpoints (in a savepoint when inside a transaction: a failure must not
    poison the chat's write); on failure, no endpoints until the next try."""
    global _routes, _expires_at
    with _lock:
        if time.monotonic() < _expires_at:
            return  # another thread read them meanwhile
        routes: dict[str, list[int]] = {}
        try:
            with transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext():
                rows = list(WebhookEndpoint.objects.filter(active=True).values_list("id", "event_types"))
        except Exception:
            logger.exception("Could not read the webhook endpoints; none are used for %s s", _ttl())
            rows = []
        for pk, types in rows:
            wants = [t for t in types if t in EVENT_TYPE_NAMES] if types else sorted(EVENT_TYPE_NAMES)
            for event_type in wants:
                routes.setdefault(event_type, []).append(pk)
        _routes = {event_type: tuple(pks) for event_type, pks in routes.items()}
        _expires_at = time.monotonic() + _ttl()


def _ttl() -> float:
    return float(settings.WEBHOOK_ROUTES_TTL_S)
