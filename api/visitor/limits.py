"""The visitor API's limits: the chat's own limiters, so the websocket and the API share their counts.

Every window is `assistant.ratelimit.ip_window_take` (a fixed window in the cache: with REDIS_URL,
one count for every server process, as for the websocket):

* requests per client address (API_REQUESTS_PER_IP_PER_MINUTE), every endpoint;
* new conversations per address (CHAT_SESSIONS_PER_IP_PER_HOUR, shared with the widget's);
* messages per address (CHAT_IP_RATE_LIMIT_PER_MINUTE, shared with the widget's) and per
  conversation (CHAT_RATE_LIMIT_PER_MINUTE, the websocket's per-connection rate);
* feedback, ratings, requests for a person and ends per conversation
  (CHAT_EVENT_RATE_LIMIT_PER_MINUTE, the websocket's per-connection budget for such frames).

Each refusal is a 429 `rate_limited` with Retry-After. Turns in flight are bounded per process
(API_MAX_TURNS_IN_FLIGHT, 503 `server_busy`): each holds its request open until its reply ends.
"""

from __future__ import annotations

from django.conf import settings

from api.errors import ApiError
from assistant import protocol
from assistant.ratelimit import ip_window_take
from project import runtime

SERVER_BUSY = "server_busy"
#: Seconds a client told `server_busy` waits before trying again.
BUSY_RETRY_AFTER_S = 1.0


def _limited(detail: str, wait: float) -> ApiError:
    return ApiError(protocol.RATE_LIMITED, detail, status_code=429, retry_after=wait)


async def request_take(ip: str) -> None:
    """Count a request of `ip` to the visitor API; 429 past API_REQUESTS_PER_IP_PER_MINUTE."""
    wait = await ip_window_take(ip, settings.API_REQUESTS_PER_IP_PER_MINUTE, kind="api")
    if wait is not None:
        raise _limited("Too many requests from your network; try again later.", wait)


async def conversation_take(ip: str) -> None:
    """Count a new conversation of `ip` (with the widget's); 429 past CHAT_SESSIONS_PER_IP_PER_HOUR."""
    wait = await ip_window_take(ip, settings.CHAT_SESSIONS_PER_IP_PER_HOUR, kind="sessions", window_s=3600)
    if wait is not None:
        raise _limited("Too many new conversations from your network; try again later.", wait)


async def message_wait(ip: str, conversation_id: str) -> float | None:
    """Count a message; seconds to wait when the conversation's or the address's window is full."""
    wait = await ip_window_take(conversation_id, settings.CHAT_RATE_LIMIT_PER_MINUTE, kind="api-conversation")
    if wait is None:
        wait = await ip_window_take(ip, settings.CHAT_IP_RATE_LIMIT_PER_MINUTE)
    return wait


def message_limited(wait: float) -> ApiError:
    """The 429 for a message over its window."""
    return _limited("You are sending messages too quickly.", wait)


async def action_take(conversation_id: str) -> None:
    """Count a feedback, rating, handoff or end of a conversation; 429 past CHAT_EVENT_RATE_LIMIT_PER_MINUTE."""
    wait = await ip_window_take(conversation_id, settings.CHAT_EVENT_RATE_LIMIT_PER_MINUTE, kind="api-actions")
    if wait is not None:
        raise _limited("Too many actions on this conversation; slow down.", wait)


class TurnSlots:
    """API turns this process runs now (one event loop: no lock needed)."""

    def __init__(self) -> None:
        self.used = 0

    def take(self) -> None:
        """Hold a slot, or 503 `server_busy` when API_MAX_TURNS_IN_FLIGHT are held."""
        if self.used >= settings.API_MAX_TURNS_IN_FLIGHT:
            raise ApiError(
                SERVER_BUSY,
                "The server is answering as many API turns as it takes; try again shortly.",
                status_code=503,
                retry_after=BUSY_RETRY_AFTER_S,
            )
        self.used += 1

    def give_back(self) -> None:
        """Release a slot."""
        self.used = max(0, self.used - 1)


def turn_slots() -> TurnSlots:
    """This event loop's turn slots."""
    return runtime.current().state("api.visitor.turn_slots", TurnSlots)
