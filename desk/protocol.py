"""The `/ws/desk/` protocol: agent → server frames (validated) and server → agent frames (built here).

Names are the contract of docs/desk.md: extend, never rename. Validation reuses the chat's
strict decoder (unknown fields refused, each error naming its field).
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings

from assistant.handoff.services import MAX_AGENT_TEXT, MAX_DESK_CLIENT_ID, MAX_NOTE_TEXT
from assistant.protocol import Field

Frame = dict[str, Any]

_SESSION = {"session_id": Field(str, required=True, max_length=36)}

FRAME_FIELDS: dict[str, dict[str, Field]] = {
    "hello": {},
    "ping": {},
    "availability": {"available": Field(bool, required=True)},
    "open": _SESSION,
    "history": {**_SESSION, "before_seq": Field(int, required=True, minimum=1, maximum=2**31 - 1)},
    "claim": _SESSION,
    "release": _SESSION,
    "handback": _SESSION,
    "resolve": _SESSION,
    "transfer": {**_SESSION, "agent_id": Field(int, required=True, minimum=1, maximum=2**63 - 1)},
    "message": {
        **_SESSION,
        "text": Field(str, required=True, max_length=MAX_AGENT_TEXT),
        "client_id": Field(str, required=True, max_length=MAX_DESK_CLIENT_ID),
    },
    "note": {**_SESSION, "text": Field(str, required=True, max_length=MAX_NOTE_TEXT)},
    "typing": {**_SESSION, "state": Field(str, required=True, choices=("start", "stop"))},
}


#: Room kept in every frame for what is not a list (type, ids, the visitor, analytics…).
FRAME_HEADROOM = 8 * 1024
#: The conversation lists of `welcome` and `queue.updated`, filled in this order when they do
#: not all fit (after `agents`, which may take a quarter of the frame at most).
LIST_PRIORITY = ("mine", "queue", "open")


def frame_budget() -> int:
    """The largest frame the server may send: daphne refuses to send more than a client may send
    (`CHAT_MAX_FRAME_BYTES` caps both ways), so every desk frame is cut to fit under it."""
    limit = settings.CHAT_MAX_FRAME_BYTES
    return limit - min(FRAME_HEADROOM, limit // 4)


def size(value: Any) -> int:
    """Bytes of `value` as sent (UTF-8 JSON, compact)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def fit(items: list[Frame], budget: int, *, keep: str = "head") -> list[Frame]:
    """The longest run of `items` (from the start, or the end with keep="tail") within `budget` bytes."""
    ordered = items if keep == "head" else list(reversed(items))
    kept: list[Frame] = []
    used = 0
    for item in ordered:
        used += size(item) + 1
        if used > budget:
            break
        kept.append(item)
    return kept if keep == "head" else list(reversed(kept))


def _lists(lists: dict[str, Any]) -> Frame:
    """The desk's lists cut to fit one frame (agents, then LIST_PRIORITY), with their full `totals`."""
    budget = frame_budget()
    out: Frame = {"totals": lists["totals"], "agents": fit(lists["agents"], budget // 4)}
    budget -= size(out["agents"])
    for name in LIST_PRIORITY:
        out[name] = fit(lists[name], budget)
        budget -= size(out[name])
    return out


def welcome(*, agent: Frame, lists: dict[str, Any]) -> Frame:
    """`welcome`: who the desk is, the waiting queue, the agent's own conversations, every open
    conversation (any agent's), the agents one may transfer to, and how many there are of each."""
    return {"type": "welcome", "agent": agent, **_lists(lists)}


def queue_updated(*, lists: dict[str, Any]) -> Frame:
    """`queue.updated`: the queue, the agent's conversations, the open ones or the agents changed."""
    return {"type": "queue.updated", **_lists(lists)}


def conversation(payload: Frame) -> Frame:
    """`conversation`: one conversation (transcript, visitor, notes, earlier sessions, analytics).

    The notes keep their newest within a quarter of the frame, the transcript its newest
    messages in the rest;
    `truncated` says whether earlier messages were left out (`history` pages back to them).
    """
    budget = frame_budget() - size({k: v for k, v in payload.items() if k not in ("messages", "notes")})
    notes = fit(payload["notes"], budget // 4, keep="tail")  # at most a quarter; the rest is the transcript's
    messages = fit(payload["messages"], budget - size(notes), keep="tail")
    truncated = payload["truncated"] or len(messages) < len(payload["messages"])
    return {"type": "conversation", **payload, "messages": messages, "notes": notes, "truncated": truncated}


def history(*, session_id: str, messages: list[Frame], truncated: bool) -> Frame:
    """`history`: messages before `before_seq`, oldest first; `truncated` if there are earlier ones."""
    kept = fit(messages, frame_budget(), keep="tail")
    return {
        "type": "history",
        "session_id": session_id,
        "messages": kept,
        "truncated": truncated or len(kept) < len(messages),
    }


def session_frame(session_id: str, frame: Frame) -> Frame:
    """A frame of the visitor's conversation (message, reply.*, typing…), tagged with its session."""
    return {**frame, "session_id": session_id}


def claim_ack(*, session_id: str) -> Frame:
    """`claim.ack`: the conversation is this agent's."""
    return {"type": "claim.ack", "session_id": session_id}


def action_ack(action: str, *, session_id: str) -> Frame:
    """`release.ack`, `transfer.ack`, `handback.ack`, `resolve.ack`: the action is done."""
    return {"type": f"{action}.ack", "session_id": session_id}


def message_ack(*, session_id: str, client_id: str, seq: int, message_id: str) -> Frame:
    """`ack`: the agent's message is stored (and on its way to the visitor)."""
    return {"type": "ack", "session_id": session_id, "client_id": client_id, "seq": seq, "message_id": message_id}


def note(*, session_id: str, author: str, text: str, created_at: str) -> Frame:
    """`note`: an internal note, to every desk that has the conversation open."""
    return {
        "type": "note",
        "session_id": session_id,
        "author": {"name": author},
        "text": text,
        "created_at": created_at,
    }


def availability(*, available: bool) -> Frame:
    """`availability`: the agent's availability as stored."""
    return {"type": "availability", "available": available}


def pong() -> Frame:
    """`pong`: the answer to `ping`."""
    return {"type": "pong"}
