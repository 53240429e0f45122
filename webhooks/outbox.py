"""The dispatcher's side of the outbox: claim due deliveries with a lease, store what each attempt got, prune.

Several processes deliver from one outbox. A claim is one guarded `UPDATE … RETURNING` that
takes a lease (`lease_owner`, `leased_until`) on the due rows nobody holds: on Postgres its
subquery locks them `FOR UPDATE SKIP LOCKED`, so two processes claiming at once take disjoint
rows without waiting on each other; on SQLite the write lock orders the claims and the guard
(`leased_until` past) does the rest. A process that dies mid-send leaves its lease to expire
(or to be released at the next server's startup when its process is known dead), so the row
is sent again: at least once, under the same `webhook-id`.

Order per conversation and endpoint: a row is due only when no earlier row of the same
conversation for the same endpoint is still pending (being sent or waiting for a retry). A
row given up (`failed`) no longer holds the later ones back.
"""

from __future__ import annotations

import functools
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from project import sql as shared
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

State = WebhookDelivery.State
#: Each retry waits its scheduled delay times a random factor in this range.
JITTER = (0.8, 1.2)
#: How long a claim holds its rows beyond the send's own timeout.
LEASE_MARGIN_S = 30.0
PRUNE_BATCH = 500
MAX_ERROR_CHARS = 300
MAX_EXCERPT_CHARS = 1000


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery this process holds the lease of, with what sending it needs."""

    pk: int
    event_id: str
    event_type: str
    body: str
    endpoint_id: int
    url: str
    secret: str
    attempts: int  # before this one
    conversation_id: str
    due_at: datetime  # when it was due: how long it waited shows in `now - due_at`


@dataclass(frozen=True, slots=True)
class Result:
    """What one attempt got."""

    pk: int
    endpoint_id: int
    attempts: int  # before this one
    attempted_at: datetime
    duration_ms: int
    status_code: int | None = None
    error: str = ""
    excerpt: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True, slots=True)
class Disabled:
    """An endpoint just disabled for failing, and whom to tell."""

    endpoint_id: int
    url: str
    description: str
    email: str
    reason: str


def lease_s() -> float:
    """How long a claim holds a row: the send's timeout and a margin for storing its result."""
    return float(settings.WEBHOOK_TIMEOUT_S) + LEASE_MARGIN_S


def _when(moment: datetime) -> object:
    return connection.ops.adapt_datetimefield_value(moment)


def _aware(value: object) -> datetime:
    """A datetime column read by hand: SQLite gives naive UTC text, Postgres an aware datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@functools.cache
def _claim_sql(vendor: str) -> str:
    """The claim: due rows nobody holds, oldest due first, none behind an earlier pending row of
    its conversation for the same endpoint, leased in one statement.

    Postgres gets the candidates from a CTE, evaluated once (`FOR UPDATE … SKIP LOCKED` in an
    `IN (…)` subquery may be evaluated again per row and lease more than the limit).
    """
    quote = shared.quote
    d, e = quote(WebhookDelivery._meta.db_table), quote(WebhookEndpoint._meta.db_table)
    due = (
        f"SELECT d.{quote('id')} FROM {d} d JOIN {e} e ON e.{quote('id')} = d.{quote('endpoint_id')} "
        f"WHERE d.{quote('state')} = %s AND d.{quote('next_attempt_at')} <= %s "
        f"AND (d.{quote('leased_until')} IS NULL OR d.{quote('leased_until')} < %s) AND e.{quote('active')} = %s "
        f"AND (d.{quote('conversation_id')} = '' OR NOT EXISTS (SELECT 1 FROM {d} p "
        f"WHERE p.{quote('endpoint_id')} = d.{quote('endpoint_id')} "
        f"AND p.{quote('conversation_id')} = d.{quote('conversation_id')} "
        f"AND p.{quote('state')} = %s AND p.{quote('id')} < d.{quote('id')})) "
        f"ORDER BY d.{quote('next_attempt_at')}, d.{quote('id')} LIMIT %s"
    )
    lease = f"{quote('lease_owner')} = %s, {quote('leased_until')} = %s"
    returning = (
        f"RETURNING {d}.{quote('id')}, {quote('event_id')}, {quote('event_type')}, {quote('body')}, "
        f"{quote('endpoint_id')}, {quote('attempts')}, {quote('conversation_id')}, {quote('next_attempt_at')}"
    )
    if vendor == "postgresql":
        return (
            f"WITH due AS ({due} FOR UPDATE OF d SKIP LOCKED) UPDATE {d} SET {lease} FROM due "
            f"WHERE {d}.{quote('id')} = due.{quote('id')} {returning}"
        )
    return f"UPDATE {d} SET {lease} WHERE {quote('id')} IN ({due}) {returning}"


def claim(*, limit: int, owner: str, now: datetime | None = None) -> list[Claimed]:
    """Lease up to `limit` due deliveries for `owner`, oldest due first; with their endpoint's URL and secret."""
    if limit <= 0:
        return []
    now = now or timezone.now()
    until = now + timedelta(seconds=lease_s())
    stamp = _when(now)
    due = [State.PENDING, stamp, stamp, True, State.PENDING, limit]
    lease = [owner, _when(until)]
    params = due + lease if connection.vendor == "postgresql" else lease + due
    rows = shared.execute(_claim_sql(connection.vendor), params)
    if not rows:
        return []
    wanted = sorted({row[4] for row in rows})
    quote = shared.quote
    endpoints = {
        pk: (url, secret)
        for pk, url, secret in shared.execute(
            f"SELECT {quote('id')}, {quote('url')}, {quote('secret')} FROM {quote(WebhookEndpoint._meta.db_table)} "
            f"WHERE {quote('id')} IN ({', '.join(['%s'] * len(wanted))})",
            wanted,
        )
    }
    claimed = [
        Claimed(
            pk, event_id, event_type, body, endpoint_id, *endpoints[endpoint_id], attempts, conversation, _aware(due)
        )
        for pk, event_id, event_type, body, endpoint_id, attempts, conversation, due in rows
        if endpoint_id in endpoints
    ]
    return sorted(claimed, key=lambda item: item.pk)


def next_attempt(attempts: int, now: datetime) -> datetime | None:
    """When to try again after `attempts` failed attempts (None: the schedule is spent, give up)."""
    schedule = settings.WEBHOOK_RETRY_SCHEDULE_S
    if attempts > len(schedule):
        return None
    return now + timedelta(seconds=schedule[attempts - 1] * random.uniform(*JITTER))


def finish(*, results: list[Result], owner: str, now: datetime | None = None) -> list[Disabled]:
    """Store a batch of attempts (log rows, delivery states, endpoint health) in one transaction.

    A delivery whose lease `owner` no longer holds (it expired and another process took it, or
    it was redelivered meanwhile) keeps its state; its attempt is still logged: it happened.
    Returns the endpoints this batch disabled (their owners are to be told).
    """
    if not results:
        return []
    now = now or timezone.now()
    with transaction.atomic():
        shared.insert(
            WebhookAttempt,
            [
                shared.values_from(
                    {
                        "delivery": result.pk,
                        "attempted_at": result.attempted_at,
                        "status_code": result.status_code,
                        "duration_ms": result.duration_ms,
                        "error": result.error[:MAX_ERROR_CHARS],
                        "response_excerpt": result.excerpt[:MAX_EXCERPT_CHARS],
                    },
                    shared.columns(WebhookAttempt, pk=False),
                )
                for result in results
            ],
            pk=False,
        )
        rows = []
        for result in results:
            attempts = result.attempts + 1
            retry_at = None if result.ok else next_attempt(attempts, now)
            state = State.DELIVERED if result.ok else State.PENDING if retry_at is not None else State.FAILED
            rows.append(
                [
                    state,
                    attempts,
                    _when(retry_at) if retry_at is not None else None,
                    _when(result.attempted_at) if result.ok else None,
                    result.status_code,
                    result.error[:MAX_ERROR_CHARS],
                    result.pk,
                    owner,
                    State.PENDING,
                ]
            )
        with connection.cursor() as cursor:
            cursor.executemany(_finish_sql(connection.vendor), rows)
        return _health(results, now)


def _health(results: list[Result], now: datetime) -> list[Disabled]:
    """Keep each endpoint's run of failures; disable the ones failing for long enough."""
    by_endpoint: dict[int, list[Result]] = defaultdict(list)
    for result in sorted(results, key=lambda item: item.attempted_at):
        by_endpoint[result.endpoint_id].append(result)
    quote = shared.quote
    table = quote(WebhookEndpoint._meta.db_table)
    failures_column, since_column = quote("consecutive_failures"), quote("failing_since")
    failing: list[int] = []
    for endpoint_id, attempts in by_endpoint.items():
        last_ok = max((i for i, item in enumerate(attempts) if item.ok), default=None)
        failures = attempts if last_ok is None else attempts[last_ok + 1 :]
        if last_ok is not None:  # a success ends the run (a statement that changes nothing when healthy)
            shared.execute(
                f"UPDATE {table} SET {failures_column} = 0, {since_column} = NULL "
                f"WHERE {quote('id')} = %s AND {failures_column} > 0",
                [endpoint_id],
            )
        if failures:
            shared.execute(
                f"UPDATE {table} SET {failures_column} = {failures_column} + %s, "
                f"{since_column} = COALESCE({since_column}, %s) WHERE {quote('id')} = %s",
                [len(failures), _when(failures[0].attempted_at), endpoint_id],
            )
            failing.append(endpoint_id)
    if not failing:
        return []
    since = now - timedelta(hours=float(settings.WEBHOOK_DISABLE_AFTER_H))
    doomed = list(
        WebhookEndpoint.objects.filter(
            pk__in=failing,
            active=True,
            consecutive_failures__gte=settings.WEBHOOK_DISABLE_AFTER_FAILURES,
            failing_since__lte=since,
        ).select_related("owner")
    )
    disabled: list[Disabled] = []
    for endpoint in doomed:
        reason = (
            f"Disabled after {endpoint.consecutive_failures} failed attempts in a row "
            f"since {endpoint.failing_since:%Y-%m-%d %H:%M} UTC."
        )
        if WebhookEndpoint.objects.filter(pk=endpoint.pk, active=True).update(
            active=False, disabled_at=now, disabled_reason=reason
        ):
            email = endpoint.owner_email or (endpoint.owner.email if endpoint.owner is not None else "")
            disabled.append(Disabled(endpoint.pk, endpoint.url, endpoint.description, email, reason))
    return disabled


@functools.cache
def _finish_sql(vendor: str) -> str:
    """One attempt's outcome on its delivery, only while `owner` still holds its lease."""
    quote = shared.quote
    return (
        f"UPDATE {quote(WebhookDelivery._meta.db_table)} SET {quote('state')} = %s, {quote('attempts')} = %s, "
        f"{quote('next_attempt_at')} = COALESCE(%s, {quote('next_attempt_at')}), {quote('delivered_at')} = %s, "
        f"{quote('last_status')} = %s, {quote('last_error')} = %s, {quote('leased_until')} = NULL, "
        f"{quote('lease_owner')} = '' "
        f"WHERE {quote('id')} = %s AND {quote('lease_owner')} = %s AND {quote('state')} = %s"
    )


def release(*, owners: list[str] | None = None, prefix: str | None = None) -> int:
    """Give back leases: of `owners`, of owners starting with `prefix`, or every lease (both None)."""
    rows = WebhookDelivery.objects.filter(state=State.PENDING, leased_until__isnull=False)
    if owners is not None:
        rows = rows.filter(lease_owner__in=owners)
    if prefix is not None:
        rows = rows.filter(lease_owner__startswith=prefix)
    return rows.update(leased_until=None, lease_owner="")


def prune(*, now: datetime | None = None) -> int:
    """Delete delivered and given-up deliveries (and their log) older than WEBHOOK_RETENTION_DAYS,
    and rows of endpoints deleted since; a batch at a time (short transactions). How many."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.WEBHOOK_RETENTION_DAYS)
    done = WebhookDelivery.objects.filter(state__in=[State.DELIVERED, State.FAILED], created_at__lt=cutoff)
    # Rows of a deleted endpoint written by a process whose endpoint list was seconds old: pending
    # ones (the admin's delete takes the others with it), found through the pending-only index.
    orphans = WebhookDelivery.objects.filter(state=State.PENDING).exclude(
        endpoint_id__in=WebhookEndpoint.objects.values("pk")
    )
    removed = 0
    for rows in (done, orphans):
        while pks := list(rows.values_list("pk", flat=True)[:PRUNE_BATCH]):
            with transaction.atomic():
                WebhookAttempt.objects.filter(delivery_id__in=pks).delete()
                removed += WebhookDelivery.objects.filter(pk__in=pks).delete()[1].get(WebhookDelivery._meta.label, 0)
            if len(pks) < PRUNE_BATCH:
                break
    return removed
