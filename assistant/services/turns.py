"""Turns and replies: the visitor's message with its reply placeholder, then the reply's final state.

The hot path of the chat: `turn_begin` and `reply_finish` run on every turn, in hand-written SQL
(`assistant.sql`) where it counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from assistant import events, liveness, protocol, sql
from assistant.models import ChatMessage, ChatSession, ProviderCall
from assistant.protocol import ClientError
from assistant.selectors import prompt_history
from assistant.services import records
from assistant.services.sessions import _interrupt, silent_before, stale_before

if TYPE_CHECKING:
    from assistant.providers.router import Attempt

TITLE_CHARS = 60
#: Agents' idempotency keys share the column with visitors' (`desk:<user>:<key>`): visitors may not use it.
DESK_CLIENT_PREFIX = "desk:"
PROMPT_HISTORY_TURNS = 20


@dataclass(slots=True)
class TurnStarted:
    """Result of `turn_begin`: the stored visitor message and the assistant placeholder."""

    user_message: ChatMessage
    assistant_message: ChatMessage | None
    duplicate: bool
    history: list[tuple[str, str]]


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
        if events.recording(events.MessageCreated):
            events.record(records.message_created(user_message, session_id=str(session.public_id)))
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
            if records.replies_wanted():
                records.reply_started(assistant_message, session_id=str(session.public_id), reply_to=user_seq)
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

    def info(self) -> events.ProviderCallInfo:
        """This attempt as the event seam carries it (`ReplyEnded.calls`, the `ReplyFinished` record)."""
        return events.ProviderCallInfo(
            provider=self.provider,
            model=self.model,
            outcome=self.outcome,
            latency_ms=self.latency_ms,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            error_kind=self.error_kind,
            fallback_from=self.fallback_from,
        )


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

    A reply already finalised is left alone (its attempts are still recorded: they happened);
    one finalised here is recorded (`MessageCreated`, `ReplyFinished`) when something subscribes.
    """
    with transaction.atomic():
        stored = _store_outcome(message_id, outcome)
        provider_calls_record(session_pk=session_pk, calls=calls)
        if stored and records.replies_wanted():
            events.record(*records.reply_ended(message_pk=message_id, outcome=outcome, calls=calls, now=stored))


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
        stored = _store_outcome(message_id, outcome)
        provider_calls_record(session_pk=session_pk, calls=calls)
        made: list[events.Record] = []
        if stored and records.replies_wanted():  # the cut message; the reply goes on in its replacement
            made = records.reply_ended(message_pk=message_id, outcome=outcome, calls=calls, now=stored, announce=False)
            events.record(*made)
        seq = sql.allocate_seq(session_pk=session_pk)
        replacement = sql.insert_message(
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
        for cut in made:  # the cut message's record told its conversation and seqs
            if isinstance(cut, events.MessageCreated):
                records.reply_started(replacement, session_id=cut.session_id, reply_to=cut.reply_to, retry_of=cut.seq)
        return replacement


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


def _store_outcome(message_id: int, outcome: ReplyOutcome) -> datetime | None:
    """Finalise a streaming reply; when it was stored (None if it had already ended)."""
    now = timezone.now()
    changed = sql.update_streaming_message(
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
    return now if changed else None


def session_retitle(*, session_pk: int, expected: str, title: str) -> bool:
    """Replace a session's automatic title, unless it changed meanwhile; True when replaced."""
    return ChatSession.objects.filter(pk=session_pk, title=expected).update(title=title) == 1
