"""Server → client frames of `/ws/chat/`: their shapes, and the one constructor for each.

Every frame the chat sends is made here, so its shape is written once and docs/protocol.md
has one place to be checked against. Fields starting with `_` are for delivery between
processes (`_offset` of a delta, `_text` of a reply's end, `_others` for frames the sending
connection already has); consumers strip them before a frame reaches a client.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

MessageStatus = Literal["complete", "streaming", "stopped", "interrupted", "failed"]

Frame = dict[str, Any]


class ErrorFrame(TypedDict):
    type: Literal["error"]
    code: str
    detail: str
    retry_after: NotRequired[float]
    client_id: NotRequired[str]
    field: NotRequired[str]


class FeedbackState(TypedDict):
    rating: str
    reason: str
    comment: str


class Author(TypedDict):
    name: str


class HistoryMessage(TypedDict):
    seq: int
    message_id: str
    role: str
    text: str
    status: MessageStatus
    created_at: str
    client_id: NotRequired[str]
    feedback: NotRequired[FeedbackState]
    reply_to: NotRequired[int]
    retry_of: NotRequired[int]
    #: Who wrote an `agent` message (only its display name reaches the visitor).
    author: NotRequired[Author]


class WelcomeConfig(TypedDict):
    max_chars: int
    quick_replies: list[str]
    greeting: str
    #: WIDGET_ASK_CONTACT: `off`, `optional` or `required` (the widget's pre-chat contact form).
    ask_contact: str


class WelcomeFrame(TypedDict):
    type: Literal["welcome"]
    session_id: str
    token: NotRequired[str]
    status: str
    title: str
    history: list[HistoryMessage]
    history_truncated: bool
    config: WelcomeConfig


class AckFrame(TypedDict):
    type: Literal["ack"]
    client_id: str
    seq: int
    message_id: str
    created_at: str
    #: Only `True`, when the message contains an escalation phrase: offer the visitor a person.
    asks_for_person: NotRequired[bool]


class ReplyStartFrame(TypedDict):
    type: Literal["reply.start"]
    seq: int
    message_id: str
    reply_to: int
    retry_of: NotRequired[int]


class ReplyDeltaFrame(TypedDict):
    type: Literal["reply.delta"]
    seq: int
    text: str


class Usage(TypedDict):
    input_tokens: int | None
    output_tokens: int | None


class ReplyEndFrame(TypedDict):
    type: Literal["reply.end"]
    seq: int
    message_id: str
    status: MessageStatus
    provider: str
    model: str
    ttft_ms: int | None
    duration_ms: int | None
    usage: Usage
    cached: bool
    sources: list[dict[str, Any]]
    error: NotRequired[str]


class FeedbackAckFrame(TypedDict):
    type: Literal["feedback.ack"]
    message_id: str
    rating: str


# --- constructors -----------------------------------------------------------------------------
def error(
    code: str,
    detail: str,
    *,
    retry_after: float | None = None,
    client_id: str | None = None,
    field: str | None = None,
) -> ErrorFrame:
    """`error`: what was wrong with a client frame (the connection stays open)."""
    frame: ErrorFrame = {"type": "error", "code": code, "detail": detail}
    if retry_after is not None:
        frame["retry_after"] = retry_after
    if client_id is not None:
        frame["client_id"] = client_id
    if field is not None:
        frame["field"] = field
    return frame


def welcome(
    *,
    session_id: str,
    status: str,
    title: str,
    history: list[HistoryMessage],
    history_truncated: bool,
    config: WelcomeConfig,
    token: str | None = None,
) -> WelcomeFrame:
    """`welcome`: the answer to `hello` (the token only when a new session was just opened)."""
    frame: WelcomeFrame = {
        "type": "welcome",
        "session_id": session_id,
        "status": status,
        "title": title,
        "history": history,
        "history_truncated": history_truncated,
        "config": config,
    }
    if token is not None:
        frame["token"] = token
    return frame


def ack(*, client_id: str, seq: int, message_id: str, created_at: str, asks_for_person: bool = False) -> AckFrame:
    """`ack`: the visitor's message is stored (`asks_for_person`: its text asks for a person)."""
    frame: AckFrame = {
        "type": "ack",
        "client_id": client_id,
        "seq": seq,
        "message_id": message_id,
        "created_at": created_at,
    }
    if asks_for_person:
        frame["asks_for_person"] = True
    return frame


def message(item: HistoryMessage, *, others: bool = False) -> Frame:
    """`message`: a message the other tabs of the session have not seen (`others`: not to the sender)."""
    frame: Frame = {"type": "message", **item}
    if others:
        frame["_others"] = True
    return frame


def reply_start(*, seq: int, message_id: str, reply_to: int, retry_of: int | None = None) -> ReplyStartFrame:
    """`reply.start`: an assistant reply begins (`retry_of`: it replaces one cut by a failover)."""
    frame: ReplyStartFrame = {"type": "reply.start", "seq": seq, "message_id": message_id, "reply_to": reply_to}
    if retry_of is not None:
        frame["retry_of"] = retry_of
    return frame


def reply_delta(*, seq: int, text: str) -> ReplyDeltaFrame:
    """`reply.delta`: more text of a reply, as a client receives it."""
    return {"type": "reply.delta", "seq": seq, "text": text}


def stream_delta(*, seq: int, text: str, offset: int) -> Frame:
    """A delta on its way to the session's connections: `_offset` lets each fill gaps."""
    return {"type": "reply.delta", "seq": seq, "text": text, "_offset": offset}


def reply_end(
    *,
    seq: int,
    message_id: str,
    status: str,
    provider: str = "",
    model: str = "",
    ttft_ms: int | None = None,
    duration_ms: int | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    cached: bool = False,
    sources: list[dict[str, Any]] | None = None,
    error: str = "",
    text: str | None = None,
) -> Frame:
    """`reply.end`: how a reply ended. `text` (the whole reply) travels as `_text` to fill gaps."""
    frame: Frame = {
        "type": "reply.end",
        "seq": seq,
        "message_id": message_id,
        "status": status,
        "provider": provider,
        "model": model,
        "ttft_ms": ttft_ms,
        "duration_ms": duration_ms,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        "cached": cached,
        "sources": sources or [],
    }
    if error:
        frame["error"] = error
    if text is not None:
        frame["_text"] = text
    return frame


def feedback_ack(*, message_id: str, rating: str, others: bool = False) -> Frame:
    """`feedback.ack`: the stored thumbs of a reply (every tab shows it)."""
    frame: Frame = {"type": "feedback.ack", "message_id": message_id, "rating": rating}
    if others:
        frame["_others"] = True
    return frame


def rating_ack() -> Frame:
    """`rating.ack`: the end-of-chat survey is stored."""
    return {"type": "rating.ack"}


def ended() -> Frame:
    """`ended`: the conversation was closed (by any tab)."""
    return {"type": "ended"}


def pong() -> Frame:
    """`pong`: the answer to `ping`."""
    return {"type": "pong"}


def handoff_status(
    *,
    state: str,
    position: int | None = None,
    agent_name: str | None = None,
    wait_estimate_s: int | None = None,
) -> Frame:
    """`handoff.status`: where the visitor's request for a person stands (every tab shows it).

    `state` is `waiting` (with its queue `position` and, when known, `wait_estimate_s`),
    `assigned` (with the person's `agent.name`), `unavailable` (nobody can answer now) or
    `ended` (the person handed back to the assistant or resolved the conversation).
    """
    frame: Frame = {"type": "handoff.status", "state": state}
    if position is not None:
        frame["position"] = position
    if agent_name is not None:
        frame["agent"] = {"name": agent_name}
    if wait_estimate_s is not None:
        frame["wait_estimate_s"] = wait_estimate_s
    return frame


def typing(*, state: str, name: str) -> Frame:
    """`typing`: the person answering the visitor started or stopped typing."""
    return {"type": "typing", "role": "agent", "state": state, "name": name}


def visitor_typing(*, session_id: str, state: str) -> Frame:
    """`typing` on the desk: the visitor of `session_id` started or stopped typing."""
    return {"type": "typing", "session_id": session_id, "role": "user", "state": state}


def contact_ack() -> Frame:
    """`contact.ack`: the visitor's contact details are stored."""
    return {"type": "contact.ack"}


def snapshot(*, seq: int, text: str) -> Frame:
    """The text so far of a reply, for a connection that joined mid-reply (never sent as is)."""
    return {"type": "chat.snapshot", "seq": seq, "text": text}


def client_view(frame: Frame) -> Frame:
    """`frame` as a client receives it: without the delivery fields."""
    return {key: value for key, value in frame.items() if not key.startswith("_")}
