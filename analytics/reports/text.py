"""The report as plain text, for terminals and the text part of the email."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from analytics.reports.content import (
    AGENTS_TITLE,
    agent_rows,
    busiest_hours,
    daily_rows,
    definition_list,
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
from analytics.reports.format import NO_DATA, count, format_change, format_value, hour, label, metric_display, plural


def _text_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 1, indent: str = "  "
) -> list[str]:
    """Columns padded to their widest cell; the first `left` columns left-aligned, the others right."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [cell.ljust(widths[i]) if i < left else cell.rjust(widths[i]) for i, cell in enumerate(cells)]
        return (indent + "  ".join(padded)).rstrip()

    return [line(headers), indent + "  ".join("-" * width for width in widths), *(line(row) for row in rows)]


def _sparkline(values: Sequence[int]) -> str:
    """Eight-level block characters, so the day's shape fits on one line of a plain-text email."""
    blocks = "·▁▂▃▄▅▆▇█"
    top = max(values, default=0)
    if not top:
        return "·" * len(values)
    return "".join(blocks[0 if not v else max(1, round(8 * v / top))] for v in values)


def _text_ranked(rows: Iterable[Mapping[str, Any]], name: str) -> list[str]:
    """A numbered list of topics and their sessions."""
    items = list(rows)
    if not items:
        return [f"  {NO_DATA}"]
    width = max(len(str(row[name])) for row in items)
    return [
        f"  {rank:>2}. {str(row[name]).ljust(width)}  {plural(row['sessions'], 'session')}"
        for rank, row in enumerate(items, start=1)
    ]


def render_text(data: Mapping[str, Any]) -> str:
    """Plain text for terminals and the text part of the email."""
    title = period_title(data)
    out = [title, "=" * len(title), subtitle(data)]
    if filters_text(data):
        out.append(f"Filters: {filters_text(data)}")
    if is_empty(data):
        out += ["", empty_notice(data)]
    for section, keys in sections(data):
        out += ["", section.upper()]
        rows = [
            [label(key), metric_display(data, key), previous(data, key), format_change(data["changes"][key])]
            if key in data.get("changes", {})
            else [label(key), metric_display(data, key), "", ""]
            for key in keys
        ]
        out += _text_table(["Metric", "This period", "Previous", "Change"], rows)
    out += ["", "TOP TOPICS", *_text_ranked(data.get("top_topics", []), "topic")]
    out += ["", "COMMON ISSUES (topics of unresolved sessions)", *_text_ranked(data.get("common_issues", []), "topic")]
    out += ["", "USER TYPES"]
    if data.get("user_types"):
        rows = [
            [str(row["user_type"]), count(row["sessions"]), format_value("engagement_rate", row.get("share"))]
            for row in data["user_types"]
        ]
        out += _text_table(["User type", "Sessions", "Share"], rows)
    else:
        out.append(f"  {NO_DATA}")
    out += ["", f"PEAK USAGE HOURS ({data.get('timezone', '')})"]
    busiest = busiest_hours(data)
    if busiest:
        out.append(
            "  Busiest: " + ", ".join(f"{hour(row['hour'])} ({plural(row['sessions'], 'session')})" for row in busiest)
        )
        out.append(f"  00h |{_sparkline([row['sessions'] for row in data['peak_hours']])}| 23h")
    else:
        out.append(f"  {NO_DATA}")
    for heading, (headers, rows), left in (
        ("AI USAGE BY PROVIDER", provider_rows(data), 1),
        ("AI USAGE BY MODEL", model_rows(data), 3),
        ("HUMAN SUPPORT BY AGENT", agent_rows(data), 1),
        ("HOW RIGHT THE AI IS (CONFUSION MATRICES; POSITIVE = SATISFIED / RESOLVED)", prediction_rows(data), 1),
        ("SENTIMENT DISTRIBUTION", sentiment_rows(data), 1),
    ):
        if not rows and heading.lower() == AGENTS_TITLE.lower():
            continue  # a site where no person answers visitors has no such table
        out += ["", heading]
        out += _text_table(headers, rows, left=left) if rows else [f"  {NO_DATA}"]
    headers, rows = daily_rows(data)
    out += ["", "DAILY", *(_text_table(headers, rows) if rows else [f"  {NO_DATA}"])]
    out += ["", "DEFINITIONS"]
    out += [f"  {name}: {text}" for name, text in definition_list(data)]
    return "\n".join(out) + "\n"
