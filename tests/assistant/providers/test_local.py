"""The offline local provider: answers only from the knowledge sections it is given."""

from __future__ import annotations

import time

from assistant.knowledge import SearchHit, Section
from assistant.providers.base import PromptMessage, ReplyRequest, StreamEvent, TextChunk, UsageReport
from assistant.providers.local import LocalProvider, compose_answer

INVOICES = Section(
    id="billing.md#how-are-invoices-sent",
    title="How are invoices sent?",
    document="Billing",
    source="billing.md",
    text="Invoices are emailed monthly.",
)
CARDS = Section(
    id="billing.md#which-cards-are-accepted",
    title="Which cards are accepted?",
    document="Billing",
    source="billing.md",
    text="Visa and Mastercard.",
)
SECRET = Section(
    id="internal.md#secret",
    title="Secret",
    document="Internal",
    source="internal.md",
    text="The vault code is 1234.",
)
INVOICES_ANSWER = (
    "**How are invoices sent?**\n\nInvoices are emailed monthly.\n\nSources: Billing › How are invoices sent?"
)
QUICK_REPLIES = ("How do I embed the widget?", "How do I scale Parley?")


def hit(section: Section, score: float) -> SearchHit:
    return SearchHit(section=section, score=score, coverage=1.0)


async def collect(provider: LocalProvider, request: ReplyRequest) -> list[StreamEvent]:
    return [event async for event in provider.stream(request)]


def texts(events: list[StreamEvent]) -> list[str]:
    return [event.text for event in events if isinstance(event, TextChunk)]


# --- streaming ----------------------------------------------------------------------------------
async def test_stream_chunks_join_to_exact_answer_text() -> None:
    request = ReplyRequest(query="How are invoices sent?", hits=(hit(INVOICES, 3.0),))
    events = await collect(LocalProvider(token_delay_ms=0, chunk_words=1), request)
    assert "".join(texts(events)) == INVOICES_ANSWER
    assert compose_answer(request) == INVOICES_ANSWER


async def test_stream_with_chunk_words_one_yields_one_chunk_per_word() -> None:
    request = ReplyRequest(query="How are invoices sent?", hits=(hit(INVOICES, 3.0),))
    chunks = texts(await collect(LocalProvider(token_delay_ms=0, chunk_words=1), request))
    # 4 words of the title, 4 of the text, then "Sources:", "Billing", the separator and the 4 title words again.
    assert len(chunks) == 15
    assert chunks[:4] == ["**How ", "are ", "invoices ", "sent?**\n\n"]
    assert chunks[-1] == "sent?"


async def test_stream_with_chunk_words_three_groups_words() -> None:
    request = ReplyRequest(query="How are invoices sent?", hits=(hit(INVOICES, 3.0),))
    chunks = texts(await collect(LocalProvider(token_delay_ms=0, chunk_words=3), request))
    assert len(chunks) == 5
    assert chunks[0] == "**How are invoices "
    assert "".join(chunks) == INVOICES_ANSWER


async def test_stream_with_chunk_words_zero_yields_whole_answer_at_once() -> None:
    request = ReplyRequest(query="How are invoices sent?", hits=(hit(INVOICES, 3.0),))
    chunks = texts(await collect(LocalProvider(token_delay_ms=0, chunk_words=0), request))
    assert chunks == [INVOICES_ANSWER]


async def test_stream_ends_with_one_estimated_usage_report() -> None:
    request = ReplyRequest(query="How are invoices sent?", hits=(hit(INVOICES, 3.0),))
    events = await collect(LocalProvider(token_delay_ms=0, chunk_words=1), request)
    assert all(isinstance(event, TextChunk) for event in events[:-1])
    # Input: 22 query chars + 29 section chars = 51 -> ceil(51 / 4) = 13; output: 100 chars -> 25.
    assert events[-1] == UsageReport(input_tokens=13, output_tokens=25, estimated=True)


async def test_stream_spaces_chunks_by_token_delay() -> None:
    request = ReplyRequest(query="How are invoices sent?", hits=(hit(INVOICES, 3.0),))
    started = time.monotonic()
    events = await collect(LocalProvider(token_delay_ms=20, chunk_words=3), request)
    elapsed = time.monotonic() - started
    assert len(texts(events)) == 5
    # Four pauses of 20 ms between five chunks; only a loose lower bound is reliable.
    assert elapsed >= 0.07


async def test_stream_does_not_pause_without_token_delay() -> None:
    request = ReplyRequest(query="How are invoices sent?", hits=(hit(INVOICES, 3.0),))
    started = time.monotonic()
    await collect(LocalProvider(token_delay_ms=0, chunk_words=1), request)
    assert time.monotonic() - started < 0.5


# --- composing the answer ---------------------------------------------------------------------
def test_answer_without_hits_says_it_does_not_know_and_lists_quick_replies() -> None:
    request = ReplyRequest(query="What's the capital of Australia?", quick_replies=QUICK_REPLIES)
    assert compose_answer(request) == (
        "I'm sorry, I don't know the answer to that: it isn't covered in my knowledge base, "
        "and I'd rather not guess.\n"
        "\n"
        "Here are some things I can help with:\n"
        "- How do I embed the widget?\n"
        "- How do I scale Parley?"
    )


def test_answer_without_hits_or_quick_replies_is_only_the_apology() -> None:
    request = ReplyRequest(query="What's the capital of Australia?")
    assert compose_answer(request) == (
        "I'm sorry, I don't know the answer to that: it isn't covered in my knowledge base, and I'd rather not guess."
    )


async def test_stream_without_hits_never_includes_section_text_or_sources() -> None:
    # Earlier turns quote a section; without hits for this question none of it may be repeated.
    request = ReplyRequest(
        query="What is the vault code?",
        history=(PromptMessage(role="assistant", text=f"**Secret**\n\n{SECRET.text}"),),
        quick_replies=QUICK_REPLIES,
    )
    text = "".join(texts(await collect(LocalProvider(token_delay_ms=0, chunk_words=1), request)))
    assert text.startswith("I'm sorry, I don't know the answer to that")
    assert SECRET.text not in text
    assert "Sources:" not in text
    assert "**" not in text


def test_answer_includes_second_section_scoring_at_least_three_quarters_of_first() -> None:
    request = ReplyRequest(query="invoices and cards", hits=(hit(INVOICES, 4.0), hit(CARDS, 3.0)))
    assert compose_answer(request) == (
        "**How are invoices sent?**\n\nInvoices are emailed monthly.\n\n"
        "**Which cards are accepted?**\n\nVisa and Mastercard.\n\n"
        "Sources: Billing › How are invoices sent?; Billing › Which cards are accepted?"
    )


def test_answer_leaves_out_second_section_scoring_below_three_quarters_of_first() -> None:
    request = ReplyRequest(query="invoices and cards", hits=(hit(INVOICES, 4.0), hit(CARDS, 2.99)))
    assert compose_answer(request) == INVOICES_ANSWER


def test_answer_never_includes_third_section() -> None:
    request = ReplyRequest(query="q", hits=(hit(INVOICES, 4.0), hit(CARDS, 4.0), hit(SECRET, 4.0)))
    answer = compose_answer(request)
    assert "Visa and Mastercard." in answer
    assert SECRET.text not in answer


def test_answer_labels_section_titled_like_its_document_once() -> None:
    intro = Section(id="billing.md#billing", title="Billing", document="Billing", source="billing.md", text="Pay.")
    request = ReplyRequest(query="billing", hits=(hit(intro, 2.0),))
    assert compose_answer(request) == "**Billing**\n\nPay.\n\nSources: Billing"


# --- trimming long sections -------------------------------------------------------------------
def long_section(text: str) -> Section:
    return Section(id="long.md#long", title="Long", document="Long", source="long.md", text=text)


def answer_body(text: str) -> str:
    """The section part of a one-section answer."""
    answer = compose_answer(ReplyRequest(query="q", hits=(hit(long_section(text), 2.0),)))
    assert answer.startswith("**Long**\n\n")
    assert answer.endswith("\n\nSources: Long")
    return answer.removeprefix("**Long**\n\n").removesuffix("\n\nSources: Long")


def test_section_of_1500_chars_is_not_trimmed() -> None:
    text = "abcd " * 299 + "abcd"  # 1499 chars
    text += "!"  # 1500 chars
    assert answer_body(text) == text


def test_long_section_is_cut_at_paragraph_break_with_ellipsis() -> None:
    first = "word " * 199 + "word."  # 1000 chars
    second = "more " * 199 + "more."  # 1000 chars
    assert answer_body(f"{first}\n\n{second}") == first + " …"


def test_long_section_without_early_paragraph_break_is_cut_at_last_space_with_ellipsis() -> None:
    text = "abcd " * 400  # 2000 chars, spaces at 4, 9, …, 1499
    assert answer_body(text) == " ".join(["abcd"] * 300) + " …"


def test_long_section_with_paragraph_break_too_early_is_cut_at_last_space() -> None:
    text = "Intro.\n\n" + "abcd " * 400  # the only break is at 6, before a third of the limit
    body = answer_body(text)
    assert body.endswith("abcd …")
    assert len(body) <= 1502


def test_long_section_without_any_space_is_still_trimmed_to_limit() -> None:
    body = answer_body("x" * 3000)
    assert len(body) <= 1502
    assert body.endswith(" …")
