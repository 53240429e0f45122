"""Analytics on the chat's event seam: what `AnalyticsConfig.ready()` subscribes.

* the tracker (`analytics.tracker`): one per session per process, fed by every event of the
  session, originals and copies from other processes alike;
* the live feed for staff dashboards (`analytics.live`): originals only, so that an event is
  announced once however many tabs and processes hold the session;
* the periodic sweep (`analytics.recovery`), started by the first session a process serves,
  and the startup recovery of `manage.py serve`;
* at shutdown, every tracker is flushed before the sockets close (`project.runtime`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings

from analytics import live, recovery
from analytics.intelligence import hook as intelligence_hook
from analytics.tracker import AnalyticsTracker, flush_all, trackers
from assistant import events
from project import runtime


def connect() -> None:
    """Subscribe analytics to the chat (once, from `AnalyticsConfig.ready`)."""
    subscribe = events.subscribe
    subscribe(events.SessionOpened, session_opened)
    subscribe(events.ConnectionClosed, connection_closed)
    subscribe(events.ReplyStarted, reply_started)
    subscribe(events.MessageStored, message_stored, copies=True)
    subscribe(events.ReplyEnded, reply_ended, copies=True)
    subscribe(events.FeedbackGiven, feedback_given, copies=True)
    subscribe(events.SessionRated, session_rated, copies=True)
    subscribe(events.VisitorEvent, visitor_event, copies=True)
    subscribe(events.SessionEnded, session_ended, copies=True)
    subscribe(events.AgentMessageStored, agent_message_stored, copies=True)
    subscribe(events.HandoffRequested, handoff_requested, copies=True)
    subscribe(events.HandoffChanged, handoff_changed, copies=True)
    runtime.on_startup(recovery.startup)
    runtime.on_new_runtime(lambda rt: rt.before_close(flush_all))
    intelligence_hook.connect()  # ANALYSIS_ON_CLOSE: analyse sessions once they close


# --- the session's tracker in this process ------------------------------------------------------
def session_opened(event: events.SessionOpened) -> None:
    """A connection took the session: start (or join) this process's tracker of it."""
    recovery.ensure_running()  # also with the tracker off: then the sweep alone fills analytics
    if not settings.ANALYTICS_TRACKER:
        return
    open_trackers = trackers()
    tracker = open_trackers.get(event.session_pk)
    if tracker is None:
        tracker = open_trackers[event.session_pk] = AnalyticsTracker.start(
            session_pk=event.session_pk,
            started_at=datetime.fromisoformat(event.started_at),
            user_type=event.user_type,
            created=event.created,
        )
        waiting = detached().pop(event.session_pk, None)
        if waiting is not None:
            # A reply of this process outlived the session's last connection here; the new
            # tracker (loaded from the database) watches it end instead of a final rebuild.
            tracker.replies |= waiting.replies
    tracker.connections.add(event.connection)


def connection_closed(event: events.ConnectionClosed) -> None:
    """A connection left: the tracker closes once nothing here needs it.

    If a reply of this process is still running, the tracker cannot close yet, but it no longer
    sees the session's other processes (it left the session's group): its memory will be stale.
    It is detached, and once the reply ends the row is rebuilt from the database instead.
    """
    open_trackers = trackers()
    tracker = open_trackers.get(event.session_pk)
    if tracker is None:
        return
    tracker.connections.discard(event.connection)
    if tracker.connections:
        return
    del open_trackers[event.session_pk]
    if tracker.replies:
        tracker.detach()
        detached()[event.session_pk] = tracker
    else:
        tracker.close()


def reply_started(event: events.ReplyStarted) -> None:
    """A reply generated here: keep the tracker open until it ends."""
    tracker = trackers().get(event.session_pk) or detached().get(event.session_pk)
    if tracker is not None:
        tracker.replies.add(event.seq)


def _reply_done(event: events.ReplyEnded) -> None:
    """This process's reply ended: close what waited for it."""
    tracker = trackers().get(event.session_pk)
    if tracker is not None:
        tracker.replies.discard(event.seq)
        if tracker.idle:
            del trackers()[event.session_pk]
            tracker.close()
    waiting = detached().get(event.session_pk)
    if waiting is not None:
        waiting.replies.discard(event.seq)
        if not waiting.replies:
            del detached()[event.session_pk]
            waiting.final_rebuild()


def detached() -> dict[int, AnalyticsTracker]:
    """Trackers whose session has no connection here, waiting for this process's replies to end."""
    return runtime.current().state("analytics.detached", dict)


def _tracker(event: events.ChatEvent) -> AnalyticsTracker | None:
    return trackers().get(event.session_pk)


# --- what happened in the session ---------------------------------------------------------------
def message_stored(event: events.MessageStored) -> None:
    if not event.copy:
        _live(event, {"type": "message", "role": "user", "seq": event.seq, "first": event.seq == 1})
    tracker = _tracker(event)
    if tracker is not None:
        tracker.user_message(seq=event.seq, text=event.text)


def reply_ended(event: events.ReplyEnded) -> None:
    failovers = event.failovers
    if not event.copy:
        _live(
            event,
            {
                "type": "message",
                "role": "assistant",
                "seq": event.seq,
                "status": event.status,
                "provider": event.provider,
                "ttft_ms": event.ttft_ms,
                "duration_ms": event.duration_ms,
                "cached": event.cached,
            },
        )
        if failovers:
            _live(event, {"type": "failover", "count": failovers, "provider": event.provider})
    tracker = _tracker(event)
    if tracker is not None:
        tracker.reply_end(
            seq=event.seq,
            status=event.status,
            provider=event.provider,
            ttft_ms=event.ttft_ms,
            duration_ms=event.duration_ms,
            cached=event.cached,
            sources=list(event.sources),
            failovers=failovers,
            errors=event.errors,
        )
    if not event.copy:
        _reply_done(event)


def feedback_given(event: events.FeedbackGiven) -> None:
    if not event.copy:
        _live(event, {"type": "feedback", "rating": event.rating})
    tracker = _tracker(event)
    if tracker is not None:
        tracker.feedback(message_id=event.message_id, rating=event.rating)


def session_rated(event: events.SessionRated) -> None:
    if not event.copy:
        _live(event, {"type": "rating", "score": event.score, "resolved": event.resolved})
    tracker = _tracker(event)
    if tracker is not None:
        tracker.rating(score=event.score, resolved=event.resolved)


def visitor_event(event: events.VisitorEvent) -> None:
    tracker = _tracker(event)
    if tracker is not None:
        tracker.event(name=event.name)


def session_ended(event: events.SessionEnded) -> None:
    if not event.copy:
        _live(event, {"type": "session.end"})
    tracker = _tracker(event)
    if tracker is not None:
        tracker.ended()


# --- human support ------------------------------------------------------------------------------
def agent_message_stored(event: events.AgentMessageStored) -> None:
    """A person wrote to the visitor: it answers the visitor's question (not as the assistant)."""
    if not event.copy:
        _live(event, {"type": "message", "role": "agent", "seq": event.seq, "agent": event.agent_name})
    tracker = _tracker(event)
    if tracker is not None:
        tracker.agent_message(seq=event.seq)


def handoff_requested(event: events.HandoffRequested) -> None:
    """The visitor asked for a person: the session is escalated, waiting counts move."""
    if not event.copy:
        _live(event, {"type": "handoff", "state": event.state})
    tracker = _tracker(event)
    if tracker is not None:
        tracker.handoff_requested()


def handoff_changed(event: events.HandoffChanged) -> None:
    """A person claimed, released, transferred, handed back or resolved the conversation."""
    if not event.copy:
        _live(event, {"type": "handoff", "state": event.state, "previous": event.previous_state,
                      "agent": event.agent_name})  # fmt: skip
    tracker = _tracker(event)
    if tracker is not None:
        tracker.reload()


def _live(event: events.ChatEvent, payload: dict[str, Any]) -> None:
    payload["session_id"] = event.session_id
    live.publish(payload)
