"""The provider interface and error taxonomy every AI vendor module implements.

A provider turns a `ReplyRequest` into an async stream of `TextChunk`s followed by at most one
`UsageReport`. Vendor modules translate their SDK's types and exceptions into these, import no
Django models, and never retry: retries, timeouts and failover belong to the router.
"""

from __future__ import annotations

import abc
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

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
    system_prompt: str = ""
    history_tokens: int = 2000
    with_knowledge: bool = True  # False for side tasks such as titles: the system prompt alone
    #: A JSON schema the reply must follow (structured output: OpenAI `json_schema`, Gemini
    #: `response_json_schema`; Anthropic gets it in the system prompt). None: free text.
    response_schema: Mapping[str, Any] | None = None
    #: The schema's name, as OpenAI's `json_schema.name` wants one (letters, digits, _ and -).
    response_name: str = "response"


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

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most providers hold nothing
        """Release network resources (the SDK's connection pool)."""


# --- Error taxonomy -------------------------------------------------------------------------
@dataclass
class ProviderError(Exception):
    """A provider could not produce (the rest of) a reply."""

    detail: str
    provider: str = ""
    retryable: bool = False
    retry_after: float | None = None
    kind: str = field(default="error", init=False)

    status_code: int | None = None

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
class ProviderRefused(ProviderError):
    """The model declined to answer (OpenAI `refusal`, Anthropic `stop_reason: refusal`, Gemini
    `finishReason: SAFETY` or a blocked prompt). Asking the same model again gets the same
    answer: not retried, the next provider is asked."""

    kind: str = field(default="refused", init=False)


@dataclass
class ProviderInterrupted(ProviderError):
    """The stream broke after text had begun (cut connection, malformed or error event)."""

    kind: str = field(default="interrupted", init=False)


def error_for_status(
    provider: str, status: int, detail: str, headers: Mapping[str, str] | None = None
) -> ProviderError:
    """The taxonomy for an HTTP error status, the same for every vendor.

    429 carries `Retry-After` (seconds or an HTTP date is not supported: seconds only, plus
    OpenAI/Anthropic's `retry-after-ms`); 408, 409, 5xx and Anthropic's 529 are worth a retry;
    401/403 mean a bad key; any other 4xx is a request or model the vendor will never accept.
    """
    detail = detail[:300]
    if status == 429:
        return ProviderRateLimited(detail, provider, retry_after=retry_after_seconds(headers), status_code=status)
    if status in (401, 403):
        return ProviderAuthError(detail, provider, status_code=status)
    if status in (408, 409) or status >= 500:
        return ProviderRetryable(detail, provider, status_code=status)
    return ProviderBadRequest(detail, provider, status_code=status)


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """`retry-after-ms` or `retry-after` (seconds) from a response, if present and sane."""
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if 0 <= seconds < 86400:
            return seconds
    return None


_TOKEN_PIECES = re.compile(r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d{1,3}| ?[^\s\w]+|\s+(?!\S)|\s+""", re.UNICODE)


def estimate_tokens(text: str) -> int:
    """Approximate token count for vendors that report no usage (flagged as estimated).

    Counts the pieces of the GPT-style pre-tokenizer pattern, splitting long words in 4-char
    pieces; within ~15 % of real BPE counts on English prose, with no vocabulary download
    (tiktoken fetches its tables from the internet on first use).
    """
    count = 0
    for piece in _TOKEN_PIECES.findall(text):
        count += max(1, -(-len(piece.strip()) // 4)) if len(piece.strip()) > 6 else 1
    return count


def connection_refused(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is a refused TCP connection: nobody listens there.

    Such a failure is instant, so it is retried at once instead of after a backoff: the retries
    cost a millisecond, and the failover that follows is not delayed by waits that cannot help.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError) or "Connection refused" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def connection_error(provider: str, exc: BaseException) -> ProviderRetryable:
    """A retryable error for a failed connection; a refused one is retried without waiting."""
    refused = connection_refused(exc)
    detail = f"connection {'refused' if refused else 'failed'}: {exc.__cause__ or exc}"
    return ProviderRetryable(detail, provider, retry_after=0.0 if refused else None)
