"""Reads of the sessions listing and of one session, for the staff API.

The listing is keyset-paginated newest first (`api.staff.pagination`): one query for the page of
sessions with their analytics row (a LEFT JOIN on its unique key), one for the provider calls of
those sessions (their tokens and cost). A session is listed once it has a message (`last_seq > 0`,
as the exports count them); its analytics are None for the second or so before analytics has seen
it. Dates pick sessions by the local day they started, like every analytics number.

Each session's cost is priced call by call with the price table in effect on the call's local day
(`analytics.pricing`) and the registry's formula (`metrics.call_cost`): the arithmetic of the
provider rollups, so the costs of a period's sessions add up to the dashboard's cost (calls of
unpriced models are counted apart, never as $0).
"""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import connection
from django.db.models import BooleanField, Exists, F, Func, OuterRef, Q, QuerySet, Value
from django.db.models.expressions import RawSQL
from django.utils import timezone

from analytics import metrics, pricing, rollup, selectors
from api.staff.pagination import Cursor
from api.staff.params import SessionQuery
from assistant.models import ChatMessage, ChatSession, ProviderCall

SESSION_FIELDS = (
    "pk", "public_id", "title", "status", "source", "user_type", "external_user_id", "created_at", "last_seen_at",
    "last_seq",
)  # fmt: skip
#: Whose messages `q` searches (the Postgres trigram index covers exactly these: api migration 0002).
SEARCHED_ROLES = ("user", "agent")
#: Above this many matching messages (the database's estimate) `q` is checked session by session:
#: at 100,000 sessions, a page then needs a walk of about 1,300 sessions at most (bench/api_sessions.py).
Q_SET_MAX_ROWS = 2000
#: The analytics of a listed session (ChatAnalytics fields).
ANALYTICS_FIELDS = (
    "total_messages", "user_messages", "assistant_messages", "agent_messages", "resolved", "resolution",
    "escalated_to_human", "human_involved", "handoff_requests", "satisfaction_rating", "feedback_up", "feedback_down",
    "topics_discussed", "avg_sentiment", "engagement_score", "provider", "avg_response_time_ms", "last_activity_at",
    "closed",
)  # fmt: skip


class JsonListHas(Func):
    """Whether a JSON list column holds a string (`topics_discussed` has a topic), on either database."""

    output_field = BooleanField()

    def __init__(self, column: str, value: str) -> None:
        super().__init__(F(column), Value(value))

    def _parts(self, compiler: Any, connection: Any) -> tuple[str, str, list[Any]]:
        column, value = self.get_source_expressions()
        column_sql, column_params = compiler.compile(column)
        value_sql, value_params = compiler.compile(value)
        return column_sql, value_sql, [*column_params, *value_params]

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        """SQLite: one of the list's elements equals it."""
        column, value, params = self._parts(compiler, connection)
        return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value = {value})", params

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        """Postgres: jsonb containment, which a GIN index on the column can answer."""
        column, value, params = self._parts(compiler, connection)
        return f"({column} @> jsonb_build_array(({value})::text))", params


def text_match(q: str) -> Q:
    """Sessions whose title, or a message a visitor or an agent wrote, contains `q` (any case).

    Assistant replies are not searched: they are the knowledge base's words, which would make
    every common word match, and indexing them would cost the chat a trigram rewrite at every
    streaming checkpoint. On Postgres the plan depends on how many messages the database expects
    to match (its estimate, from the trigram index's statistics): a few, and the matching sessions
    are found through the trigram indexes first; many, and each session is checked as the walk
    goes, newest first, which fills a page within a few hundred sessions.
    """
    messages = ChatMessage.objects.filter(role__in=SEARCHED_ROLES, text__icontains=q)
    if connection.vendor != "postgresql":
        return Q(title__icontains=q) | Q(Exists(messages.filter(session_id=OuterRef("pk"))))
    if _estimated_rows(messages) <= Q_SET_MAX_ROWS:
        titled = ChatSession.objects.filter(title__icontains=q).values("pk")
        return Q(pk__in=titled.union(messages.values("session_id"), all=True))
    # OFFSET 0 keeps Postgres from turning the EXISTS into one hashed set of every matching
    # session (a common word: a hundred thousand rows read for a page of 25).
    pattern = f"%{connection.ops.prep_for_like_query(q)}%"
    per_session = RawSQL(
        f"EXISTS (SELECT 1 FROM {ChatMessage._meta.db_table} m WHERE m.session_id = {ChatSession._meta.db_table}.id "
        "AND m.role IN ('user', 'agent') AND UPPER(m.text::text) LIKE UPPER(%s) OFFSET 0)",
        [pattern],
        output_field=BooleanField(),
    )
    return Q(title__icontains=q) | Q(per_session)


def _estimated_rows(rows: QuerySet[Any]) -> int:
    """The planner's estimate of a query's rows (Postgres), without running it."""
    sql, params = rows.values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def listed(query: SessionQuery) -> QuerySet[ChatSession]:
    """The sessions the query selects, newest first, from its cursor on."""
    rows = ChatSession.objects.filter(last_seq__gt=0)
    if query.start is not None:
        rows = rows.filter(created_at__gte=rollup.day_bounds(query.start)[0])
    if query.end is not None:
        rows = rows.filter(created_at__lt=rollup.day_bounds(query.end)[1])
    simple = {"user_type": query.user_type, "status": query.status, "source": query.source}
    rows = rows.filter(**{name: value for name, value in simple.items() if value is not None})
    if query.resolved is not None:
        rows = rows.filter(analytics__resolved=query.resolved)
    if query.escalated is not None:
        rows = rows.filter(analytics__escalated_to_human=query.escalated)
    if query.satisfied_only:
        rows = rows.filter(analytics__satisfaction_rating__gte=metrics.CSAT_MIN_SCORE)
    if query.provider is not None:
        rows = rows.filter(analytics__provider=query.provider)
    if query.topic is not None:
        rows = rows.filter(JsonListHas("analytics__topics_discussed", query.topic))
    if query.q is not None:
        rows = rows.filter(text_match(query.q))
    if query.cursor is not None:
        at, pk = query.cursor.created_at, query.cursor.pk
        # `created_at <= at` alone lets the database seek in the created_at index; the OR settles ties.
        rows = rows.filter(Q(created_at__lt=at) | Q(created_at=at, pk__lt=pk), created_at__lte=at)
    return rows.order_by("-created_at", "-pk")


def sessions_page(query: SessionQuery) -> tuple[list[dict[str, Any]], Cursor | None]:
    """One page of sessions with their analytics and costs, and the cursor of the next page (None: the last)."""
    fields = [*SESSION_FIELDS, *(f"analytics__{name}" for name in ANALYTICS_FIELDS), "analytics__session_id"]
    rows = list(listed(query).values(*fields)[: query.limit + 1])
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    costs = session_costs([row["pk"] for row in rows])
    items = [_item(row, costs.get(row["pk"])) for row in rows]
    following = Cursor(created_at=rows[-1]["created_at"], pk=rows[-1]["pk"]) if more else None
    return items, following


def _item(row: dict[str, Any], cost: dict[str, Any] | None) -> dict[str, Any]:
    has_analytics = row["analytics__session_id"] is not None
    analytics = None
    if has_analytics:
        values = {name: row[f"analytics__{name}"] for name in ANALYTICS_FIELDS}
        analytics = {
            "resolved": values["resolved"],
            "resolution": values["resolution"],
            "escalated": values["escalated_to_human"],
            "human_involved": values["human_involved"],
            "handoff_requests": values["handoff_requests"],
            "rating": values["satisfaction_rating"],
            "satisfied": None
            if values["satisfaction_rating"] is None
            else values["satisfaction_rating"] >= metrics.CSAT_MIN_SCORE,
            "feedback_up": values["feedback_up"],
            "feedback_down": values["feedback_down"],
            "topics": values["topics_discussed"],
            "sentiment": values["avg_sentiment"],
            "engagement_score": values["engagement_score"],
            "provider": values["provider"],
            "avg_response_time_ms": values["avg_response_time_ms"],
            "user_messages": values["user_messages"],
            "assistant_messages": values["assistant_messages"],
            "agent_messages": values["agent_messages"],
            "closed": values["closed"],
            **(cost or empty_cost()),
        }
    last_activity = row["analytics__last_activity_at"] if has_analytics else row["last_seen_at"]
    return {
        "id": row["public_id"],
        "title": row["title"],
        "status": row["status"],
        "source": row["source"],
        "user_type": row["user_type"],
        "external_user_id": row["external_user_id"] or None,
        "created_at": row["created_at"],
        "last_activity_at": last_activity,
        "message_count": row["analytics__total_messages"] if has_analytics else row["last_seq"],
        "analytics": analytics,
    }


def empty_cost() -> dict[str, Any]:
    """The cost fields of a session with no provider call."""
    return {"provider_calls": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "price_unknown_calls": 0}


def session_costs(session_pks: list[int]) -> dict[int, dict[str, Any]]:
    """Per session: its provider calls, tokens and cost (priced calls only), and its unpriced calls."""
    if not session_pks:
        return {}
    table = pricing.table()
    sums: dict[int, dict[str, Any]] = defaultdict(lambda: {**empty_cost(), "cost": Decimal(0)})
    for call in ProviderCall.objects.filter(session_id__in=session_pks).values_list(
        "session_id", "provider", "model", "started_at", "input_tokens", "output_tokens", "cached_tokens"
    ):
        pk, provider, model, started_at, input_tokens, output_tokens, cached_tokens = call
        input_tokens, output_tokens = input_tokens or 0, output_tokens or 0
        item = sums[pk]
        item["provider_calls"] += 1
        item["input_tokens"] += input_tokens
        item["output_tokens"] += output_tokens
        price = table.price(provider, model, timezone.localdate(started_at))
        if price is None:
            item["price_unknown_calls"] += bool(input_tokens or output_tokens)
            continue
        item["cost"] += metrics.call_cost(
            input_tokens=input_tokens, output_tokens=output_tokens, cached_tokens=cached_tokens or 0, price=price
        )
    out = {}
    for pk, item in sums.items():
        cost = item.pop("cost")
        out[pk] = {**item, "cost_usd": float(round(cost, 8))}
    return out


def session_detail(public_id: UUID) -> dict[str, Any] | None:
    """One session: its messages (with feedback and calls), feedback, rating, analytics and provider calls."""
    data = selectors.transcript(public_id)
    if data is None:
        return None
    session = ChatSession.objects.filter(public_id=public_id).values(*SESSION_FIELDS, "locale", "closed_at").first()
    if session is None:  # deleted between the two reads
        return None
    analytics = data["analytics"]
    calls = provider_calls(session["pk"])
    feedback = [
        {"message_id": message["message_id"], "seq": message["seq"], **message["feedback"]}
        for message in data["messages"]
        if message["feedback"] is not None
    ]
    return {
        "id": session["public_id"],
        "title": session["title"],
        "status": session["status"],
        "source": session["source"],
        "user_type": session["user_type"],
        "external_user_id": session["external_user_id"] or None,
        "page_url": data["page_url"],
        "locale": session["locale"],
        "created_at": session["created_at"],
        "last_activity_at": analytics["last_activity_at"] if analytics else session["last_seen_at"],
        "closed_at": session["closed_at"],
        "live": data["live"],
        "message_count": analytics["total_messages"] if analytics else session["last_seq"],
        "messages": data["messages"],
        "feedback": feedback,
        "rating": data["rating"],
        "analytics": analytics,
        "cost": session_costs([session["pk"]]).get(session["pk"], empty_cost()),
        "provider_calls": calls,
    }


def provider_calls(session_pk: int) -> list[dict[str, Any]]:
    """The session's provider calls in the order they were made, each with its cost (None: unpriced)."""
    table = pricing.table()
    out = []
    for call in (
        ProviderCall.objects.filter(session_id=session_pk)
        .order_by("started_at", "pk")
        .values(
            "message__public_id", "feature", "provider", "model", "attempt", "outcome", "started_at", "latency_ms",
            "ttft_ms", "input_tokens", "output_tokens", "cached_tokens", "tokens_estimated", "error_kind",
            "fallback_from",
        )
    ):  # fmt: skip
        price = table.price(call["provider"], call["model"], timezone.localdate(call["started_at"]))
        cost = None
        if price is not None:
            cost = float(
                metrics.call_cost(
                    input_tokens=call["input_tokens"] or 0,
                    output_tokens=call["output_tokens"] or 0,
                    cached_tokens=call["cached_tokens"] or 0,
                    price=price,
                )
            )
        out.append({"message_id": call.pop("message__public_id"), **call, "cost_usd": cost})
    return out
