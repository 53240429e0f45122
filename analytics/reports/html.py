"""The report as a standalone HTML document for email.

Inline styles, inline SVG charts (`reports.svg`), no scripts and no external resources; every
string that came from visitors or operators (topic names, provider and model names) is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.utils.html import escape

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
from analytics.reports.format import (
    NO_DATA,
    change_tone,
    count,
    format_change,
    format_value,
    hour,
    label,
    metric_display,
    plural,
)
from analytics.reports.svg import (
    BAD,
    BLUE,
    GOOD,
    GREY,
    INK,
    MUTED,
    ORANGE,
    RULE,
    attrs,
    svg_bars,
    svg_hbars,
    svg_heatmap,
    svg_thumbs,
)

_TONE_COLOURS = {"good": GOOD, "bad": BAD, "neutral": MUTED}


_TABLE = f'style="border-collapse:collapse;width:100%;font-size:14px;color:{INK}"'


_TH = f'style="text-align:left;padding:6px 6px;border-bottom:2px solid {RULE};color:{MUTED};font-weight:600"'


_TH_NUM = f'style="text-align:right;padding:6px 6px;border-bottom:2px solid {RULE};color:{MUTED};font-weight:600"'


_TD = f'style="text-align:left;padding:6px 6px;border-bottom:1px solid {RULE}"'


_TD_NUM = f'style="text-align:right;padding:6px 6px;border-bottom:1px solid {RULE};white-space:nowrap"'


_H2 = f'style="font-size:18px;margin:28px 0 8px;padding-bottom:4px;border-bottom:1px solid {RULE};color:{INK}"'


_P_MUTED = f'style="margin:4px 0;color:{MUTED};font-size:13px"'


def _html_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 1, widths: Sequence[int] = ()
) -> str:
    """A table of already-escaped cells; columns from `left` on are right-aligned numbers.

    `widths` (percentages) line up the columns of consecutive tables, as the metric tables are.
    """
    head = "".join(
        f"<th {_TH if i < left else _TH_NUM}{attrs(width=f'{widths[i]}%') if i < len(widths) else ''}>{h}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>" + "".join(f"<td {_TD if i < left else _TD_NUM}>{cell}</td>" for i, cell in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f'<table {_TABLE} cellpadding="0" cellspacing="0"><tr>{head}</tr>{body}</table>'


def _html_cell(text: str) -> str:
    """An escaped cell; a cost's "+ price unknown…" note goes below, free to wrap, so wide tables fit."""
    amount, plus, note = text.partition(" + ")
    if not plus:
        return escape(text)
    return f'{escape(amount)}<br><span style="white-space:normal;font-size:12px;color:{MUTED}">+ {escape(note)}</span>'


def _html_no_data() -> str:
    """What a section with nothing to show says."""
    return f"<p {_P_MUTED}><em>{NO_DATA}</em></p>"


def _html_metrics(data: Mapping[str, Any], keys: Sequence[str]) -> str:
    """A section's metrics: name (definition on hover), value, previous value, coloured change."""
    definitions = data.get("definitions", {})
    rows = []
    for key in keys:
        name = f'<span{attrs(title=definitions.get(key, ""))} style="border-bottom:1px dotted {GREY}">'
        name += f"{escape(label(key))}</span>"
        value = f"<strong>{escape(metric_display(data, key))}</strong>"
        if key in data.get("changes", {}):
            change = data["changes"][key]
            colour = _TONE_COLOURS[change_tone(key, change)]
            changed = f'<span style="color:{colour}">{escape(format_change(change))}</span>'
            rows.append([name, value, escape(previous(data, key)), changed])
        else:
            rows.append([name, value, "", ""])
    return _html_table(["Metric", "This period", "Previous", "Change"], rows, widths=(34, 30, 18, 18))


def _html_ranked(items: Sequence[Mapping[str, Any]], name: str, title: str, colour: str) -> str:
    """Topics: a bar chart, then the same numbers as a table."""
    if not items:
        return _html_no_data()
    chart = svg_hbars([(str(row[name]), row["sessions"]) for row in items], title=title, colour=colour)
    rows = [[str(rank), escape(row[name]), count(row["sessions"])] for rank, row in enumerate(items, 1)]
    return chart + _html_table(["#", "Topic", "Sessions"], rows, left=2)


def render_html(data: Mapping[str, Any]) -> str:
    """A standalone HTML document for email: inline styles and SVG, nothing fetched, nothing run."""
    title = period_title(data)
    metrics = data["metrics"]
    daily = data.get("daily", [])
    body: list[str] = [
        f'<h1 style="font-size:22px;margin:0 0 6px;color:{INK}">{escape(title)}</h1>',
        f"<p {_P_MUTED}>{escape(subtitle(data))}</p>",
    ]
    if filters_text(data):
        body.append(f"<p {_P_MUTED}><strong>Filters:</strong> {escape(filters_text(data))}</p>")
    if is_empty(data):
        body.append(
            f'<p style="margin:16px 0;padding:12px;background:#fff8c5;border:1px solid #d4a72c;color:{INK}">'
            f"<strong>{escape(empty_notice(data))}</strong></p>"
        )
    chart_after = {
        "Sessions": lambda: svg_bars(
            [
                ("sessions", [d.get("sessions") for d in daily], BLUE),
                ("messages", [d.get("messages") for d in daily], ORANGE),
            ],
            [str(d["date"])[5:] for d in daily],
            title="Sessions and messages per day",
        ),
        "Satisfaction": lambda: (
            svg_thumbs(metrics.get("thumbs_up") or 0, metrics.get("thumbs_down") or 0)
            + svg_bars(
                [("average rating", [d.get("avg_rating") for d in daily], GOOD)],
                [str(d["date"])[5:] for d in daily],
                title="Average end-of-chat rating per day (1 to 5)",
                maximum=5,
                height=140,
            )
        ),
    }
    for section, keys in sections(data):
        body.append(f"<h2 {_H2}>{escape(section)}</h2>")
        if section in chart_after and daily:
            body.append(chart_after[section]())
        body.append(_html_metrics(data, keys))
    body.append(f"<h2 {_H2}>Top topics</h2>")
    body.append(_html_ranked(data.get("top_topics", []), "topic", "Top topics by sessions", BLUE))
    body.append(f"<h2 {_H2}>Common issues</h2><p {_P_MUTED}>Topics of unresolved sessions.</p>")
    body.append(_html_ranked(data.get("common_issues", []), "topic", "Topics of unresolved sessions", BAD))
    body.append(f"<h2 {_H2}>User types</h2>")
    if data.get("user_types"):
        rows = [
            [escape(row["user_type"]), count(row["sessions"]), format_value("engagement_rate", row.get("share"))]
            for row in data["user_types"]
        ]
        body.append(_html_table(["User type", "Sessions", "Share"], rows))
    else:
        body.append(_html_no_data())
    body.append(f"<h2 {_H2}>Peak usage hours</h2>")
    busiest = busiest_hours(data)
    if busiest:
        text = ", ".join(f"{hour(row['hour'])} ({plural(row['sessions'], 'session')})" for row in busiest)
        body.append(f"<p {_P_MUTED}>Busiest ({escape(data.get('timezone', ''))}): {escape(text)}</p>")
        hours = data["peak_hours"]
        body.append(
            svg_bars(
                [("sessions", [row["sessions"] for row in hours], BLUE)],
                [f"{row['hour']:02d}" for row in hours],
                title="Sessions started per hour of the day",
                height=150,
            )
        )
        if data.get("peak_heatmap"):
            body.append(svg_heatmap(data["peak_heatmap"]))
    else:
        body.append(_html_no_data())
    for heading, (headers, rows), left in (
        ("AI usage by provider", provider_rows(data), 1),
        ("AI usage by model", model_rows(data), 3),
        ("Human support by agent", agent_rows(data), 1),
        ("How right the AI is: confusion matrices (positive = satisfied / resolved)", prediction_rows(data), 1),
        ("Sentiment distribution", sentiment_rows(data), 1),
    ):
        if not rows and heading.lower() == AGENTS_TITLE.lower():
            continue  # a site where no person answers visitors has no such table
        body.append(f"<h2 {_H2}>{escape(heading)}</h2>")
        escaped = [[_html_cell(cell) for cell in row] for row in rows]
        body.append(_html_table(headers, escaped, left=left) if rows else _html_no_data())
    headers, rows = daily_rows(data)
    body.append(f"<h2 {_H2}>Daily</h2>")
    body.append(_html_table(headers, [[escape(cell) for cell in row] for row in rows]) if rows else _html_no_data())
    body.append(f"<h2 {_H2}>Definitions</h2>")
    items = "".join(
        f'<dt style="font-weight:600;margin-top:8px">{escape(name)}</dt>'
        f'<dd style="margin:2px 0 0 0;color:{MUTED}">{escape(text)}</dd>'
        for name, text in definition_list(data)
    )
    body.append(f'<dl style="font-size:13px;margin:0">{items}</dl>')
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n</head>\n"
        f'<body style="margin:0;padding:0;background:#f6f8fa">\n'
        f'<table width="100%" cellpadding="0" cellspacing="0" style="background:#f6f8fa"><tr><td align="center">\n'
        f'<div style="max-width:680px;margin:0 auto;padding:24px;background:#ffffff;text-align:left;'
        f'font-family:Arial,Helvetica,sans-serif;color:{INK};line-height:1.4">\n'
        + "\n".join(body)
        + "\n</div>\n</td></tr></table>\n</body>\n</html>\n"
    )
