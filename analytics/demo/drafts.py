"""A session being drawn: the real model rows, with their times as offsets from the session start.

Times are drawn as seconds from the session's start, and the start is settled last (a session
that would run into the future moves back), so each row waits here with its offsets until
`sessions.Generator` places it in time. The rows are instances of the models themselves
(`assistant.models`): the demo keeps no copy of their columns. Rows of one batch refer to each
other through their relations (`reply_to`, `session`…); `writing.Writer` turns those into keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from assistant.models import ChatEvent, ChatMessage, Feedback, ProviderCall


@dataclass(slots=True)
class Message:
    """A message row and when it was written and finished (seconds from the session start)."""

    row: ChatMessage
    created: float
    finished: float | None = None


@dataclass(slots=True)
class Call:
    """A provider attempt row, as the router records it, and when it started."""

    row: ProviderCall
    start: float


@dataclass(slots=True)
class Turn:
    """One visitor message with its replies and reactions (or one agent message)."""

    end: float
    messages: list[Message] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    feedback: list[tuple[Feedback, float]] = field(default_factory=list)  # (row, when)
    events: list[tuple[ChatEvent, float]] = field(default_factory=list)  # (row, when)
