"""Writes for the chat path, each one transaction (one unit of work for async callers).

The database is the source of truth: a visitor message is committed before its `ack`, the
assistant row exists from `reply.start`, and every later state change is a guarded update.
Each write that other systems must hear of (webhooks) also records what it wrote
(`assistant.events.record`) inside its own transaction, and only when something subscribes.

By subject: `sessions` (start, resume, end; replies left by dead processes), `turns` (the
visitor's message, the reply's final state), `feedback` (thumbs, survey, widget events), and
`records` (what each write records). Callers use this package: `services.turn_begin(...)`.
"""

from assistant.services.feedback import event_record, feedback_upsert, session_rate
from assistant.services.imports import (
    ImportedMessage,
    ImportedSession,
    copying,
    ids_allocate,
    imported_sessions_write,
    rows_copy,
    tables_analyze,
)
from assistant.services.sessions import (
    Identity,
    PageContext,
    SessionOpened,
    hash_token,
    processes_dead,
    replies_interrupt_orphaned,
    session_end,
    session_materialize,
    session_open,
    session_token,
    silent_before,
    stale_before,
)
from assistant.services.turns import (
    DESK_CLIENT_PREFIX,
    PROMPT_HISTORY_TURNS,
    TITLE_CHARS,
    ProviderCallRecord,
    ReplyOutcome,
    TurnStarted,
    call_record,
    make_title,
    provider_calls_record,
    reply_checkpoint,
    reply_failover,
    reply_finish,
    session_retitle,
    turn_begin,
)

__all__ = [
    "DESK_CLIENT_PREFIX",
    "PROMPT_HISTORY_TURNS",
    "TITLE_CHARS",
    "Identity",
    "ImportedMessage",
    "ImportedSession",
    "PageContext",
    "ProviderCallRecord",
    "ReplyOutcome",
    "SessionOpened",
    "TurnStarted",
    "call_record",
    "copying",
    "event_record",
    "feedback_upsert",
    "hash_token",
    "ids_allocate",
    "imported_sessions_write",
    "make_title",
    "processes_dead",
    "provider_calls_record",
    "replies_interrupt_orphaned",
    "reply_checkpoint",
    "reply_failover",
    "reply_finish",
    "rows_copy",
    "session_end",
    "session_materialize",
    "session_open",
    "session_rate",
    "session_retitle",
    "session_token",
    "silent_before",
    "stale_before",
    "tables_analyze",
    "turn_begin",
]
