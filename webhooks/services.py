"""Writes of the webhooks app: the outbox rows (in the caller's transaction), redelivery, endpoint upkeep.

`emit` is the public entry for other apps (alerts: `alert.fired`, `alert.resolved`); the chat's
records reach `record_chat` through the event seam (`subscribers`). Both end in `write`: one
multi-row INSERT (`project.sql`) of one row per (event, active endpoint wanting it), in the
caller's transaction, then a wake-up of this process's dispatcher once that transaction commits.
Nothing at all is written, and nothing read, when no active endpoint wants the type.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from assistant import events
from project import sql as shared
from webhooks import payloads, routes, wakeup
from webhooks.models import EVENT_TYPE_NAMES, WebhookDelivery, WebhookEndpoint
from webhooks.payloads import Outgoing, iso

_PENDING = WebhookDelivery.State.PENDING


def emit(type: str, data: dict[str, Any], *, conversation_id: str | None = None) -> None:
    """Queue webhook event `type` with `data` for every active endpoint that wants it, in the caller's transaction.

    Call it inside the `transaction.atomic()` that writes the change, so that the event exists if
    and only if the change committed. `conversation_id` (a conversation's public id) orders the
    event after that conversation's earlier ones for each endpoint; without it, unordered.
    Raises ValueError for an unknown type; `data` must be JSON-serialisable (datetimes,
    decimals and UUIDs are written as strings).
    """
    if type not in EVENT_TYPE_NAMES:
        raise ValueError(f"unknown webhook event type {type!r}")
    write([Outgoing(type, data, conversation_id or "", timezone.now())])


def record_chat(records: list[events.Record]) -> None:
    """The durable subscriber of the chat's records: their events into the outbox (same transaction)."""
    write(payloads.outgoing(records))


def record_wanted(record_type: type[events.Record]) -> bool:
    """Whether an active endpoint wants an event `record_type` can become (the chat's zero-cost check)."""
    return routes.wanted(*payloads.BUILDERS[record_type][0])


def write(items: Iterable[Outgoing]) -> int:
    """INSERT the outbox rows of `items` for the endpoints that want them; how many rows.

    One statement for all of them. The rows are built by hand in column order (`_columns`):
    this runs in the chat's transactions, where the generic per-field preparation cost more than
    the INSERT itself.
    """
    rows: list[list[object]] = []
    now = timezone.now()
    prepared_now = connection.ops.adapt_datetimefield_value(now)
    for item in items:
        endpoints = routes.endpoints_for(item.type)
        if not endpoints:
            continue
        event_id = new_event_id()
        body = encode({"type": item.type, "timestamp": iso(item.occurred_at), "data": item.data})
        occurred = connection.ops.adapt_datetimefield_value(item.occurred_at)
        for endpoint_id in endpoints:
            values = {
                "event_id": event_id,
                "event_type": item.type,
                "endpoint": endpoint_id,
                "conversation_id": item.conversation_id,
                "body": body,
                "occurred_at": occurred,
                "next_attempt_at": prepared_now,
                "created_at": prepared_now,
            }
            rows.append([values.get(name, default) for name, default in _columns()])
    if rows:
        shared.insert(WebhookDelivery, rows, pk=False)
        transaction.on_commit(wakeup.ring)
    return len(rows)


@functools.cache
def _columns() -> tuple[tuple[str, object], ...]:
    """(field name, prepared default) of every outbox column, in `project.sql`'s column order."""
    defaults: dict[str, object] = {
        "state": _PENDING,
        "attempts": 0,
        "leased_until": None,
        "lease_owner": "",
        "last_status": None,
        "last_error": "",
        "delivered_at": None,
    }
    return tuple((field.name, defaults.get(field.name)) for field in shared.columns(WebhookDelivery, pk=False))


def new_event_id() -> str:
    """A `webhook-id`: unique per event, the same for every endpoint and every attempt."""
    return "msg_" + uuid.uuid4().hex


def encode(body: dict[str, Any]) -> str:
    """The body as sent: compact JSON, UTF-8 (ASCII escapes if the text cannot be UTF-8, e.g. a lone surrogate)."""
    text = json.dumps(body, cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(body, cls=DjangoJSONEncoder, separators=(",", ":"))
    return text


# --- redelivery and endpoints (the admin) ---------------------------------------------------------
def deliveries_redeliver(*, pks: Iterable[int], now: datetime | None = None) -> int:
    """Queue deliveries again, now, with the full retry schedule (same body, same webhook-id); how many."""
    now = now or timezone.now()
    count = WebhookDelivery.objects.filter(pk__in=list(pks)).update(
        state=_PENDING, attempts=0, next_attempt_at=now, leased_until=None, lease_owner="", delivered_at=None
    )
    if count:
        transaction.on_commit(wakeup.ring)
    return count


def endpoint_saved(*, endpoint: WebhookEndpoint, reactivated: bool) -> None:
    """After the admin saved an endpoint: one switched back on starts with a clean health record."""
    if reactivated:
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
            consecutive_failures=0, failing_since=None, disabled_at=None, disabled_reason=""
        )
        transaction.on_commit(wakeup.ring)  # its pending deliveries may go now
    routes.invalidate()
