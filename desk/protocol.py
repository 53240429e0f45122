"""The `/ws/desk/` protocol: agent → server frames (validated) and server → agent frames (built here).

Names are the contract of docs/desk.md: extend, never rename. Validation reuses the chat's
strict decoder (unknown fields refused, each error naming its field).
"""

from __future__ import annotations

from typing import Any

from assistant.handoff.services import MAX_AGENT_TEXT, MAX_DESK_CLIENT_ID, MAX_NOTE_TEXT
from assistant.protocol import Field

Frame = dict[str, Any]

_SESSION = {"session_id": Field(str, required=True, max_length=36)}

FRAME_FIELDS: dict[str, dict[str, Field]] = {
    "hello": {},
    "ping": {},
    "availability": {"available": Field(bool, required=True)},
    "open": _SESSION,
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


def welcome(*, agent: Frame, queue: list[Frame], mine: list[Frame]) -> Frame:
    """`welcome`: who the desk is, the waiting queue and the agent's own conversations."""
    return {"type": "welcome", "agent": agent, "queue": queue, "mine": mine}


def queue_updated(*, queue: list[Frame], mine: list[Frame]) -> Frame:
    """`queue.updated`: the queue or the agent's conversations changed."""
    return {"type": "queue.updated", "queue": queue, "mine": mine}


def conversation(payload: Frame) -> Frame:
    """`conversation`: one conversation in full (transcript, visitor, notes, earlier sessions)."""
    return {"type": "conversation", **payload}


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
