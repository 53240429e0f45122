"""Every metric Parley reports, defined once: the `METRICS` registry and the formulas it uses.

- `formulas`: the small formulas (rates, histograms, percentiles, resolution, cost, change, the
  times of human support);
- `totals`: `Totals`, the sums over a period's rollup rows that the formulas read;
- `registry`: `Metric` and `METRICS`, each metric's formula, one-line definition, unit, report
  section and dashboard card, and what surfaces ask of it (`summarize`, `report_sections`,
  `cards`, `definitions`).

The dashboard, the JSON API, the CSV exports and the weekly report all take their numbers from
`summarize` (over a period's `Totals`) and their per-session numbers from these formulas. A rate
whose denominator is zero is `None`, shown as "no data": an empty week is not 0 %.
"""

from __future__ import annotations

from analytics.metrics.formulas import (
    CSAT_MIN_SCORE,
    ENGAGED_MIN_USER_MESSAGES,
    FLAT_CHANGE_PCT,
    Direction,
    Unit,
    agent_response_times,
    call_cost,
    change,
    engagement_score,
    exact_percentile,
    histogram,
    histogram_bucket,
    is_engaged,
    is_resolved_at_first_contact,
    mean,
    merge_histograms,
    milliseconds,
    percentile,
    rate,
    ratio,
    resolution,
)
from analytics.metrics.registry import (
    BREAKDOWN_DEFINITIONS,
    HEADLINE,
    LIVE,
    METRICS,
    SECTIONS,
    Formula,
    Metric,
    Section,
    cards,
    definitions,
    headline,
    report_sections,
    round_value,
    summarize,
    top,
)
from analytics.metrics.totals import Totals, provider_failover_rate, provider_success_rate

__all__ = [
    "BREAKDOWN_DEFINITIONS",
    "CSAT_MIN_SCORE",
    "ENGAGED_MIN_USER_MESSAGES",
    "FLAT_CHANGE_PCT",
    "HEADLINE",
    "LIVE",
    "METRICS",
    "SECTIONS",
    "Direction",
    "Formula",
    "Metric",
    "Section",
    "Totals",
    "Unit",
    "agent_response_times",
    "call_cost",
    "cards",
    "change",
    "definitions",
    "engagement_score",
    "exact_percentile",
    "headline",
    "histogram",
    "histogram_bucket",
    "is_engaged",
    "is_resolved_at_first_contact",
    "mean",
    "merge_histograms",
    "milliseconds",
    "percentile",
    "provider_failover_rate",
    "provider_success_rate",
    "rate",
    "ratio",
    "report_sections",
    "resolution",
    "round_value",
    "summarize",
    "top",
]
