"""API requests as connections of their conversation, for the event seam's subscribers.

Analytics keeps one tracker per session per process, opened by `SessionOpened` (a connection took
the session: a resumed one loads the stored numbers, replaying the conversation's rows) and
closed when the last `ConnectionClosed` comes and the replies this process generates for it have
ended (`analytics.subscribers`). An API request is such a connection, with a name of its own: it
opens before its events and closes after them (a turn after its reply ends, not when the HTTP
response does: a client that went away leaves the reply to finish), so the tracker folds in what
the request did and writes the row, exactly as for a widget tab that did the same.

Concurrent requests of a conversation share one presence. In a single-process deployment (the
in-memory channel layer) the presence also stays open API_PRESENCE_LINGER_S after the last
request, so a client chatting turn after turn does not reload the conversation's numbers (every
row of it) for each turn. With a shared layer (several processes) it closes at once: a process
whose only hold on the session is the API is not in the session's group, so it would not see
what the session's other processes do, and its tracker, kept open, would write stale numbers.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from channels.layers import get_channel_layer
from django.conf import settings

from assistant import events
from assistant.delivery import layer_is_shared
from project import runtime

if TYPE_CHECKING:
    from assistant.models import ChatSession


class Presence:
    """One API connection of a session: `open` publishes `SessionOpened`, `close` `ConnectionClosed`."""

    def __init__(self, session: ChatSession) -> None:
        self.session = session
        #: Also the `origin` of the frames its requests publish: the session's tabs all receive them.
        self.name = f"api.{uuid.uuid4().hex}"
        self.opened = False

    def open(self, *, created: bool = False) -> None:
        """Publish `SessionOpened` (`created`: the conversation's row was written by this request)."""
        if self.opened:
            return
        self.opened = True
        session = self.session
        events.publish(
            events.SessionOpened(
                session_pk=session.pk,
                session_id=str(session.public_id),
                connection=self.name,
                created=created,
                started_at=session.created_at.isoformat(),
                user_type=session.user_type,
            )
        )

    def close(self) -> None:
        """Publish `ConnectionClosed` (once, and only after `open`)."""
        if not self.opened:
            return
        self.opened = False
        events.publish(
            events.ConnectionClosed(
                session_pk=self.session.pk, session_id=str(self.session.public_id), connection=self.name
            )
        )


@dataclass(slots=True)
class _Held:
    presence: Presence
    users: int = 0
    timer: asyncio.TimerHandle | None = None


class Presences:
    """This event loop's open API presences, by session: shared by requests, kept a while after."""

    def __init__(self) -> None:
        self._held: dict[int, _Held] = {}

    def acquire(self, session: ChatSession, *, created: bool = False) -> Presence:
        """The session's presence, opened now unless a request holds it or it lingers."""
        held = self._held.get(session.pk)
        if held is None:
            presence = Presence(session)
            presence.open(created=created)
            held = self._held[session.pk] = _Held(presence)
        elif held.timer is not None:
            held.timer.cancel()
            held.timer = None
        held.users += 1
        return held.presence

    def release(self, presence: Presence) -> None:
        """A request is done with `presence`: close it now, or after the linger when nobody holds it."""
        pk = presence.session.pk
        held = self._held.get(pk)
        if held is None or held.presence is not presence:
            presence.close()
            return
        held.users -= 1
        if held.users > 0:
            return
        linger = settings.API_PRESENCE_LINGER_S
        if linger <= 0 or layer_is_shared(get_channel_layer()):
            self._close(pk)
        else:
            held.timer = asyncio.get_running_loop().call_later(linger, self._close, pk)

    def held(self) -> int:
        """How many sessions have an API presence here now (tests)."""
        return len(self._held)

    def _close(self, pk: int) -> None:
        held = self._held.pop(pk, None)
        if held is not None:
            if held.timer is not None:
                held.timer.cancel()
            held.presence.close()


def presences() -> Presences:
    """This event loop's API presences."""
    return runtime.current().state("api.visitor.presences", Presences)
