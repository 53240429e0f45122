"""How the report prints a number: the one Python formatter of metric values, by unit.

The dashboard's counterpart is `formatUnit` in static/analytics/common.js. Values arrive at the
precision the data carries (`metrics.round_value`, applied by the selectors), so every format
prints the numbers the JSON has. `None` is "no data", never 0; a cost that leaves out unpriced
calls says "price unknown", never $0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from analytics.metrics import METRICS, Unit

NO_DATA = "no data"
PRICE_UNKNOWN = "price unknown"
ARROWS = {"up": "▲", "down": "▼", "flat": "→"}

#: Cost metrics that leave out unpriced calls: shown with a "price unknown" note when there are any.
_PRICED_ONLY = {"cost_usd", "cost_per_session"}


def number(value: float, decimals: int = 2) -> str:
    """A number with thousands separators and at most `decimals` decimals, trailing zeros cut."""
    if isinstance(value, int):
        return f"{value:,}"  # exact, however large
    text = f"{value:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def format_usd(value: float) -> str:
    """Dollars: cents from $1 up, up to 6 decimals below, so a $0.000825 week is not "$0.00"."""
    if value == 0 or abs(value) >= 1:
        return f"${value:,.2f}"
    text = f"{value:.6f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"${whole}.{decimals.ljust(2, '0')}"


def format_unit(unit: Unit | str, value: float | None) -> str:
    """A value in `unit` ("1,550 ms", "33.33%", "$0.000825", "3.5 / 5"), or "no data" for None."""
    if value is None:
        return NO_DATA
    if unit in {"count", "tokens"}:
        return number(value, 0) if float(value).is_integer() else number(value)
    if unit == "ms":
        return f"{number(value, 1)} ms"
    if unit == "duration":
        return format_duration(value)
    if unit == "percent":
        return f"{number(value)}%"
    if unit == "usd":
        return format_usd(value)
    if unit == "rating":
        return f"{number(value)} / 5"
    if unit == "score":
        return f"{number(value)} / 100"
    return number(value)


def format_duration(value_ms: float) -> str:
    """A human wait in milliseconds, as people read it: "850 ms", "42.5 s", "4 min 05 s", "2 h 07 min"."""
    if value_ms < 1000:
        return f"{number(value_ms, 0)} ms"
    seconds = value_ms / 1000
    if seconds < 60:
        return f"{number(seconds, 1)} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60:,} h {minutes % 60:02d} min"


def unit_of(key: str) -> Unit:
    """A metric's unit; a key outside the registry is a plain ratio."""
    return METRICS[key].unit if key in METRICS else "ratio"


def format_value(key: str, value: float | None) -> str:
    """A metric's value in its unit, or "no data" for None."""
    return format_unit(unit_of(key), value)


def count(value: float) -> str:
    """A count: "1,234"."""
    return format_unit("count", value)


def plural(value: int, noun: str) -> str:
    """A count and its noun: "1 session", "2 sessions"."""
    return f"{count(value)} {noun}{'' if value == 1 else 's'}"


def hour(value: int) -> str:
    """An hour of the day: "09:00"."""
    return f"{value:02d}:00"


def format_change(change: Mapping[str, Any] | None) -> str:
    """A week-over-week change: "▲ +20%", "▼ -3.5%", "→ +0.2%", "▲ new" (from 0), or "no data"."""
    if not change or change.get("direction") is None:
        return NO_DATA
    direction = change["direction"]
    pct = change.get("pct")
    if pct is None:
        # metrics.change gives no % when the previous value was 0.
        return f"{ARROWS['flat']} no change" if direction == "flat" else f"{ARROWS[direction]} new"
    return f"{ARROWS[direction]} {'+' if pct > 0 else ''}{number(pct, 1)}%"


def change_tone(key: str, change: Mapping[str, Any] | None) -> Literal["good", "bad", "neutral"]:
    """Whether a change is good or bad news, from the metric's `higher_is_better`."""
    better = METRICS[key].higher_is_better if key in METRICS else None
    direction = (change or {}).get("direction")
    if better is None or direction not in {"up", "down"}:
        return "neutral"
    return "good" if (direction == "up") == better else "bad"


def label(key: str) -> str:
    """A metric's human name."""
    return METRICS[key].label if key in METRICS else key.replace("_", " ").capitalize()


def unpriced_note(calls: int) -> str:
    """The note on a cost that leaves out unpriced calls: "price unknown for 3 calls"."""
    return f"{PRICE_UNKNOWN} for {plural(calls, 'call')}"


def cost_with_unknown(cost: float | None, unpriced_calls: int) -> str:
    """A cost that may leave out unpriced calls: "$1.20", "$1.20 + price unknown for 3 calls", "price unknown"."""
    if cost is None or (unpriced_calls and cost == 0):
        return PRICE_UNKNOWN
    if unpriced_calls:
        return f"{format_usd(cost)} + {unpriced_note(unpriced_calls)}"
    return format_usd(cost)


def metric_display(data: Mapping[str, Any], key: str) -> str:
    """A metric's value as shown in the report, with the "price unknown" note on costs."""
    value = data["metrics"].get(key)
    unpriced = data["metrics"].get("price_unknown_calls") or 0
    if key in _PRICED_ONLY and unpriced and value is not None:
        if value == 0:
            return f"{PRICE_UNKNOWN} ({plural(unpriced, 'unpriced call')})"
        return f"{format_value(key, value)} + {unpriced_note(unpriced)}"
    return format_value(key, value)


def row_cost(row: Mapping[str, Any]) -> str:
    """A provider or model row's cost: of priced calls only, so unpriced calls are named, never $0.

    `selectors.models_usage` gives a model with no price `cost_usd` None; `selectors.providers`
    gives the priced calls' cost and counts the others in `price_unknown_calls`.
    """
    return cost_with_unknown(row.get("cost_usd"), row.get("price_unknown_calls") or 0)
