"""The weekly chat report, rendered as text, JSON, Markdown or HTML from `selectors.report()` data.

This package only lays out and formats: every number it prints is a value of the report data,
so the report shows the same numbers as the dashboard, the JSON API and the exports (which read
the same selectors). Which metrics it shows, in which section, with which label and unit, comes
from the registry (`analytics.metrics.METRICS`); definitions come from the data itself.

- `format`: the one formatter of numbers (by unit), costs and changes;
- `content`: what the report says in any format: titles, sections, table cells;
- `text`, `markdown`, `html` (with its charts in `svg`): one renderer per format; JSON is the
  data itself.

`None` in the data means "no data" (a rate over nothing) and is printed so, never as 0. A model
with no price shows "price unknown", never $0.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Literal

from analytics import metrics
from analytics.reports.content import is_empty, sections, subject
from analytics.reports.format import (
    ARROWS,
    NO_DATA,
    PRICE_UNKNOWN,
    change_tone,
    format_change,
    format_unit,
    format_usd,
    format_value,
    label,
    metric_display,
    row_cost,
)
from analytics.reports.html import render_html
from analytics.reports.markdown import md_escape, render_markdown
from analytics.reports.svg import svg_bars, svg_hbars, svg_heatmap, svg_thumbs
from analytics.reports.text import render_text

__all__ = [
    "ARROWS",
    "FORMATS",
    "NO_DATA",
    "PRICE_UNKNOWN",
    "SECTIONS",
    "Format",
    "change_tone",
    "format_change",
    "format_unit",
    "format_usd",
    "format_value",
    "is_empty",
    "label",
    "md_escape",
    "metric_display",
    "render",
    "render_html",
    "render_json",
    "render_markdown",
    "render_text",
    "row_cost",
    "sections",
    "subject",
    "svg_bars",
    "svg_hbars",
    "svg_heatmap",
    "svg_thumbs",
]

Format = Literal["text", "json", "markdown", "html"]
FORMATS: tuple[Format, ...] = ("text", "json", "markdown", "html")

#: The report's sections and their metrics, from the registry when this module was imported
#: (kept for callers of the old module; the renderers ask `metrics.report_sections()` each time).
SECTIONS: list[tuple[str, list[str]]] = [(title, keys) for title, keys in metrics.report_sections()]


def render_json(data: Mapping[str, Any]) -> str:
    """The report data itself, keys sorted so that two runs over the same data diff cleanly."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


_RENDERERS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "text": render_text,
    "json": render_json,
    "markdown": render_markdown,
    "html": render_html,
}


def render(data: Mapping[str, Any], fmt: Format | str = "text") -> str:
    """The report in `fmt` (text, json, markdown or html)."""
    try:
        renderer = _RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}") from None
    return renderer(data)
