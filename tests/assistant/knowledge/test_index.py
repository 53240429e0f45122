"""BM25 search over the knowledge base: ranking, relevance gates, reloading."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_django import Settings

from assistant.knowledge.index import KnowledgeBase, get_knowledge_base

BILLING = """\
# Billing

Paying for your subscription.

## How do I update my credit card?

Open the billing page, choose the card on file and enter the new card number and expiry date.

## How are invoices sent?

Invoices are emailed every month as PDF attachments to the account owner.
"""
SHIPPING = """\
# Shipping

## How long does delivery take?

Parcels arrive within three working days inside the country.

## Can I track my parcel?

A tracking link is emailed when the parcel leaves the warehouse.
"""
ACCOUNTS = """\
# Accounts

## How do I reset my password?

Click "Forgot password" on the sign-in page and follow the reset link we email you.

## How do I delete my account?

Write to support and we delete the account and its data within thirty days.
"""
RETURNS = """\
## How do I return an item?

Returns are free within thirty days: print the prepaid label and drop the item at any post office.
"""


@pytest.fixture
def corpus(tmp_path: Path, settings: Settings) -> Path:
    """Three small knowledge files, with the documented default score gate."""
    settings.KNOWLEDGE_MIN_SCORE = 1.5
    directory = tmp_path / "knowledge"
    directory.mkdir()
    (directory / "billing.md").write_text(BILLING, encoding="utf-8")
    (directory / "shipping.md").write_text(SHIPPING, encoding="utf-8")
    (directory / "accounts.md").write_text(ACCOUNTS, encoding="utf-8")
    return directory


def hit_ids(knowledge: KnowledgeBase, question: str, **kwargs: int) -> list[str]:
    return [hit.section.id for hit in knowledge.search(question, **kwargs)]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("How do I reset my password?", "accounts.md#how-do-i-reset-my-password"),
        ("How can I track my parcel?", "shipping.md#can-i-track-my-parcel"),
        ("How long does delivery take?", "shipping.md#how-long-does-delivery-take"),
        ("I want to update the credit card", "billing.md#how-do-i-update-my-credit-card"),
        ("Can I delete my account?", "accounts.md#how-do-i-delete-my-account"),
    ],
)
def test_search_ranks_matching_section_first(corpus: Path, question: str, expected: str) -> None:
    hits = hit_ids(KnowledgeBase(corpus), question)
    assert hits[0] == expected


def test_search_hit_reports_score_and_full_coverage(corpus: Path) -> None:
    [hit] = KnowledgeBase(corpus).search("How do I reset my password?")
    assert hit.section.title == "How do I reset my password?"
    assert hit.section.document == "Accounts"
    assert hit.coverage == 1.0
    assert hit.score >= 1.5


def test_search_returns_nothing_when_no_word_matches(corpus: Path) -> None:
    assert KnowledgeBase(corpus).search("Volcano eruption forecast for tomorrow") == []


def test_search_returns_nothing_for_question_made_of_stop_words(corpus: Path) -> None:
    assert KnowledgeBase(corpus).search("How do I?") == []


def test_search_refuses_section_covering_one_of_three_content_words(corpus: Path, settings: Settings) -> None:
    settings.KNOWLEDGE_MIN_SCORE = 0  # only the coverage gate is left
    # Content words: password, zebra, volcano; only "password" is in the corpus.
    assert KnowledgeBase(corpus).search("password for zebra volcanoes") == []


def test_search_accepts_section_covering_two_of_three_content_words(corpus: Path, settings: Settings) -> None:
    settings.KNOWLEDGE_MIN_SCORE = 0
    [hit] = KnowledgeBase(corpus).search("reset password zebra")
    assert hit.section.id == "accounts.md#how-do-i-reset-my-password"
    assert hit.coverage == 0.667


def test_search_refuses_weak_match_below_min_score(corpus: Path, settings: Settings) -> None:
    knowledge = KnowledgeBase(corpus)
    # "invoice" occurs once, in a long-ish section: a real but weak BM25 match.
    assert knowledge.search("Where is my invoice?") == []
    settings.KNOWLEDGE_MIN_SCORE = 0.5
    assert hit_ids(knowledge, "Where is my invoice?") == ["billing.md#how-are-invoices-sent"]


def test_search_returns_at_most_limit_hits(corpus: Path, settings: Settings) -> None:
    settings.KNOWLEDGE_MIN_SCORE = 0
    knowledge = KnowledgeBase(corpus)
    assert len(knowledge.search("track parcel delivery", limit=3)) == 2
    assert hit_ids(knowledge, "track parcel delivery", limit=1) == ["shipping.md#can-i-track-my-parcel"]


def test_index_rebuilds_when_file_is_added(corpus: Path) -> None:
    knowledge = KnowledgeBase(corpus, reload_check_s=0)
    assert knowledge.search("How do I return an item?") == []
    before = knowledge.version

    (corpus / "returns.md").write_text(RETURNS, encoding="utf-8")

    assert hit_ids(knowledge, "How do I return an item?")[0] == "returns.md#how-do-i-return-an-item"
    assert knowledge.version != before
    assert len(knowledge.sections) == 8


def test_index_rebuilds_when_file_changes(corpus: Path) -> None:
    knowledge = KnowledgeBase(corpus, reload_check_s=0)
    assert hit_ids(knowledge, "How do I reset my password?") == ["accounts.md#how-do-i-reset-my-password"]
    before = knowledge.version

    (corpus / "accounts.md").write_text(
        "# Accounts\n\n## How do I change my username?\n\nUsernames can be changed once a year in the profile page.\n",
        encoding="utf-8",
    )

    assert knowledge.search("How do I reset my password?") == []
    assert hit_ids(knowledge, "How do I change my username?")[0] == "accounts.md#how-do-i-change-my-username"
    assert knowledge.version != before


def test_index_version_is_stable_while_files_are_unchanged(corpus: Path) -> None:
    knowledge = KnowledgeBase(corpus, reload_check_s=0)
    knowledge.search("parcel")
    first = knowledge.version
    knowledge.search("invoice")
    assert first != "empty"
    assert knowledge.version == first


def test_index_waits_for_reload_interval_before_noticing_changes(corpus: Path) -> None:
    knowledge = KnowledgeBase(corpus, reload_check_s=3600)
    assert knowledge.search("How do I return an item?") == []
    (corpus / "returns.md").write_text(RETURNS, encoding="utf-8")
    assert knowledge.search("How do I return an item?") == []


def test_search_of_empty_directory_returns_nothing(tmp_path: Path) -> None:
    knowledge = KnowledgeBase(tmp_path, reload_check_s=0)
    assert knowledge.search("How do I reset my password?") == []
    assert knowledge.sections == []
    assert knowledge.version == "empty"


def test_search_of_missing_directory_returns_nothing(tmp_path: Path) -> None:
    knowledge = KnowledgeBase(tmp_path / "does-not-exist", reload_check_s=0)
    assert knowledge.search("How do I reset my password?") == []
    assert knowledge.version == "empty"


def test_index_becomes_empty_when_last_file_is_removed(corpus: Path) -> None:
    knowledge = KnowledgeBase(corpus, reload_check_s=0)
    assert knowledge.search("track parcel") != []
    for path in corpus.glob("*.md"):
        path.unlink()
    assert knowledge.search("track parcel") == []
    assert knowledge.version == "empty"


# --- the knowledge base shipped in docs/knowledge ---------------------------------------------
@pytest.fixture
def default_knowledge(settings: Settings) -> KnowledgeBase:
    settings.KNOWLEDGE_DIR = Path(settings.BASE_DIR) / "docs" / "knowledge"
    settings.KNOWLEDGE_MIN_SCORE = 1.5
    return get_knowledge_base()


def test_default_knowledge_answers_embedding_question_from_embedding_article(default_knowledge: KnowledgeBase) -> None:
    hits = default_knowledge.search("How do I embed the widget?")
    assert hits[0].section.id.startswith("embedding-the-widget.md#")


def test_default_knowledge_answers_providers_question_from_providers_article(default_knowledge: KnowledgeBase) -> None:
    hits = default_knowledge.search("Which AI providers are supported?")
    assert hits[0].section.id.startswith("ai-providers.md#")


def test_default_knowledge_does_not_answer_off_topic_question(default_knowledge: KnowledgeBase) -> None:
    assert default_knowledge.search("What's the capital of Australia?") == []
