"""Splitting Markdown knowledge files into sections."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.knowledge.loader import Section, load_sections, parse_markdown, slugify

GUIDE = """\
# Billing guide

Everything about paying for Parley.

## How do I update my card?

Open Settings, then Billing.

### Which cards are accepted?

Visa and Mastercard.

#### Not a section heading

Still part of the cards section.
"""


def ids(sections: list[Section]) -> list[str]:
    return [section.id for section in sections]


def test_parse_splits_at_level_one_to_three_headings() -> None:
    sections = parse_markdown(GUIDE, source="billing.md")
    assert sections == [
        Section(
            id="billing.md#billing-guide",
            title="Billing guide",
            document="Billing guide",
            source="billing.md",
            text="Everything about paying for Parley.",
        ),
        Section(
            id="billing.md#how-do-i-update-my-card",
            title="How do I update my card?",
            document="Billing guide",
            source="billing.md",
            text="Open Settings, then Billing.",
        ),
        Section(
            id="billing.md#which-cards-are-accepted",
            title="Which cards are accepted?",
            document="Billing guide",
            source="billing.md",
            text="Visa and Mastercard.\n\n#### Not a section heading\n\nStill part of the cards section.",
        ),
    ]


def test_parse_ignores_headings_inside_backtick_fences() -> None:
    markdown = "## Install\n\n```bash\n# install the package\npip install parley\n## not a heading\n```\n\nDone.\n"
    sections = parse_markdown(markdown, source="setup.md")
    assert ids(sections) == ["setup.md#install"]
    assert sections[0].text == "```bash\n# install the package\npip install parley\n## not a heading\n```\n\nDone."


def test_parse_ignores_headings_inside_tilde_fences_and_resumes_after_them() -> None:
    markdown = "## First\n\n~~~\n# comment\n~~~\n\n## Second\n\nAfter the fence.\n"
    sections = parse_markdown(markdown, source="a.md")
    assert ids(sections) == ["a.md#first", "a.md#second"]
    assert sections[0].text == "~~~\n# comment\n~~~"
    assert sections[1].text == "After the fence."


def test_parse_gives_duplicate_headings_numbered_ids() -> None:
    markdown = "## FAQ\n\none\n\n## FAQ\n\ntwo\n\n## faq\n\nthree\n"
    assert ids(parse_markdown(markdown, source="help.md")) == ["help.md#faq", "help.md#faq-1", "help.md#faq-2"]


def test_parse_gives_unique_ids_when_a_heading_looks_like_a_numbered_duplicate() -> None:
    markdown = "## FAQ\n\none\n\n## FAQ\n\ntwo\n\n## FAQ 1\n\nthree\n"
    section_ids = ids(parse_markdown(markdown, source="help.md"))
    assert len(set(section_ids)) == 3


def test_parse_drops_sections_without_text() -> None:
    markdown = "# Title\n\n## Empty\n\n   \n\n## Full\n\nSome text.\n\n## Trailing empty\n"
    assert ids(parse_markdown(markdown, source="doc.md")) == ["doc.md#full"]


def test_parse_keeps_intro_before_first_subheading_under_document_title() -> None:
    markdown = "# Scaling Parley\n\nRead this first.\n\n## Workers\n\nRun two.\n"
    intro = parse_markdown(markdown, source="scaling.md")[0]
    assert intro.id == "scaling.md#scaling-parley"
    assert intro.title == "Scaling Parley"
    assert intro.text == "Read this first."
    assert intro.label == "Scaling Parley"


def test_parse_names_document_after_file_when_it_has_no_title() -> None:
    markdown = "Text before any heading.\n\n## Ports\n\nUse 8000.\n"
    sections = parse_markdown(markdown, source="guides/getting_started-now.md")
    assert [(s.id, s.title, s.document) for s in sections] == [
        ("guides/getting_started-now.md#getting-started-now", "Getting started now", "Getting started now"),
        ("guides/getting_started-now.md#ports", "Ports", "Getting started now"),
    ]
    assert sections[1].label == "Getting started now › Ports"


def test_parse_strips_closing_hashes_from_headings() -> None:
    sections = parse_markdown("## Closed heading ##\n\nBody.\n", source="x.md")
    assert sections[0].title == "Closed heading"
    assert sections[0].id == "x.md#closed-heading"


def test_parse_does_not_treat_hash_without_space_as_heading() -> None:
    sections = parse_markdown("## Tags\n\n#hashtag stays text\n", source="x.md")
    assert ids(sections) == ["x.md#tags"]
    assert sections[0].text == "#hashtag stays text"


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("How do I embed the widget on my site?", "how-do-i-embed-the-widget-on-my-site"),
        ("What's new in v2.0", "whats-new-in-v20"),
        ("snake_case and  spaces", "snake-case-and-spaces"),
        ("Über-fast setup", "über-fast-setup"),
        ("???", "section"),
    ],
)
def test_slugify_makes_github_style_anchor(heading: str, slug: str) -> None:
    assert slugify(heading) == slug


def test_load_sections_uses_paths_relative_to_directory_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "guides").mkdir()
    (tmp_path / "guides" / "install.md").write_text("## Docker\n\nUse compose.\n", encoding="utf-8")
    (tmp_path / "billing.md").write_text("## Cards\n\nVisa.\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("## Ignored\n\nNot Markdown.\n", encoding="utf-8")
    assert ids(load_sections(tmp_path)) == ["billing.md#cards", "guides/install.md#docker"]


def test_load_sections_of_empty_directory_is_empty(tmp_path: Path) -> None:
    assert load_sections(tmp_path) == []
