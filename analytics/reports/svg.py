"""The HTML report's charts: inline SVG, no script, every label and tooltip escaped.

Mail clients show inline SVG without fetching anything; `None` draws no bar (no data is not 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django.utils.html import escape

from analytics.reports.format import NO_DATA, count, hour, number, plural

# Colours of the HTML version (GitHub's palette: readable in light-mode mail clients).
INK, MUTED, RULE, GOOD, BAD = "#1f2328", "#59636e", "#d1d9e0", "#1a7f37", "#cf222e"
BLUE, ORANGE, GREY = "#0969da", "#bc4c00", "#818b98"


def attrs(**attributes: object) -> str:
    """HTML attributes, escaped; `class_` style names lose the underscore, `_` becomes `-`."""
    return "".join(f' {name.rstrip("_").replace("_", "-")}="{escape(value)}"' for name, value in attributes.items())


def _num(value: float) -> str:
    """An SVG coordinate: one decimal, no trailing zero."""
    return number(value, 1).replace(",", "")


def _svg_open(width: int, height: int, title: str) -> str:
    """An accessible chart: its title is its name for screen readers and its tooltip."""
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        f' role="img"{attrs(aria_label=title)} style="display:block;max-width:100%;height:auto;'
        f'font-family:Arial,Helvetica,sans-serif"><title>{escape(title)}</title>'
    )


def _svg_text(x: float, y: float, text: str, *, anchor: str = "start", size: int = 11, fill: str = MUTED) -> str:
    """A label, escaped."""
    return (
        f'<text x="{_num(x)}" y="{_num(y)}" font-size="{size}" fill="{fill}" text-anchor="{anchor}">'
        f"{escape(text)}</text>"
    )


def _label_every(labels: Sequence[str], room: float) -> int:
    """Show every n-th x label so that labels (about 6.5 px a character at 10 px) do not overlap."""
    widest = 6.5 * max((len(text) for text in labels), default=0) + 8
    return max(1, math.ceil(widest * len(labels) / max(1.0, room)))


def svg_bars(
    series: Sequence[tuple[str, Sequence[float | None], str]],
    labels: Sequence[str],
    *,
    title: str,
    width: int = 640,
    height: int = 180,
    maximum: float | None = None,
    value_format: Callable[[float], str] = lambda v: number(v),
) -> str:
    """A vertical bar chart, one group of bars per label, one bar per series (name, values, colour).

    `None` values draw no bar (no data is not 0). Each bar has a tooltip with its value.
    """
    left, right, top, bottom = 36, 8, 22 if len(series) > 1 else 10, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for _, vs, _ in series for v in vs if v is not None]
    peak = maximum if maximum is not None else max(values, default=0)
    parts = [_svg_open(width, height, title)]
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="{RULE}"/>')
    if peak:
        parts.append(_svg_text(left - 4, top + 8, value_format(peak), anchor="end", size=10))
    parts.append(_svg_text(left - 4, top + plot_h, "0", anchor="end", size=10))
    if len(series) > 1:  # legend
        x = left
        for name, _, colour in series:
            parts.append(f'<rect x="{x}" y="4" width="10" height="10" fill="{colour}"/>')
            parts.append(_svg_text(x + 14, 13, name))
            x += 18 + 7 * len(name)
    count = max(1, len(labels))
    slot = plot_w / count
    bar_w = max(1.0, (slot * 0.8) / max(1, len(series)))
    every = _label_every(labels, plot_w)
    for i, name in enumerate(labels):
        x0 = left + i * slot + slot * 0.1
        for j, (series_name, vs, colour) in enumerate(series):
            value = vs[i] if i < len(vs) else None
            if value is None or not peak:
                continue
            h = plot_h * value / peak
            parts.append(
                f'<rect x="{_num(x0 + j * bar_w)}" y="{_num(top + plot_h - h)}" width="{_num(bar_w)}"'
                f' height="{_num(h)}" fill="{colour}"><title>{escape(f"{name}: {value_format(value)} {series_name}")}'
                "</title></rect>"
            )
        if i % every == 0:
            parts.append(_svg_text(left + i * slot + slot / 2, height - 6, name, anchor="middle", size=10))
    if not peak:  # nothing but zeros and gaps: say so rather than draw an empty frame
        parts.append(_svg_text(left + plot_w / 2, top + plot_h / 2, NO_DATA, anchor="middle", size=13))
    parts.append("</svg>")
    return "".join(parts)


def svg_hbars(items: Sequence[tuple[str, float]], *, title: str, colour: str = BLUE, width: int = 640) -> str:
    """A horizontal bar chart (topics), labels on the left, each label escaped."""
    row_h, label_w, value_w = 22, 230, 48
    height = max(1, len(items)) * row_h + 8
    plot_w = width - label_w - value_w
    peak = max((value for _, value in items), default=0)
    parts = [_svg_open(width, height, title)]
    for i, (name, value) in enumerate(items):
        y = 4 + i * row_h
        shown = name if len(name) <= 34 else name[:33] + "…"
        parts.append(_svg_text(label_w - 6, y + 14, shown, anchor="end", size=12, fill=INK))
        w = plot_w * value / peak if peak else 0
        parts.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{_num(w)}" height="{row_h - 8}" fill="{colour}">'
            f"<title>{escape(f'{name}: {number(value)}')}</title></rect>"
        )
        parts.append(_svg_text(label_w + w + 6, y + 14, number(value), size=11))
    if not items:
        parts.append(_svg_text(width / 2, 18, NO_DATA, anchor="middle", size=13))
    parts.append("</svg>")
    return "".join(parts)


def svg_thumbs(up: int, down: int, *, width: int = 640) -> str:
    """Thumbs up versus down as one stacked bar."""
    title = f"Thumbs up {count(up)}, thumbs down {count(down)}"
    height, bar_y, bar_h = 46, 4, 20
    parts = [_svg_open(width, height, title)]
    total = up + down
    if not total:
        parts.append(f'<rect x="0" y="{bar_y}" width="{width}" height="{bar_h}" fill="{RULE}"/>')
        parts.append(_svg_text(width / 2, bar_y + 14, NO_DATA, anchor="middle", size=12, fill=INK))
    else:
        up_w = width * up / total
        parts.append(f'<rect x="0" y="{bar_y}" width="{_num(up_w)}" height="{bar_h}" fill="{GOOD}"/>')
        parts.append(f'<rect x="{_num(up_w)}" y="{bar_y}" width="{_num(width - up_w)}" height="{bar_h}" fill="{BAD}"/>')
    parts.append(_svg_text(0, height - 6, f"▲ up {count(up)}", size=11, fill=GOOD))
    parts.append(_svg_text(width, height - 6, f"down {count(down)} ▼", anchor="end", size=11, fill=BAD))
    parts.append("</svg>")
    return "".join(parts)


def svg_heatmap(heatmap: Mapping[str, Any], *, width: int = 640) -> str:
    """Sessions by weekday and hour: darker is busier."""
    weekdays, grid = heatmap.get("weekdays", []), heatmap.get("sessions", [])
    left, top, cell_h = 36, 4, 16
    cell_w = (width - left) / 24
    height = top + cell_h * len(weekdays) + 18
    peak = max((v for row in grid for v in row), default=0)
    parts = [_svg_open(width, height, "Sessions by weekday and hour")]
    for d, name in enumerate(weekdays):
        y = top + d * cell_h
        parts.append(_svg_text(left - 6, y + 12, name, anchor="end", size=10))
        for h, value in enumerate(grid[d] if d < len(grid) else []):
            opacity = 0.08 + 0.92 * value / peak if peak and value else 0.04
            parts.append(
                f'<rect x="{_num(left + h * cell_w)}" y="{y}" width="{_num(cell_w - 1)}" height="{cell_h - 1}"'
                f' fill="{BLUE}" fill-opacity="{opacity:.2f}"><title>{escape(name)} {hour(h)}: '
                f"{plural(value, 'session')}</title></rect>"
            )
    for h in range(0, 24, 3):
        parts.append(_svg_text(left + h * cell_w, height - 4, f"{h:02d}", size=10))
    parts.append("</svg>")
    return "".join(parts)
