"""The event seam: what happens in a chat, as typed events, delivered to whoever subscribes.

The chat publishes; it does not know who listens. Analytics (the tracker, the live feed, the
sweep) subscribes in `AnalyticsConfig.ready()`; the agent desk, webhooks and alerts plug in
the same way (see docs/architecture.md, "To add a subscriber").

Delivery is in process and synchronous, and never blocks or breaks the chat path:

* a subscriber is a plain function called with the event; it must not block (it keeps state
  in memory, or spawns its I/O on `project.runtime`); a coroutine function is run as a
  background task of kind ``subscribers``;
* a subscriber that raises is logged, and the next one still gets the event.

Each event is published once, in the process where it happened (an *original*). Other processes
keep their own view of a session (each tab's tracker sees the whole conversation), so events a
session's other tabs must see (`RELAYED`) also travel to the session's channel-layer group as
their own typed message, ``{"type": "chat.event", ...}``; the consumers there hand them back to
`receive_copy`, which delivers each copy once per process, to subscribers that asked for
copies (`subscribe(..., copies=True)`). Webhooks want originals only; trackers want both.

*Records* are the other half of the seam, for what must never be lost: a service that writes a
change also calls `record(...)` with what it wrote, inside its own `transaction.atomic()`, and
the durable subscribers (`subscribe_durable`; the webhooks outbox) write their rows in that same
transaction: the change and its rows commit together or not at all. A durable subscriber runs
synchronously in the service's thread and transaction, does no I/O but its INSERTs, and may raise
(the write is then rolled back: that is what durable means). Services ask `recording(Type)` first
and build nothing, and query nothing, when no subscriber wants the record now (no webhook
endpoint is active): the chat's hot path pays one dictionary lookup.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import logging
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from project import runtime

logger = logging.getLogger(__name__)

E = TypeVar("E", bound="ChatEvent")


#: Event ids are this process's random prefix and a counter: unique across processes (copies are
#: recognised by id) at a fraction of a `uuid4()` per event.
_ID_PREFIX = uuid.uuid4().hex[:16]
_ids = itertools.count(1)


def _event_id() -> str:
    return f"{_ID_PREFIX}-{next(_ids)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatEvent:
    """Something that happened in one chat session.

    Fields are plain values (str, int, float, bool, None, tuples and dicts of them) so that a
    copy crosses the channel layer unchanged.
    """

    #: Sent to the session's other processes as a `chat.event` layer message.
    relayed: ClassVar[bool] = False

    session_pk: int
    session_id: str  # the public id
    event_id: str = field(default_factory=_event_id)
    #: True for a copy from another process (`receive_copy`), False where it happened.
    copy: bool = False

    def message(self, process: str) -> dict[str, Any]:
        """This event as a channel-layer message from `process`."""
        return {
            "type": "chat.event",
            "event": type(self).__name__,
            "fields": _plain(dataclasses.asdict(self)),
            "process": process,
        }


# --- the session ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class SessionOpened(ChatEvent):
    """A connection took a session that has a row: `created` when it wrote the row just now.

    `connection` names the connection (one process may hold several tabs of a session).
    """

    connection: str
    created: bool
    started_at: str  # ISO 8601
    user_type: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed(ChatEvent):
    """A connection of the session closed (the session itself goes on; replies finish)."""

    connection: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionEnded(ChatEvent):
    """The visitor ended the conversation."""

    relayed: ClassVar[bool] = True


# --- messages and replies ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class MessageStored(ChatEvent):
    """A visitor message was stored (and acknowledged)."""

    relayed: ClassVar[bool] = True

    seq: int
    message_id: str
    role: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyStarted(ChatEvent):
    """An assistant reply began (a failover starts a new one, with `retry_of`)."""

    seq: int
    message_id: str
    reply_to: int
    retry_of: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderCallInfo:
    """One provider attempt of a reply, as subscribers see it."""

    provider: str
    model: str
    outcome: str
    latency_ms: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    error_kind: str = ""
    fallback_from: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyEnded(ChatEvent):
    """A reply reached its final status, with the provider calls it took."""

    relayed: ClassVar[bool] = True

    seq: int
    message_id: str
    status: str
    provider: str
    model: str
    ttft_ms: int | None
    duration_ms: int | None
    cached: bool
    sources: tuple[dict[str, Any], ...] = ()
    error: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    calls: tuple[ProviderCallInfo, ...] = ()

    @property
    def failovers(self) -> int:
        """Calls that took over from a failed provider."""
        return sum(1 for call in self.calls if call.fallback_from)

    @property
    def errors(self) -> int:
        """Calls that failed or were cut."""
        return sum(1 for call in self.calls if call.outcome in {"error", "interrupted"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Failover(ChatEvent):
    """A provider failed after its text began; the kept part is `interrupted` and the next provider answers."""

    seq: int
    provider: str
    model: str
    error: str


# --- what the visitor did ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class FeedbackGiven(ChatEvent):
    """Thumbs up or down on a reply (the stored rating)."""

    relayed: ClassVar[bool] = True

    message_id: str
    rating: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionRated(ChatEvent):
    """The end-of-chat survey."""

    relayed: ClassVar[bool] = True

    score: int
    resolved: bool | None
    comment: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class VisitorEvent(ChatEvent):
    """A widget action (opened, clicked a quick reply, asked for a person...)."""

    relayed: ClassVar[bool] = True

    name: str
    data: dict[str, Any] = field(default_factory=dict)


# --- human handoff ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class HandoffRequested(ChatEvent):
    """The visitor asked for a person: `state` is `waiting` (queued) or `unavailable` (nobody now)."""

    relayed: ClassVar[bool] = True

    reason: str
    state: str
    requested_at: str  # ISO 8601


@dataclass(frozen=True, slots=True, kw_only=True)
class HandoffChanged(ChatEvent):
    """The conversation's handoff state changed: a person claimed, transferred, released, handed
    back or resolved it, or the visitor left while waiting (`actor_id` None: nobody at the desk)."""

    relayed: ClassVar[bool] = True

    state: str  # the session's handoff state now: ai | waiting | assigned | resolved
    previous_state: str
    agent_id: int | None  # who answers the visitor now (None when nobody does)
    agent_name: str
    actor_id: int | None  # who did it (None: the visitor, or the server's sweep)
    actor_name: str
    outcome: str = ""  # how the request ended, when it did: resolved | handed_back | abandoned


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentMessageStored(ChatEvent):
    """A person's message to the visitor was stored (before the desk's ack)."""

    relayed: ClassVar[bool] = True

    seq: int
    message_id: str
    agent_id: int
    agent_name: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactLeft(ChatEvent):
    """The visitor left contact details for a person to answer later."""

    contact_id: int
    email: str


EVENT_TYPES: dict[str, type[ChatEvent]] = {
    cls.__name__: cls
    for cls in (
        SessionOpened,
        ConnectionClosed,
        SessionEnded,
        MessageStored,
        ReplyStarted,
        ReplyEnded,
        Failover,
        FeedbackGiven,
        SessionRated,
        VisitorEvent,
        HandoffRequested,
        HandoffChanged,
        AgentMessageStored,
        ContactLeft,
    )
}


# --- records: what a write committed, for durable subscribers -----------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """A change a service is writing, recorded inside its transaction (see `record`).

    Records never cross processes or the channel layer: they live for one `record` call.
    """

    session_id: str  # the conversation's public id
    occurred_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationStarted(Record):
    """The conversation's row was written (its first message, rating or event; or the API)."""

    source: str
    user_type: str
    user_id: str = ""
    user_name: str = ""
    user_email: str = ""
    locale: str = ""
    page_url: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageCreated(Record):
    """A message was stored: the visitor's (`user`), a person's (`agent`), or a finished reply (`assistant`)."""

    message_id: str
    seq: int
    role: str
    text: str
    status: str
    created_at: datetime
    client_id: str = ""
    author_name: str = ""
    reply_to: int | None = None
    retry_of: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyFinished(Record):
    """A reply reached its final status (`complete`, `stopped`, `failed`, or `interrupted` when its
    process died), with the provider calls it took."""

    message_id: str
    seq: int
    reply_to: int | None
    status: str
    error: str
    provider: str
    model: str
    ttft_ms: int | None
    duration_ms: int | None
    input_tokens: int | None
    output_tokens: int | None
    cached: bool
    calls: tuple[ProviderCallInfo, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedbackSaved(Record):
    """Thumbs up or down on a reply: `created` for the first, else it replaced the earlier one."""

    message_id: str
    rating: str
    reason: str
    comment: str
    created: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class RatingSaved(Record):
    """The end-of-chat survey: `created` for the first, else it replaced the earlier one."""

    score: int
    resolved: bool | None
    comment: str
    created: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class HandoffRequestSaved(Record):
    """The visitor asked for a person: `waiting` (queued) or `unavailable` (nobody can answer now)."""

    state: str
    reason: str
    requested_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class HandoffAssigned(Record):
    """A person now answers the visitor: a claim (from the queue, or a takeover) or a transfer."""

    agent_id: int
    agent_name: str
    actor_id: int
    actor_name: str
    previous_state: str
    previous_agent_id: int | None
    kind: str  # claim (the visitor had asked) | takeover (nobody had) | transfer (from `actor`)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationClosed(Record):
    """The visitor ended the conversation (`ended`), or left while waiting for a person (`abandoned`)."""

    reason: str


RECORD_TYPES: tuple[type[Record], ...] = (
    ConversationStarted,
    MessageCreated,
    ReplyFinished,
    FeedbackSaved,
    RatingSaved,
    HandoffRequestSaved,
    HandoffAssigned,
    ConversationClosed,
)


# --- the registry -----------------------------------------------------------------------------
Subscriber = Callable[[Any], Any]


@dataclass(slots=True)
class _Subscription:
    handler: Subscriber
    copies: bool
    is_async: bool


class EventBus:
    """Subscribers by event class; `publish` calls them in subscription order."""

    #: How many copy ids a process remembers to deliver each copy once (several tabs of a
    #: session in one process each receive the layer message).
    SEEN_COPIES = 4096

    def __init__(self) -> None:
        self._subscribers: defaultdict[type[ChatEvent], list[_Subscription]] = defaultdict(list)
        self._seen: OrderedDict[str, None] = OrderedDict()

    def subscribe(self, event_type: type[E], handler: Callable[[E], Any], *, copies: bool = False) -> None:
        """Call `handler` with every `event_type` published here (and copies from other processes if asked)."""
        self._subscribers[event_type].append(_Subscription(handler, copies, inspect.iscoroutinefunction(handler)))

    def unsubscribe(self, event_type: type[ChatEvent], handler: Subscriber) -> None:
        """Stop calling `handler` (tests)."""
        self._subscribers[event_type] = [s for s in self._subscribers[event_type] if s.handler is not handler]

    def publish(self, event: ChatEvent) -> None:
        """Deliver an event that happened in this process to its subscribers. Never raises."""
        self._deliver(event, copy=False)

    def receive_copy(self, message: dict[str, Any]) -> None:
        """Deliver a `chat.event` layer message from another process, once per process."""
        try:
            cls = EVENT_TYPES[message["event"]]
            fields = dict(message["fields"], copy=True)
            if cls is ReplyEnded:
                fields["calls"] = tuple(ProviderCallInfo(**call) for call in fields.get("calls", ()))
                fields["sources"] = tuple(fields.get("sources", ()))
            event = cls(**fields)
        except Exception:
            logger.exception("Dropped a malformed chat.event message %r", message.get("event"))
            return
        if event.event_id in self._seen:
            return
        self._seen[event.event_id] = None
        if len(self._seen) > self.SEEN_COPIES:
            self._seen.popitem(last=False)
        self._deliver(event, copy=True)

    def _deliver(self, event: ChatEvent, *, copy: bool) -> None:
        for subscription in self._subscribers.get(type(event), ()):
            if copy and not subscription.copies:
                continue
            try:
                if subscription.is_async:
                    runtime.current().spawn(
                        subscription.handler(event), name=f"event-{type(event).__name__}", kind="subscribers"
                    )
                else:
                    subscription.handler(event)
            except Exception:
                logger.exception("Subscriber %r failed on %s", subscription.handler, type(event).__name__)


bus = EventBus()
subscribe = bus.subscribe
publish = bus.publish
receive_copy = bus.receive_copy


# --- durable subscribers ----------------------------------------------------------------------
DurableHandler = Callable[[list[Any]], None]


@dataclass(slots=True)
class _Durable:
    handler: DurableHandler
    active: Callable[[], bool] | None


class Recorder:
    """Durable subscribers by record class; `record` calls them inside the caller's transaction."""

    def __init__(self) -> None:
        self._subscribers: dict[type[Record], list[_Durable]] = {}

    def subscribe(
        self, record_type: type[Record], handler: DurableHandler, *, active: Callable[[], bool] | None = None
    ) -> None:
        """Call `handler(records)` with the `record_type` records of each `record` call, in its transaction.

        `active` (cheap, no I/O on the common path) says whether the handler wants the records
        now; None means always. A handler subscribed to several classes gets one list per call.
        """
        self._subscribers.setdefault(record_type, []).append(_Durable(handler, active))

    def unsubscribe(self, record_type: type[Record], handler: DurableHandler) -> None:
        """Stop calling `handler` (tests)."""
        kept = [s for s in self._subscribers.get(record_type, ()) if s.handler is not handler]
        if kept:
            self._subscribers[record_type] = kept
        else:
            self._subscribers.pop(record_type, None)

    def recording(self, record_type: type[Record]) -> bool:
        """Whether a `record_type` record would be kept now: services build (and query) nothing otherwise."""
        subscriptions = self._subscribers.get(record_type)
        if not subscriptions:
            return False
        return any(s.active is None or s.active() for s in subscriptions)

    def record(self, *records: Record) -> None:
        """Hand `records` to their durable subscribers, synchronously; their errors propagate.

        Call inside the `transaction.atomic()` block that writes the change: the subscribers'
        rows commit with it, or roll back with it.
        """
        batches: dict[DurableHandler, list[Record]] = {}
        for item in records:
            for subscription in self._subscribers.get(type(item), ()):
                if subscription.active is None or subscription.active():
                    batches.setdefault(subscription.handler, []).append(item)
        for handler, batch in batches.items():
            handler(batch)


recorder = Recorder()
subscribe_durable = recorder.subscribe
recording = recorder.recording
record = recorder.record


def _plain(value: Any) -> Any:
    """`value` with tuples as lists (msgpack and JSON both carry lists)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
