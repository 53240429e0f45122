"""One assistant reply of the demo history and its provider attempts (`ProviderCall` rows).

Replies go through the provider chain most deployments configure (OpenAI, then Anthropic,
Gemini and the local assistant) or through a self-hosted OpenAI-compatible model, with what the
router records of each attempt: retries, failovers before any text (`fallback_from`), mid-stream
failovers (an `interrupted` reply and its replacement), stops, timeouts, outages where the
breaker skips OpenAI, and answers from the response cache.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from analytics.demo.catalogue import Query
from analytics.demo.drafts import Call, Message, Turn
from assistant.models import ChatMessage, ProviderCall
from assistant.protocol import PROVIDER_INTERRUPTED, PROVIDER_UNAVAILABLE, REPLY_TIMEOUT
from assistant.replies import UNAVAILABLE_TEXT


@dataclass(frozen=True, slots=True)
class Model:
    """A provider/model pair and its latency profile."""

    provider: str
    name: str
    ttft_ms: float  # median time to first token
    ms_per_token: float
    prompt_cache: bool = False  # reports cached prompt tokens on later turns


OPENAI = Model("openai", "gpt-4.1-mini", 620, 9.0, prompt_cache=True)
ANTHROPIC = Model("anthropic", "claude-haiku-4-5", 780, 7.0)
GEMINI = Model("gemini", "gemini-2.5-flash", 520, 5.0)
LOCAL = Model("local", "knowledge-base", 25, 15.0)
LLAMA = Model("openai", "llama3.1:8b", 1100, 28.0)  # an OpenAI-compatible Ollama: no price
MAIN_CHAIN = (OPENAI, ANTHROPIC, GEMINI, LOCAL)
SELF_HOSTED_CHAIN = (LLAMA,)
SELF_HOSTED_SHARE = 0.05
FIRST_TOKEN_TIMEOUT_MS = 15_000
REPLY_DEADLINE_MS = 120_000

#: Errors as the vendor modules report them: (kind, status code, detail, median latency ms, retried).
ERRORS = {
    "rate_limited": ("rate_limited", 429, "Error code: 429 - rate limit reached for requests", 180, True),
    "overloaded": ("retryable", 503, "Error code: 503 - the server is overloaded", 450, True),
    "timeout": ("timeout", None, "no text within 15.0 s", FIRST_TOKEN_TIMEOUT_MS, True),
    "refused": ("retryable", None, "Connection refused", 3, True),
    "auth": ("auth", 401, "Error code: 401 - invalid api key", 150, False),
}
#: Per reply of the main chain, outside outages: cumulative probabilities of what goes wrong.
MAIN_FATES = [
    (0.004, "stopped"),
    (0.010, "interrupted"),
    (0.022, "retried"),
    (0.032, "failover"),
    (0.034, "local"),
    (0.0355, "timeout"),
]
SELF_HOSTED_FATES = [(0.004, "stopped"), (0.012, "retried"), (0.027, "unavailable")]


class Replies:
    """Draws replies from the session generator's random stream."""

    def __init__(self, rng: random.Random, quick_replies: list[Query]) -> None:
        self.rng = rng
        self.quick_replies = quick_replies

    def draw(
        self, turn: Turn, user: Message, query: Query, number: int, *, chain: Sequence[Model], outage: bool
    ) -> Message:
        """Append the reply to `user` (two after a mid-stream failover); returns the one that ends the turn."""
        rng = self.rng
        fate = self._fate(query, number, chain, outage)
        if number == 0:
            self._title_call(turn, user, query, chain[0], skipped=outage)
        created = user.created + rng.lognormvariate(math.log(0.02), 0.4)
        row = ChatMessage(
            seq=user.row.seq + 1,
            role=ChatMessage.Role.ASSISTANT,
            text=query.reply,
            reply_to=user.row,
            knowledge_sections=query.sections,
        )
        reply = Message(row, created)
        turn.messages.append(reply)
        prompt = 380 + query.prompt_tokens + min(number, 8) * 110
        output = int(min(900, max(15, rng.lognormvariate(math.log(170), 0.45))))
        clock = created + rng.uniform(0.02, 0.09)  # the knowledge search
        if fate == "cached":
            ttft = rng.uniform(0.015, 0.06)
            self._end(reply, LOCAL, clock + ttft, clock + ttft + rng.uniform(0.03, 0.2), 0, 0, cached=True)
            row.knowledge_sections = query.local_sections
        elif fate == "ok":
            self._answer(turn, reply, chain[0], clock, prompt, output)
        elif fate == "retried":
            clock = self._fail(turn, reply, chain[0], 1, clock, rng.choice(["rate_limited", "overloaded"]))
            self._answer(turn, reply, chain[0], clock, prompt, output, attempt=2)
        elif fate == "outage":
            self._call(turn, reply, chain[0], 1, clock, clock, ProviderCall.Outcome.SKIPPED)
            self._answer(turn, reply, chain[1], clock, prompt, output, fallback_from=chain[0].provider)
        elif fate == "failover":
            error = rng.choice(["overloaded", "overloaded", "timeout", "auth"])
            for attempt in range(1, 4 if ERRORS[error][4] else 2):
                clock = self._fail(turn, reply, chain[0], attempt, clock, error)
            answering, failed = chain[1], chain[0]
            if rng.random() < 0.1:
                for attempt in range(1, 4):
                    clock = self._fail(turn, reply, chain[1], attempt, clock, "overloaded", chain[0].provider)
                answering, failed = chain[2], chain[1]
            self._answer(turn, reply, answering, clock, prompt, output, fallback_from=failed.provider)
        elif fate == "local":  # every cloud provider overloaded: the local assistant answers
            before = ""
            for model in chain[:3]:
                for attempt in range(1, 4):
                    clock = self._fail(turn, reply, model, attempt, clock, "overloaded", before)
                before = model.provider
            self._answer(turn, reply, LOCAL, clock, prompt, output, fallback_from=before)
            row.knowledge_sections = query.local_sections
        elif fate in {"stopped", "interrupted"}:
            reply = self._cut(turn, reply, query, chain, clock, prompt, output, stopped=fate == "stopped")
        else:
            self._give_up(turn, reply, chain, clock, timeout=fate == "timeout")
        return reply

    def _fate(self, query: Query, number: int, chain: Sequence[Model], outage: bool) -> str:
        """What happens to this reply: ok, cached, or one of the failure paths."""
        rng = self.rng
        if number == 0 and chain is MAIN_CHAIN:
            faq = query in self.quick_replies
            if rng.random() < (0.35 if faq else 0.03):
                return "cached"
        roll = rng.random()
        fates = MAIN_FATES if chain is MAIN_CHAIN else SELF_HOSTED_FATES
        fate = next((name for limit, name in fates if roll < limit), "ok")
        return "outage" if fate == "ok" and outage else fate

    def _cut(
        self,
        turn: Turn,
        reply: Message,
        query: Query,
        chain: Sequence[Model],
        clock: float,
        prompt: int,
        output: int,
        *,
        stopped: bool,
    ) -> Message:
        """A reply cut after its text began: stopped by the visitor, or failed over mid-stream.

        Returns the message that ends the turn (the replacement, after a failover).
        """
        rng, model = self.rng, chain[0]
        ttft = self._ttft(model)
        share = rng.uniform(0.1, 0.8)
        end = clock + ttft + share * output * model.ms_per_token / 1000
        said = int(share * output)
        stopped_call = ProviderCall.Outcome.STOPPED
        call = self._call(turn, reply, model, 1, clock, end, stopped_call, ttft, prompt, said, 0, tokens_estimated=True)
        reply.row.text = reply.row.text[: max(1, int(len(reply.row.text) * share))]
        status = ChatMessage.Status.STOPPED if stopped else ChatMessage.Status.INTERRUPTED
        self._end(reply, model, clock + ttft, end, prompt, said, status=status)
        if stopped:
            return reply
        call.row.outcome, call.row.error_kind = ProviderCall.Outcome.INTERRUPTED, "interrupted"
        call.row.error_detail = "the stream ended before the reply was complete"
        reply.row.error_code = PROVIDER_INTERRUPTED
        replacement_row = ChatMessage(
            seq=reply.row.seq + 1,
            role=ChatMessage.Role.ASSISTANT,
            text=query.reply,
            reply_to=reply.row.reply_to,
            retry_of=reply.row,
            knowledge_sections=query.sections,
        )
        replacement = Message(replacement_row, end)
        turn.messages.append(replacement)
        self._answer(turn, replacement, chain[1], end + 0.01, prompt, output, fallback_from=model.provider)
        return replacement

    def _give_up(self, turn: Turn, reply: Message, chain: Sequence[Model], clock: float, *, timeout: bool) -> None:
        """Every provider failed: timeouts until the reply deadline, or a refused self-hosted model."""
        deadline = reply.created + REPLY_DEADLINE_MS / 1000
        error, last, before = ("timeout" if timeout else "refused"), chain[0], ""
        for model in chain[:3] if timeout else chain[:1]:
            for attempt in range(1, 4):
                if clock >= deadline:
                    break
                clock = min(deadline, self._fail(turn, reply, model, attempt, clock, error, before))
                last = model
            before = model.provider
        reply.row.text, reply.row.knowledge_sections = UNAVAILABLE_TEXT, []
        reply.row.error_code = REPLY_TIMEOUT if timeout else PROVIDER_UNAVAILABLE
        self._end(reply, last, None, clock, None, None, status=ChatMessage.Status.FAILED)

    def _ttft(self, model: Model) -> float:
        return self.rng.lognormvariate(math.log(model.ttft_ms), 0.45) / 1000

    def _answer(
        self,
        turn: Turn,
        reply: Message,
        model: Model,
        clock: float,
        prompt: int,
        output: int,
        *,
        fallback_from: str = "",
        attempt: int = 1,
    ) -> None:
        """A successful attempt that answers the whole reply."""
        rng = self.rng
        ttft = self._ttft(model)
        end = clock + ttft + output * model.ms_per_token * rng.lognormvariate(0, 0.25) / 1000
        tokens_in = int(prompt * rng.gauss(1, 0.08))
        cached = int(tokens_in * rng.uniform(0.5, 0.8)) // 128 * 128 if model.prompt_cache and prompt > 1100 else 0
        outcome = ProviderCall.Outcome.OK
        self._call(
            turn,
            reply,
            model,
            attempt,
            clock,
            end,
            outcome,
            ttft,
            tokens_in,
            output,
            cached,
            fallback_from=fallback_from,
        )
        self._end(reply, model, clock + ttft, end, tokens_in, output)

    def _fail(
        self,
        turn: Turn,
        message: Message,
        model: Model,
        attempt: int,
        clock: float,
        error: str,
        fallback_from: str = "",
    ) -> float:
        """A failed attempt before any text; returns when the next attempt starts."""
        kind, status, detail, latency, retried = ERRORS[error]
        took = latency / 1000 if error == "timeout" else self.rng.lognormvariate(math.log(latency), 0.5) / 1000
        self._call(
            turn,
            message,
            model,
            attempt,
            clock,
            clock + took,
            ProviderCall.Outcome.ERROR,
            error_kind=kind,
            error_detail=detail,
            status_code=status,
            fallback_from=fallback_from,
        )
        wait = 0.0  # a refused connection is retried at once
        if error == "rate_limited":
            wait = self.rng.uniform(1, 3)  # Retry-After
        elif retried and error != "refused":
            wait = 0.25 * 2 ** (attempt - 1) * self.rng.uniform(0.5, 1.5)
        return clock + took + wait

    @staticmethod
    def _call(
        turn: Turn,
        message: Message,
        model: Model,
        attempt: int,
        start: float,
        end: float,
        outcome: str,
        ttft: float | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cached_tokens: int | None = None,
        **columns: Any,
    ) -> Call:
        """Record one attempt of `model` for `message` (times in seconds from the session start)."""
        row = ProviderCall(
            message=message.row,
            provider=model.provider,
            model=model.name,
            attempt=attempt,
            latency_ms=round((end - start) * 1000),
            ttft_ms=round(ttft * 1000) if ttft is not None else None,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_tokens=cached_tokens,
            outcome=outcome,
            **columns,
        )
        call = Call(row, start)
        turn.calls.append(call)
        return call

    @staticmethod
    def _end(
        reply: Message,
        model: Model,
        first_text: float | None,
        end: float,
        tokens_in: int | None,
        tokens_out: int | None,
        *,
        cached: bool = False,
        status: str = ChatMessage.Status.COMPLETE,
    ) -> None:
        row = reply.row
        row.status, row.provider, row.model, row.cached = status, model.provider, model.name, cached
        row.ttft_ms = round((first_text - reply.created) * 1000) if first_text is not None else None
        row.duration_ms = round((end - reply.created) * 1000)
        row.input_tokens, row.output_tokens, reply.finished = tokens_in, tokens_out, end

    def _title_call(self, turn: Turn, user: Message, query: Query, model: Model, *, skipped: bool) -> None:
        """The session title, asked of the first cloud provider beside the first reply."""
        rng = self.rng
        start = user.created + rng.uniform(0.05, 0.2)
        title = ProviderCall.Feature.TITLE
        if skipped:
            self._call(turn, user, model, 1, start, start, ProviderCall.Outcome.SKIPPED, feature=title)
        elif rng.random() < 0.01:
            for attempt in range(1, 4):
                start = self._fail(turn, user, model, attempt, start, "overloaded")
                turn.calls[-1].row.feature = title
        else:
            ttft, words = self._ttft(model), rng.randint(4, 9)
            end = start + ttft + words * model.ms_per_token / 1000
            tokens_in = 70 + len(query.text) // 4
            self._call(
                turn, user, model, 1, start, end, ProviderCall.Outcome.OK, ttft, tokens_in, words, 0, feature=title
            )
