"""Every metric Parley reports, defined once: the `METRICS` registry and the formulas it uses.

- `formulas`: the small formulas (rates, histograms, percentiles, resolution, cost, change, the
  times of human support);
- `totals`: `Totals`, the sums over a period's rollup rows that the formulas read;
- `metric`: `Metric`, the shape of a registry entry, and the report's `SECTIONS`;
- `prediction`: how right the AI is (accuracy, precision, recall, F1 per predictor) as metrics;
- `registry`: `METRICS`, each metric's formula, one-line definition, unit, report
  section and dashboard card, and what surfaces ask of it (`summarize`, `report_sections`,
  `cards`, `definitions`).

The dashboard, the JSON API, the CSV exports and the weekly report all take their numbers from
`summarize` (over a period's `Totals`) and their per-session numbers from these formulas. A rate
whose denominator is zero is `None`, shown as "no data": an empty week is not 0 %.
"""

from __future__ import annotations

from analytics.metrics.formulas import (
    CONFUSION_CELLS,
    CSAT_MIN_SCORE,
    ENGAGED_MIN_USER_MESSAGES,
    FLAT_CHANGE_PCT,
    PREDICTORS,
    Direction,
    Unit,
    accuracy,
    agent_response_times,
    call_cost,
    change,
    closed_positive,
    confusion_cell,
    confusion_matrix,
    engagement_score,
    exact_percentile,
    f1,
    histogram,
    histogram_bucket,
    is_engaged,
    is_resolved_at_first_contact,
    is_satisfied,
    mean,
    merge_histograms,
    milliseconds,
    opened_negative,
    percentile,
    precision,
    rate,
    ratio,
    recall,
    resolution,
)
from analytics.metrics.metric import SECTIONS, Formula, Metric, Section
from analytics.metrics.registry import (
    BREAKDOWN_DEFINITIONS,
    HEADLINE,
    LIVE,
    METRICS,
    PREDICTOR_LABELS,
    cards,
    definitions,
    headline,
    prediction_quality,
    report_sections,
    round_value,
    summarize,
    top,
)
from analytics.metrics.totals import Totals, provider_failover_rate, provider_success_rate

__all__ = [
    "BREAKDOWN_DEFINITIONS",
    "CONFUSION_CELLS",
    "CSAT_MIN_SCORE",
    "ENGAGED_MIN_USER_MESSAGES",
    "FLAT_CHANGE_PCT",
    "HEADLINE",
    "LIVE",
    "METRICS",
    "PREDICTORS",
    "PREDICTOR_LABELS",
    "SECTIONS",
    "Direction",
    "Formula",
    "Metric",
    "Section",
    "Totals",
    "Unit",
    "accuracy",
    "agent_response_times",
    "call_cost",
    "cards",
    "change",
    "closed_positive",
    "confusion_cell",
    "confusion_matrix",
    "definitions",
    "engagement_score",
    "exact_percentile",
    "f1",
    "headline",
    "histogram",
    "histogram_bucket",
    "is_engaged",
    "is_resolved_at_first_contact",
    "is_satisfied",
    "mean",
    "merge_histograms",
    "milliseconds",
    "opened_negative",
    "percentile",
    "precision",
    "prediction_quality",
    "provider_failover_rate",
    "provider_success_rate",
    "rate",
    "ratio",
    "recall",
    "report_sections",
    "resolution",
    "round_value",
    "summarize",
    "top",
]
