"""Analytics reads: period summaries, breakdowns and series, all from the daily rollups.

The weekly report, the dashboard, its JSON API and the exports call these and nothing else, so
they print the same numbers. Formulas live in `metrics`; this package only picks rows and sums.

- `base`: `Period` and `Filters`, the period's rollup rows (stored, or rolled up on the fly for a
  window or one visitor) and their sums (`period_totals`, `summary`);
- `numbers`: breakdowns (topics, user types, hours, providers, models, sentiment, how right the
  AI is), the daily series, AI usage, and the weekly report's data;
- `dashboard`: live numbers, the dashboard's tables and snapshot, a session's transcript.

Periods are whole local days (`TIME_ZONE`), `start` to `end` inclusive. Filters: `user_type`
narrows the session numbers; `provider` narrows both session numbers (by the provider that
answered most of a session's replies) and provider calls. Token and cost numbers are not split
by user type (provider calls are rolled up per provider and model only). `source` (both rollups
are kept per source) narrows sessions and their calls; so does `external_user_id` (one visitor),
which no rollup is kept by: it is rolled up on the fly from that visitor's rows, like a window.
"""

from __future__ import annotations

from analytics.selectors.base import (
    PROVIDER_ROLLUP_FIELDS,
    SESSION_ROLLUP_FIELDS,
    SUMMARY_ROLLUP_FIELDS,
    WEEKDAYS,
    Filters,
    Period,
    period_totals,
    summary,
)
from analytics.selectors.dashboard import (
    SESSION_ROW_FIELDS,
    live_numbers,
    live_sessions,
    session_analytics,
    snapshot,
    table_sizes,
    tables,
    transcript,
)
from analytics.selectors.numbers import (
    agent_table,
    breakdowns,
    cost_trend,
    daily_series,
    feature_usage,
    models_usage,
    provider_totals,
    providers,
    report,
)

__all__ = [
    "PROVIDER_ROLLUP_FIELDS",
    "SESSION_ROLLUP_FIELDS",
    "SESSION_ROW_FIELDS",
    "SUMMARY_ROLLUP_FIELDS",
    "WEEKDAYS",
    "Filters",
    "Period",
    "agent_table",
    "breakdowns",
    "cost_trend",
    "daily_series",
    "feature_usage",
    "live_numbers",
    "live_sessions",
    "models_usage",
    "period_totals",
    "provider_totals",
    "providers",
    "report",
    "session_analytics",
    "snapshot",
    "summary",
    "table_sizes",
    "tables",
    "transcript",
]
