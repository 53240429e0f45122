"""Writes for the chat path, each one transaction (one unit of work for async callers).

The database is the source of truth: a visitor message is committed before its `ack`, the
assistant row exists from `reply.start`, and every later state change is a guarded update.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from assistant import liveness, protocol, sql
from assistant.models import ChatEvent, ChatMessage, ChatSession, Feedback, ProviderCall, SessionRating
from assistant.protocol import ClientError, HistoryMessage
from assistant.selectors import history_message, prompt_history, session_history

if TYPE_CHECKING:
    from assistant.providers.router import Attempt

TITLE_CHARS = 60
#: Agents' idempotency keys share the column with visitors' (`desk:<user>:<key>`): visitors may not use it.
DESK_CLIENT_PREFIX = "desk:"
PROMPT_HISTORY_TURNS = 20


@dataclass(frozen=True, slots=True)
class Identity:
    """A visitor identified by the host site (its signature already verified)."""

    user_id: str
    user_type: str
    name: str = ""
    email: str = ""


@dataclass(frozen=True, slots=True)
class PageContext:
    """Where the widget was opened."""

    url: str = ""
    title: str = ""
    referrer: str = ""
    locale: str = ""
    user_agent: str = ""


@dataclass(slots=True)
class SessionOpened:
    """Result of `session_open`: the session, its history, and a token for a new one.

    `session.pk` is None while the session is pending: it has an id and a token, but nothing
    to keep yet, so no row (see `session_open`).
    """

    session: ChatSession
    token: str | None
    history: list[HistoryMessage]
    history_truncated: bool
    streaming: list[HistoryMessage] = field(default_factory=list)
    #: Replies a dead process left (`interrupted`) that the client may show as streaming: it gets `reply.end`.
    interrupted: list[HistoryMessage] = field(default_factory=list)


@dataclass(slots=True)
class TurnStarted:
    """Result of `turn_begin`: the stored visitor message and the assistant placeholder."""

    user_message: ChatMessage
    assistant_message: ChatMessage | None
    duplicate: bool
    history: list[tuple[str, str]]


def hash_token(token: str) -> str:
    """Tokens are 256 random bits, so a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(token.encode()).hexdigest()


def stale_before() -> timedelta:
    """How long a 'streaming' row of an unknown owner may go without a checkpoint (see `liveness`)."""
    return timedelta(seconds=max(15.0, 5 * settings.CHAT_CHECKPOINT_INTERVAL_S))


def session_token(public_id: uuid.UUID) -> str:
    """The resume token of a session: an HMAC of its id under the server's secret key.

    Derived, not random, so that a session needs no row until it has something to keep: a
    `hello` that never sends anything costs nothing, yet its token already works for every tab
    (the row, once written, stores only the token's hash, as for any session). 256 bits,
    43 URL-safe characters; rotating SECRET_KEY only invalidates sessions that have no row.
    """
    digest = salted_hmac("parley.assistant.session-token", str(public_id), algorithm="sha256").digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def silent_before() -> timedelta:
    """Longer than any live reply goes without a checkpoint: its timeout, then storing it."""
    return timedelta(seconds=settings.CHAT_REPLY_TIMEOUT_S) + 2 * stale_before()


def session_open(
    *,
    session_id: str | None,
    token: str | None,
    last_seq: int,
    identity: Identity | None,
    page: PageContext,
) -> SessionOpened:
    """Start a pending session (no id given), or resume one after checking its token.

    A new session is not written: `session_materialize` writes it when the visitor first sends
    something to keep (a message, a rating, an event). Resuming one that was never written (a
    second tab, a reconnect) checks the derived token and gives the pending session back.
    Starting a session therefore touches no database at all.
    """
    if session_id is None:
        session = _pending_session(uuid.uuid4(), identity, page)
        return SessionOpened(
            session=session, token=session_token(session.public_id), history=[], history_truncated=False
        )

    session = _session_by_credentials(session_id, token)
    if session.pk is None:
        return SessionOpened(
            session=_pending_session(session.public_id, identity, page), token=None, history=[], history_truncated=False
        )
    now = timezone.now()
    with transaction.atomic():
        interrupted = _interrupt_stale_replies(session, now)
        updates: dict[str, object] = {"last_seen_at": now, "updated_at": now, "served_by": liveness.PROCESS_ID}
        if page.url:
            updates.update(page_url=page.url, page_title=page.title, referrer=page.referrer)
        if identity is not None and session.user_type == ChatSession.UserType.ANONYMOUS:
            updates.update(_identity_fields(identity))
        ChatSession.objects.filter(pk=session.pk).update(**updates)
        for name, value in updates.items():
            setattr(session, name, value)
    history, truncated = session_history(session=session, after_seq=last_seq, limit=settings.CHAT_HISTORY_LIMIT)
    streaming = [item for item in history if item["status"] == ChatMessage.Status.STREAMING]
    return SessionOpened(
        session=session,
        token=None,
        history=history,
        history_truncated=truncated,
        streaming=streaming,
        interrupted=_left_by_dead_process(session, history, _history_of(interrupted), now),
    )


def _pending_session(public_id: uuid.UUID, identity: Identity | None, page: PageContext) -> ChatSession:
    """An unsaved session: what `session_materialize` will write."""
    return ChatSession(
        public_id=public_id,
        token_hash=hash_token(session_token(public_id)),
        page_url=page.url,
        page_title=page.title,
        referrer=page.referrer,
        locale=page.locale,
        user_agent=page.user_agent[:500],
        **_identity_fields(identity),
    )


_MATERIALIZED_FIELDS = (
    "token_hash",
    "source",
    "page_url",
    "page_title",
    "referrer",
    "locale",
    "user_agent",
    "user_type",
    "external_user_id",
    "external_user_name",
    "external_user_email",
)


def session_materialize(*, session: ChatSession) -> tuple[ChatSession, bool]:
    """Write a pending session (or find the row another tab wrote first); True when written here."""
    defaults: dict[str, object] = {name: getattr(session, name) for name in _MATERIALIZED_FIELDS}
    defaults["served_by"] = liveness.PROCESS_ID
    return ChatSession.objects.get_or_create(public_id=session.public_id, defaults=defaults)


def _session_by_credentials(session_id: str, token: str | None) -> ChatSession:
    not_found = ClientError(protocol.SESSION_NOT_FOUND, "No session matches that id and token.")
    try:
        public_id = uuid.UUID(session_id)
    except ValueError:
        raise not_found from None
    session = ChatSession.objects.filter(public_id=public_id).first()
    # With no row, the session may be pending: its token is derived from its id. Compare in
    # every case so that timing says nothing about which part was wrong.
    expected = session.token_hash if session is not None else hash_token(session_token(public_id))
    if not hmac.compare_digest(expected, hash_token(token or "")):
        raise not_found
    return session if session is not None else ChatSession(public_id=public_id)


def _identity_fields(identity: Identity | None) -> dict[str, str]:
    if identity is None:
        return {}
    return {
        "user_type": identity.user_type,
        "external_user_id": identity.user_id,
        "external_user_name": identity.name,
        "external_user_email": identity.email,
    }


def _interrupt_stale_replies(session: ChatSession, now: datetime) -> list[int]:
    """End the session's replies that nobody will finish (their process died); their pks."""
    rows = sql.streaming_replies(
        session_pk=session.pk, stale_before=now - stale_before(), silent_before=now - silent_before()
    )
    return _interrupt(
        [row.pk for row in rows if liveness.reply_orphaned(row.owner, stale=row.stale, silent=row.silent)], now
    )


def _interrupt(pks: list[int], now: datetime) -> list[int]:
    if pks:
        ChatMessage.objects.filter(pk__in=pks, status=ChatMessage.Status.STREAMING).update(
            status=ChatMessage.Status.INTERRUPTED, finished_at=now, updated_at=now
        )
    return pks


def _history_of(pks: list[int]) -> list[HistoryMessage]:
    if not pks:
        return []
    rows = (
        ChatMessage.objects.filter(pk__in=pks, status=ChatMessage.Status.INTERRUPTED)  # not if finished meanwhile
        .select_related("feedback", "reply_to", "retry_of")
        .order_by("seq")
    )
    return [history_message(row) for row in rows]


def _left_by_dead_process(
    session: ChatSession, history: list[HistoryMessage], ended_now: list[HistoryMessage], now: datetime
) -> list[HistoryMessage]:
    """Replies a dead process left that this client may still show as streaming.

    Those just ended, and those in `history` (the client lacks their final state) ended lately
    for their process (interrupted with no duration: their process never finished them), for
    instance by the startup pass of the server that replaced it. Older ones are history only:
    no client can still be waiting for them.
    """
    seqs = [item["seq"] for item in history if item["status"] == ChatMessage.Status.INTERRUPTED]
    found = {item["seq"]: item for item in ended_now}
    if seqs:
        left = set(
            ChatMessage.objects.filter(
                session=session,
                seq__in=seqs,
                role=ChatMessage.Role.ASSISTANT,
                duration_ms__isnull=True,
                finished_at__gte=now - silent_before(),
            ).values_list("seq", flat=True)
        )
        found.update({item["seq"]: item for item in history if item["seq"] in left})
    return [found[seq] for seq in sorted(found)]


def replies_interrupt_orphaned(*, now: datetime, everything: bool = False) -> int:
    """Mark every reply whose process is gone as interrupted (`liveness`); how many.

    `everything`: this process is the only one and is starting, so whatever streams was left by
    its dead predecessor. The per-session checks in `session_open` and `turn_begin` cover
    sessions that come back; this sweep (analytics recovery, and `manage.py serve` at startup)
    covers the ones that never do, so they stop showing as live.
    """
    rows = sql.streaming_replies(
        session_pk=None, stale_before=now - stale_before(), silent_before=now - silent_before()
    )
    orphans = [
        row.pk for row in rows if everything or liveness.reply_orphaned(row.owner, stale=row.stale, silent=row.silent)
    ]
    if not orphans:
        return 0
    return ChatMessage.objects.filter(pk__in=orphans, status=ChatMessage.Status.STREAMING).update(
        status=ChatMessage.Status.INTERRUPTED, finished_at=now, updated_at=now
    )


def processes_dead(*, heard_within_s: float) -> set[str]:
    """Server processes known to be dead (`liveness`) that were still heard in the last `heard_within_s`."""
    owners = sql.processes(heard_within_s=heard_within_s)
    return {owner.process_id for owner in owners if owner.process_id and liveness.process_dead(owner)}


def turn_begin(*, session: ChatSession, text: str, client_id: str) -> TurnStarted:
    """Store the visitor message and the assistant placeholder, or return the earlier ack.

    One transaction, in hand-written SQL (`assistant.sql`: this runs on every turn). Allocating
    the seqs comes first because it takes the session row's write lock: concurrent turns of the
    same session (other tabs, a resend of the same `client_id`) and a desk's claim queue there,
    so what follows sees whatever those committed. A repeated `client_id` returns the original
    message, no second reply; refusals roll back. While a person answers: no AI reply.
    """
    if client_id.startswith(DESK_CLIENT_PREFIX):
        raise ClientError(
            protocol.INVALID_FIELD, f"'client_id' may not begin with {DESK_CLIENT_PREFIX!r}.", field="client_id"
        )
    now = timezone.now()
    assistant_message: ChatMessage | None = None
    history: list[tuple[str, str]] = []
    with transaction.atomic():
        allocated = sql.allocate_turn(session_pk=session.pk, title=make_title(text), now=now)
        if allocated is None:
            raise ClientError(protocol.SESSION_NOT_FOUND, "This session no longer exists.")
        last_seq, title, handoff_state = allocated
        human = handoff_state == ChatSession.Handoff.ASSIGNED
        user_seq = last_seq if human else last_seq - 1
        conflicts = sql.turn_conflicts(
            session_pk=session.pk,
            client_id=client_id,
            stale_before=now - stale_before(),
            silent_before=now - silent_before(),
        )
        duplicate = next((row.pk for row in conflicts if row.client_id == client_id), None)
        if duplicate is not None:
            original = ChatMessage.objects.get(pk=duplicate)
            transaction.set_rollback(True)
            return TurnStarted(user_message=original, assistant_message=None, duplicate=True, history=[])
        if not human:  # a reply being stopped by a takeover does not hold up the visitor
            orphans = [
                row.pk for row in conflicts if liveness.reply_orphaned(row.owner, stale=row.stale, silent=row.silent)
            ]
            if len(orphans) < len(conflicts):
                raise ClientError(
                    protocol.REPLY_IN_PROGRESS,
                    "Wait for the current reply to finish, or send 'stop' first.",
                    client_id=client_id,
                )
            _interrupt(orphans, now)  # every streaming row belongs to a dead process
        user_message = sql.insert_message(
            ChatMessage(session=session, seq=user_seq, role=ChatMessage.Role.USER, text=text, client_id=client_id)
        )
        if not human:
            assistant_message = sql.insert_message(
                ChatMessage(
                    session=session,
                    seq=last_seq,
                    role=ChatMessage.Role.ASSISTANT,
                    status=ChatMessage.Status.STREAMING,
                    reply_to=user_message,
                    owner=liveness.PROCESS_ID,
                )
            )
            if user_seq > 1:
                history = prompt_history(session_id=session.pk, before_seq=user_seq, limit=PROMPT_HISTORY_TURNS)
    session.title, session.status, session.closed_at = title, ChatSession.Status.ACTIVE, None
    session.last_seq, session.handoff_state = last_seq, handoff_state
    return TurnStarted(user_message=user_message, assistant_message=assistant_message, duplicate=False, history=history)


def make_title(text: str) -> str:
    """A session title from the first visitor message: one line, cut at a word boundary."""
    line = " ".join(text.split())
    if len(line) <= TITLE_CHARS:
        return line
    cut = line.rfind(" ", 0, TITLE_CHARS)
    return (line[: cut if cut > TITLE_CHARS // 2 else TITLE_CHARS]).rstrip(" ,.;:-") + "…"


def reply_checkpoint(*, message_id: int, text: str, session_pk: int | None = None) -> bool:
    """Save a streaming reply's partial text (its writer is alive); False once a person took over
    (the backstop for a reply the takeover's stop request missed: it had not registered yet)."""
    ChatMessage.objects.filter(pk=message_id, status="streaming").update(text=text, updated_at=timezone.now())
    return not ChatSession.objects.filter(pk=session_pk, handoff_state=ChatSession.Handoff.ASSIGNED).exists()


@dataclass(frozen=True, slots=True)
class ReplyOutcome:
    """How a reply ended, as stored on its message."""

    text: str
    status: str
    provider: str
    model: str
    ttft_ms: int | None
    duration_ms: int
    input_tokens: int | None
    output_tokens: int | None
    cached: bool
    error_code: str
    knowledge_sections: list[dict[str, object]]


@dataclass(frozen=True, slots=True)
class ProviderCallRecord:
    """One provider attempt of a reply, to be stored as a `ProviderCall`."""

    message_id: int | None
    provider: str
    model: str
    attempt: int
    started_at: datetime
    latency_ms: int | None
    ttft_ms: int | None
    input_tokens: int | None
    output_tokens: int | None
    cached_tokens: int | None
    tokens_estimated: bool
    outcome: str
    error_kind: str = ""
    error_detail: str = ""
    status_code: int | None = None
    fallback_from: str = ""
    feature: str = ProviderCall.Feature.CHAT_REPLY


def call_record(
    attempt: Attempt, *, message_id: int | None, feature: str = ProviderCall.Feature.CHAT_REPLY
) -> ProviderCallRecord:
    """What the router kept of one attempt, as the row analytics will read."""
    usage, error = attempt.usage, attempt.error
    return ProviderCallRecord(
        message_id=message_id,
        provider=attempt.provider,
        model=attempt.model,
        attempt=attempt.attempt,
        started_at=attempt.started_at,
        latency_ms=attempt.latency_ms,
        ttft_ms=attempt.ttft_ms,
        input_tokens=usage.input_tokens if usage else None,
        output_tokens=usage.output_tokens if usage else None,
        cached_tokens=usage.cached_tokens if usage else None,
        tokens_estimated=bool(usage and usage.estimated),
        outcome=attempt.outcome,
        error_kind=error.kind if error else "",
        error_detail=error.detail if error else "",
        status_code=error.status_code if error else None,
        fallback_from=attempt.fallback_from,
        feature=feature,
    )


def reply_finish(
    *, message_id: int, outcome: ReplyOutcome, calls: Sequence[ProviderCallRecord] = (), session_pk: int | None = None
) -> None:
    """Store the final state of a reply and its provider attempts, in one transaction.

    A reply already finalised is left alone (its attempts are still recorded: they happened).
    """
    with transaction.atomic():
        _store_outcome(message_id, outcome)
        provider_calls_record(session_pk=session_pk, calls=calls)


def reply_failover(
    *,
    message_id: int,
    outcome: ReplyOutcome,
    session_pk: int,
    reply_to_id: int,
    calls: Sequence[ProviderCallRecord] = (),
) -> ChatMessage:
    """Keep a reply cut mid-stream as `interrupted` and open the one that replaces it.

    One transaction: the broken reply is finalised, its attempts stored, and a new assistant
    message (next seq, `retry_of` the broken one) starts streaming.
    """
    with transaction.atomic():
        _store_outcome(message_id, outcome)
        provider_calls_record(session_pk=session_pk, calls=calls)
        seq = sql.allocate_seq(session_pk=session_pk)
        return sql.insert_message(
            ChatMessage(
                session_id=session_pk,
                seq=seq,
                role=ChatMessage.Role.ASSISTANT,
                status=ChatMessage.Status.STREAMING,
                reply_to_id=reply_to_id,
                retry_of_id=message_id,
                owner=liveness.PROCESS_ID,
            )
        )


def provider_calls_record(*, session_pk: int | None, calls: Sequence[ProviderCallRecord]) -> None:
    """Store provider attempts (replies, titles) for analytics."""
    if calls:
        sql.insert_rows(
            [
                ProviderCall(
                    session_id=session_pk,
                    message_id=call.message_id,
                    feature=call.feature,
                    provider=call.provider,
                    model=call.model,
                    attempt=call.attempt,
                    started_at=call.started_at,
                    latency_ms=call.latency_ms,
                    ttft_ms=call.ttft_ms,
                    input_tokens=call.input_tokens,
                    output_tokens=call.output_tokens,
                    cached_tokens=call.cached_tokens,
                    tokens_estimated=call.tokens_estimated,
                    outcome=call.outcome,
                    error_kind=call.error_kind,
                    error_detail=call.error_detail[:500],
                    status_code=call.status_code,
                    fallback_from=call.fallback_from,
                )
                for call in calls
            ]
        )


def _store_outcome(message_id: int, outcome: ReplyOutcome) -> None:
    now = timezone.now()
    sql.update_streaming_message(
        message_id,
        text=outcome.text,
        status=outcome.status,
        provider=outcome.provider,
        model=outcome.model,
        ttft_ms=outcome.ttft_ms,
        duration_ms=outcome.duration_ms,
        input_tokens=outcome.input_tokens,
        output_tokens=outcome.output_tokens,
        cached=outcome.cached,
        error_code=outcome.error_code,
        knowledge_sections=outcome.knowledge_sections,
        finished_at=now,
        updated_at=now,
    )


def session_retitle(*, session_pk: int, expected: str, title: str) -> bool:
    """Replace a session's automatic title, unless it changed meanwhile; True when replaced."""
    return ChatSession.objects.filter(pk=session_pk, title=expected).update(title=title) == 1


def feedback_upsert(*, session: ChatSession, message_id: str, rating: str, reason: str, comment: str) -> Feedback:
    """Record (or replace) the visitor's thumbs up/down on one assistant reply of this session."""
    not_found = ClientError(protocol.NOT_FOUND, "No assistant reply with that message_id in this session.")
    try:
        public_id = uuid.UUID(message_id)
    except ValueError:
        raise not_found from None
    with transaction.atomic():
        message = ChatMessage.objects.filter(
            session=session, public_id=public_id, role=ChatMessage.Role.ASSISTANT
        ).first()
        if message is None:
            raise not_found
        feedback, _ = Feedback.objects.update_or_create(
            message=message,
            defaults={"session": session, "rating": rating, "reason": reason, "comment": comment},
        )
    return feedback


def session_rate(*, session: ChatSession, score: int, resolved: bool | None, comment: str) -> SessionRating:
    """Record (or replace) the end-of-chat survey."""
    with transaction.atomic():
        rating, _ = SessionRating.objects.update_or_create(
            session=session, defaults={"score": score, "resolved": resolved, "comment": comment}
        )
    return rating


def session_end(*, session: ChatSession) -> None:
    """Close the session; a later message reopens it."""
    now = timezone.now()
    ChatSession.objects.filter(pk=session.pk).update(
        status=ChatSession.Status.CLOSED, closed_at=now, updated_at=now, last_seen_at=now
    )
    session.status = ChatSession.Status.CLOSED
    session.closed_at = now


def event_record(*, session: ChatSession, name: str, data: dict[str, object]) -> ChatEvent:
    """Store one visitor action reported by the widget, up to CHAT_EVENTS_PER_SESSION of them.

    The cap bounds what one session can write (events carry up to 4 KB of data each); the
    count is read in the same transaction as the insert, so two tabs overshoot it by one at most.
    """
    limit = settings.CHAT_EVENTS_PER_SESSION
    with transaction.atomic():
        if ChatEvent.objects.filter(session=session).count() >= limit:
            raise ClientError(
                protocol.LIMIT_REACHED, f"This conversation already has {limit} events; no more are recorded."
            )
        return ChatEvent.objects.create(session=session, name=name, data=data)
