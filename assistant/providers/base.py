"""The provider interface and error taxonomy every AI vendor module implements.

A provider turns a `ReplyRequest` into an async stream of `TextChunk`s followed by at most one
`UsageReport`. Vendor modules translate their SDK's types and exceptions into these, import no
Django models, and never retry: retries, timeouts and failover belong to the router.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from assistant.knowledge import SearchHit


@dataclass(frozen=True, slots=True)
class PromptMessage:
    """One earlier turn of the conversation, oldest first."""

    role: str  # "user" or "assistant"
    text: str


@dataclass(frozen=True, slots=True)
class ReplyRequest:
    """Everything a provider needs to answer the visitor's latest message."""

    query: str
    history: tuple[PromptMessage, ...] = ()
    hits: tuple[SearchHit, ...] = ()
    quick_replies: tuple[str, ...] = ()
    locale: str = ""


@dataclass(frozen=True, slots=True)
class TextChunk:
    """A piece of reply text, to be appended."""

    text: str


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Token usage for the whole reply; `estimated` when the vendor reported none."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    estimated: bool = False


StreamEvent = TextChunk | UsageReport


class AIProvider(abc.ABC):
    """An AI backend that streams a reply."""

    name: str = "abstract"

    def __init__(self, *, model: str) -> None:
        self.model = model

    @abc.abstractmethod
    def stream(self, request: ReplyRequest) -> AsyncIterator[StreamEvent]:
        """Yield the reply as text chunks, then usage; raise a ProviderError on failure."""


# --- Error taxonomy -------------------------------------------------------------------------
@dataclass
class ProviderError(Exception):
    """A provider could not produce (the rest of) a reply."""

    detail: str
    provider: str = ""
    retryable: bool = False
    retry_after: float | None = None
    kind: str = field(default="error", init=False)

    def __str__(self) -> str:
        return f"{self.provider or 'provider'} {self.kind}: {self.detail}"


@dataclass
class ProviderRetryable(ProviderError):
    """Connection error or 5xx before any text: worth another attempt."""

    retryable: bool = True
    kind: str = field(default="retryable", init=False)


@dataclass
class ProviderRateLimited(ProviderError):
    """429: retry after `retry_after` seconds when given."""

    retryable: bool = True
    kind: str = field(default="rate_limited", init=False)


@dataclass
class ProviderAuthError(ProviderError):
    """401/403: the key is wrong; retrying cannot help."""

    kind: str = field(default="auth", init=False)


@dataclass
class ProviderBadRequest(ProviderError):
    """400/404: bad request or unknown model; retrying cannot help."""

    kind: str = field(default="bad_request", init=False)


@dataclass
class ProviderTimeout(ProviderError):
    """No first token, or no next chunk, in time."""

    retryable: bool = True
    kind: str = field(default="timeout", init=False)


@dataclass
class ProviderInterrupted(ProviderError):
    """The stream broke after text had begun (cut connection, malformed or error event)."""

    kind: str = field(default="interrupted", init=False)
