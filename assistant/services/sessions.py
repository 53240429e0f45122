"""Sessions: starting (pending, then written), resuming with the token, ending; replies left by dead processes.

A new session needs no row until the visitor sends something to keep (`session_materialize`);
its token is derived from its id, so every tab can resume it meanwhile.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from assistant import events, liveness, protocol, sql
from assistant.models import ChatMessage, ChatSession
from assistant.protocol import ClientError, HistoryMessage
from assistant.selectors import history_message, session_history
from assistant.services import records


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
    """Write a pending session (or find the row another tab wrote first); True when written here.

    Records `ConversationStarted` with the row, when written here and something subscribes.
    """
    defaults: dict[str, object] = {name: getattr(session, name) for name in _MATERIALIZED_FIELDS}
    defaults["served_by"] = liveness.PROCESS_ID
    if not events.recording(events.ConversationStarted):
        return ChatSession.objects.get_or_create(public_id=session.public_id, defaults=defaults)
    with transaction.atomic():
        row, created = ChatSession.objects.get_or_create(public_id=session.public_id, defaults=defaults)
        if created:
            events.record(records.conversation_started(row))
    return row, created


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
    """End these replies as `interrupted` (inside the caller's transaction); returns `pks`."""
    _interrupt_rows(pks, now)
    return pks


def _interrupt_rows(pks: list[int], now: datetime) -> int:
    """Mark the replies among `pks` still streaming as `interrupted`; how many.

    When something subscribes, each is also recorded as a finished (failed) reply: the locked
    rows are read first, so exactly those updated are recorded. Inside a transaction.
    """
    if not pks:
        return 0
    streaming = ChatMessage.objects.filter(pk__in=pks, status=ChatMessage.Status.STREAMING)
    if not records.replies_wanted():
        return streaming.update(status=ChatMessage.Status.INTERRUPTED, finished_at=now, updated_at=now)
    rows = list(streaming.select_related("session", "reply_to").select_for_update(of=("self",)))
    changed = ChatMessage.objects.filter(pk__in=[row.pk for row in rows]).update(
        status=ChatMessage.Status.INTERRUPTED, finished_at=now, updated_at=now
    )
    events.record(*records.replies_interrupted(rows, now))
    return changed


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
    with transaction.atomic():
        return _interrupt_rows(orphans, now)


def processes_dead(*, heard_within_s: float) -> set[str]:
    """Server processes known to be dead (`liveness`) that were still heard in the last `heard_within_s`."""
    owners = sql.processes(heard_within_s=heard_within_s)
    return {owner.process_id for owner in owners if owner.process_id and liveness.process_dead(owner)}


def session_end(*, session: ChatSession) -> None:
    """Close the session; a later message reopens it.

    Records `ConversationClosed` (when something subscribes) only if it was open: ending it
    twice closes it once.
    """
    now = timezone.now()
    closing = {"status": ChatSession.Status.CLOSED, "closed_at": now, "updated_at": now, "last_seen_at": now}
    if not events.recording(events.ConversationClosed):
        ChatSession.objects.filter(pk=session.pk).update(**closing)
    else:
        with transaction.atomic():
            rows = ChatSession.objects.filter(pk=session.pk)
            if rows.exclude(status=ChatSession.Status.CLOSED).update(**closing):
                events.record(
                    events.ConversationClosed(session_id=str(session.public_id), occurred_at=now, reason="ended")
                )
            else:
                rows.update(**closing)
    session.status = ChatSession.Status.CLOSED
    session.closed_at = now
