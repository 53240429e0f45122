"""The report as GitHub Markdown: tables, and footnotes with the metrics' definitions.

Every string from the data is escaped (`md_escape`): a topic named `<b>x</b>` or `a|b` prints as
text, not markup, and cannot break a table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from analytics.reports.content import (
    AGENTS_TITLE,
    BREAKDOWN_TITLES,
    agent_rows,
    breakdowns,
    daily_rows,
    empty_notice,
    filters_text,
    is_empty,
    model_rows,
    period_title,
    prediction_rows,
    previous,
    provider_rows,
    sections,
    sentiment_rows,
    subtitle,
)
from analytics.reports.format import NO_DATA, count, format_change, format_value, hour, label, metric_display

#: Characters that could start inline Markdown, HTML or (on GitHub) math, or end a table cell.
_MD_SPECIAL = set("\\`*_[]<>|~&$")


def md_escape(value: object) -> str:
    """Backslash-escape Markdown punctuation, so a topic named `<b>x</b>` or `a|b` prints as text."""
    return "".join(f"\\{char}" if char in _MD_SPECIAL else char for char in str(value)).replace("\n", " ")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 1) -> list[str]:
    """A GitHub table; the first `left` columns left-aligned, numbers right-aligned."""
    align = ["---" if i < left else "---:" for i in range(len(headers))]
    return [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join(align) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def render_markdown(data: Mapping[str, Any]) -> str:
    """Markdown with tables; metric names carry footnotes with their definitions."""
    out = [f"# {md_escape(period_title(data))}", "", f"_{md_escape(subtitle(data))}_"]
    if filters_text(data):
        out += ["", f"**Filters:** {md_escape(filters_text(data))}"]
    if is_empty(data):
        out += ["", f"> **{md_escape(empty_notice(data))}**"]
    definitions = data.get("definitions", {})
    for section, keys in sections(data):
        rows = []
        for key in keys:
            name = md_escape(label(key)) + (f"[^{key}]" if key in definitions else "")
            if key in data.get("changes", {}):
                change = format_change(data["changes"][key])
                rows.append([name, md_escape(metric_display(data, key)), md_escape(previous(data, key)), change])
            else:
                rows.append([name, md_escape(metric_display(data, key)), "", ""])
        out += ["", f"## {section}", "", *_md_table(["Metric", "This period", "Previous", "Change"], rows)]

    def ranked(title: str, key: str, name: str) -> list[str]:
        items = data.get(key, [])
        head = ["", f"## {title}", ""]
        if not items:
            return [*head, f"_{NO_DATA}_"]
        rows = [[str(rank), md_escape(row[name]), count(row["sessions"])] for rank, row in enumerate(items, 1)]
        return [*head, *_md_table(["#", name.replace("_", " ").capitalize(), "Sessions"], rows, left=2)]

    out += ranked("Top topics", "top_topics", "topic")
    out += ranked("Common issues (topics of unresolved sessions)", "common_issues", "topic")
    out += ["", "## User types", ""]
    if data.get("user_types"):
        rows = [
            [md_escape(row["user_type"]), count(row["sessions"]), format_value("engagement_rate", row.get("share"))]
            for row in data["user_types"]
        ]
        out += _md_table(["User type", "Sessions", "Share"], rows)
    else:
        out.append(f"_{NO_DATA}_")
    out += ["", f"## Peak usage hours ({md_escape(data.get('timezone', ''))})", ""]
    busy = [row for row in data.get("peak_hours", []) if row["sessions"]]
    if busy:
        out += _md_table(["Hour", "Sessions"], [[hour(row["hour"]), count(row["sessions"])] for row in busy])
    else:
        out.append(f"_{NO_DATA}_")
    for heading, (headers, rows), left in (
        ("AI usage by provider", provider_rows(data), 1),
        ("AI usage by model", model_rows(data), 3),
        ("Human support by agent", agent_rows(data), 1),
        ("How right the AI is: confusion matrices (positive = satisfied / resolved)", prediction_rows(data), 1),
        ("Sentiment distribution", sentiment_rows(data), 1),
    ):
        if not rows and heading.lower() == AGENTS_TITLE.lower():
            continue  # a site where no person answers visitors has no such table
        out += ["", f"## {heading}", ""]
        escaped = [[md_escape(cell) for cell in row] for row in rows]
        out += _md_table(headers, escaped, left=left) if rows else [f"_{NO_DATA}_"]
    headers, rows = daily_rows(data)
    out += ["", "## Daily", ""]
    out += _md_table(headers, [[md_escape(cell) for cell in row] for row in rows]) if rows else [f"_{NO_DATA}_"]
    out += ["", "## Definitions", ""]
    shown = [key for _, keys in sections(data) for key in keys if key in definitions]
    out += [f"[^{key}]: **{md_escape(label(key))}**: {md_escape(definitions[key])}" for key in shown]
    out += [""]
    out += [f"- **{BREAKDOWN_TITLES.get(key, key)}**: {md_escape(text)}" for key, text in breakdowns(data)]
    return "\n".join(out) + "\n"
