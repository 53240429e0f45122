"""The metric registry, `METRICS`: every metric Parley reports, defined once.

A `Metric` carries its formula (over a period's `Totals`), its one-line definition, its unit,
its weekly report section and its dashboard card. `summarize`, the report's sections
(`report_sections`) and the dashboard's cards (`cards`, sent to the page by `definitions`) come
from it, so a metric added here reaches every surface; nothing else lists metrics.
"""

from __future__ import annotations

from collections.abc import Mapping

from analytics.metrics.formulas import (
    CSAT_MIN_SCORE,
    ENGAGED_MIN_USER_MESSAGES,
    PREDICTORS,
    confusion_matrix,
    percentile,
    rate,
    ratio,
)
from analytics.metrics.metric import SECTIONS, Metric, Section
from analytics.metrics.prediction import PREDICTOR_LABELS, accuracy_metrics
from analytics.metrics.totals import Totals, provider_failover_rate, provider_success_rate


def _finished(t: Totals) -> int:
    """Sessions whose resolution is decided: pending ones are left out of the resolution rates."""
    return t.resolved_confirmed + t.resolved_assumed + t.unresolved


def _rated_replies(t: Totals) -> int:
    return t.feedback_up + t.feedback_down


def _satisfied_ratings(t: Totals) -> int:
    return sum(count for score, count in t.rating_hist.items() if int(score) >= CSAT_MIN_SCORE)


def _scored_messages(t: Totals) -> int:
    return sum(t.message_sentiments.values())


def prediction_quality(totals: Totals) -> list[dict[str, object]]:
    """The confusion matrix and scores of each predictor over a period's totals, for every surface.

    The same registry metrics as `summarize` gives (`<predictor>_accuracy`, …), rounded as they
    are, beside the four cells and the sample size.
    """
    rows: list[dict[str, object]] = []
    for predictor in PREDICTORS:
        cells = confusion_matrix(totals.confusion, predictor)
        row: dict[str, object] = {"predictor": predictor, "label": PREDICTOR_LABELS[predictor], **cells}
        for score in ("accuracy", "precision", "recall", "f1"):
            key = f"{predictor}_{score}"
            row[score] = round_value(key, METRICS[key].value(totals))
        rows.append(row)
    return rows


# In report order within each section; `card` numbers give the dashboard's order.
_METRICS = [
    Metric(
        "sessions", "Sessions", "count", "Chat sessions started in the period.", True, True,
        formula="sessions", section="Sessions", card=2,
    ),
    Metric(
        "active_sessions", "Active sessions", "count",
        "Sessions started in the period that are still going: not ended and not idle past the idle window.", None, True,
        formula=lambda t: t.sessions - t.closed_sessions, section="Sessions",
    ),
    Metric(
        "closed_sessions", "Closed sessions", "count",
        "Sessions started in the period that the visitor ended or that went idle past the idle window.",
        formula="closed_sessions", section="Sessions",
    ),
    Metric(
        "live_sessions", "Live now", "count", "Open sessions with visitor activity in the last few minutes.", card=1
    ),
    Metric(
        "messages", "Messages", "count", "All messages in sessions started in the period.", True, True,
        formula="total_messages", section="Messages", card=3,
    ),
    Metric(
        "user_messages", "Visitor messages", "count", "Messages sent by visitors.",
        formula="user_messages", section="Messages",
    ),
    Metric(
        "assistant_messages", "Assistant messages", "count", "Replies written by the assistant, any status.",
        formula="assistant_messages", section="Messages",
    ),
    Metric(
        "messages_per_session", "Messages per session", "ratio", "Messages divided by sessions.", True, True,
        formula=lambda t: ratio(t.total_messages, t.sessions), section="Messages", card=4,
    ),
    Metric(
        "avg_response_time_ms", "Response time (avg)", "ms",
        "Mean time from a visitor message to the end of its reply, over finished replies.", False, True,
        formula=lambda t: ratio(t.response_ms_sum, t.replies_timed), section="Performance", card=5,
    ),
    Metric(
        "p50_response_time_ms", "Response time p50", "ms", "Median reply time (values rounded to 2 digits).", False,
        formula=lambda t: percentile(t.response_hist, 50), section="Performance",
    ),
    Metric(
        "p95_response_time_ms", "Response time p95", "ms",
        "95th percentile reply time: 95 % of replies finished within it (values rounded to 2 digits).", False, True,
        formula=lambda t: percentile(t.response_hist, 95), section="Performance", card=6,
    ),
    Metric(
        "p99_response_time_ms", "Response time p99", "ms", "99th percentile reply time (rounded to 2 digits).", False,
        formula=lambda t: percentile(t.response_hist, 99),
    ),
    Metric(
        "avg_ttft_ms", "Time to first token (avg)", "ms",
        "Mean time from a visitor message to the first text of its reply.", False, True,
        formula=lambda t: ratio(t.ttft_ms_sum, t.ttft_count), section="Performance", card=7,
    ),
    Metric(
        "p50_ttft_ms", "TTFT p50", "ms", "Median time to first token (rounded to 2 digits).", False,
        formula=lambda t: percentile(t.ttft_hist, 50),
    ),
    Metric(
        "p95_ttft_ms", "TTFT p95", "ms", "95th percentile time to first token (rounded to 2 digits).", False,
        formula=lambda t: percentile(t.ttft_hist, 95), section="Performance",
    ),
    Metric(
        "p99_ttft_ms", "TTFT p99", "ms", "99th percentile time to first token (rounded to 2 digits).", False,
        formula=lambda t: percentile(t.ttft_hist, 99),
    ),
    Metric(
        "resolution_rate", "Resolution rate", "percent",
        "Share of finished sessions that were resolved, confirmed by the visitor or assumed.", True, True,
        formula=lambda t: rate(t.resolved_confirmed + t.resolved_assumed, _finished(t)), section="Performance", card=13,
    ),
    Metric(
        "confirmed_resolution_rate", "Confirmed resolution rate", "percent",
        "Share of finished sessions the visitor said were resolved in the end-of-chat rating.", True,
        formula=lambda t: rate(t.resolved_confirmed, _finished(t)), section="Performance",
    ),
    Metric(
        "assumed_resolution_rate", "Assumed resolution rate", "percent",
        "Share of finished sessions that ended or went idle after an answer, with no escalation, "
        "no thumbs down and no unanswered question.", True,
        formula=lambda t: rate(t.resolved_assumed, _finished(t)), section="Performance",
    ),
    Metric(
        "escalation_rate", "Escalation rate", "percent", "Share of sessions handed to a human.", False, True,
        formula=lambda t: rate(t.escalated, t.sessions), section="Performance", card=14,
    ),
    Metric(
        "engagement_rate", "Engagement rate", "percent",
        f"Share of sessions in which the visitor sent at least {ENGAGED_MIN_USER_MESSAGES} messages.", True, True,
        formula=lambda t: rate(t.engaged_sessions, t.sessions), section="Performance", card=15,
    ),
    Metric(
        "avg_engagement_score", "Engagement score", "score",
        "Mean per-session engagement score, 0 to 100 (messages, actions, feedback, rating).", True,
        formula=lambda t: ratio(t.engagement_sum, t.sessions), section="Performance",
    ),
    Metric(
        "cache_hit_rate", "Cache hit rate", "percent", "Share of finished replies served from the response cache.",
        True, formula=lambda t: rate(t.cached_replies, t.replies_timed), section="Performance",
    ),
    Metric(
        "cached_replies", "Cached replies", "count",
        "Finished replies served from the response cache: they needed no provider call.",
        formula="cached_replies", section="Performance",
    ),
    Metric(
        "avg_rating", "Average rating", "rating", "Mean end-of-chat rating, 1 to 5.", True, True,
        formula=lambda t: ratio(t.rating_sum, t.ratings), section="Satisfaction", card=10,
    ),
    Metric("ratings", "Ratings", "count", "End-of-chat ratings given.", formula="ratings", section="Satisfaction"),
    Metric(
        "csat", "CSAT", "percent", "Share of end-of-chat ratings that are 4 or 5.", True, True,
        formula=lambda t: rate(_satisfied_ratings(t), t.ratings), section="Satisfaction", card=11,
    ),
    Metric(
        "ai_csat", "AI CSAT", "percent",
        "Share of finished sessions with no rating whose AI-predicted satisfaction is 4 or 5, over those that have "
        "a prediction; read it with its coverage.", True, True,
        formula=lambda t: rate(t.predicted_satisfied, t.predicted_sessions), section="Satisfaction", card=12,
        companion="ai_csat_coverage",
    ),
    Metric(
        "ai_csat_coverage", "AI CSAT coverage", "percent",
        "Share of finished sessions with no rating that have an AI-predicted satisfaction (the sessions AI CSAT "
        "speaks for).", True,
        formula=lambda t: rate(t.predicted_sessions, t.unrated_finished), section="Satisfaction",
    ),
    Metric(
        "predicted_satisfaction_avg", "Predicted satisfaction (avg)", "rating",
        "Mean AI-predicted satisfaction, 1 to 5, of finished sessions with no rating.", True,
        formula=lambda t: ratio(t.predicted_satisfaction_sum, t.predicted_sessions), section="Satisfaction",
    ),
    Metric(
        "thumbs_up", "Thumbs up", "count", "Replies rated thumbs up.", formula="feedback_up", section="Satisfaction"
    ),
    Metric(
        "thumbs_down", "Thumbs down", "count", "Replies rated thumbs down.",
        formula="feedback_down", section="Satisfaction",
    ),
    Metric(
        "rated_replies", "Rated replies", "count", "Assistant replies that got a thumbs up or down.",
        formula=_rated_replies, section="Satisfaction",
    ),
    Metric(
        "satisfaction_rate", "Satisfaction rate", "percent", "Share of rated replies that got a thumbs up.", True, True,
        formula=lambda t: rate(t.feedback_up, _rated_replies(t)), section="Satisfaction", card=8,
    ),
    Metric(
        "feedback_rate", "Feedback rate", "percent", "Share of assistant replies that got a thumbs up or down.",
        True, True,
        formula=lambda t: rate(_rated_replies(t), t.assistant_messages), section="Satisfaction", card=9,
    ),
    Metric(
        "feedback_session_rate", "Sessions with feedback", "percent",
        "Share of sessions in which the visitor gave at least one reply a thumbs up or down.", True,
        formula=lambda t: rate(t.sessions_with_feedback, t.sessions), section="Satisfaction",
    ),
    Metric(
        "avg_sentiment", "Visitor sentiment", "ratio",
        "Mean sentiment of the visitor messages that could be scored, each in its conversation's language by that "
        "language's lexicon, -1 (negative) to 1 (positive); messages in an uncovered language are left out.", True,
        formula=lambda t: ratio(t.sentiment_sum, t.sentiment_count), section="Conversation intelligence",
    ),
    Metric(
        "scored_messages", "Scored visitor messages", "count",
        "Visitor messages given a sentiment score (their language is covered by an offline lexicon).",
        formula=_scored_messages, section="Conversation intelligence",
    ),
    Metric(
        "negative_message_rate", "Negative messages", "percent",
        "Share of scored visitor messages whose sentiment is negative (-0.05 or below).", False,
        formula=lambda t: rate(t.message_sentiments.get("negative", 0), _scored_messages(t)),
        section="Conversation intelligence",
    ),
    Metric(
        "positive_message_rate", "Positive messages", "percent",
        "Share of scored visitor messages whose sentiment is positive (0.05 or above).", True,
        formula=lambda t: rate(t.message_sentiments.get("positive", 0), _scored_messages(t)),
        section="Conversation intelligence",
    ),
    Metric(
        "unscored_message_rate", "Unscored messages", "percent",
        "Share of visitor messages left without a sentiment score: their language has no offline lexicon.", False,
        formula=lambda t: rate(t.unscored_messages, _scored_messages(t) + t.unscored_messages),
        section="Conversation intelligence",
    ),
    Metric(
        "avg_opening_sentiment", "Opening sentiment (avg)", "ratio",
        "Mean sentiment of the first scored visitor message, over conversations with at least two scored.", True,
        formula=lambda t: ratio(t.opening_sentiment_sum, t.trajectory_sessions), section="Conversation intelligence",
    ),
    Metric(
        "avg_closing_sentiment", "Closing sentiment (avg)", "ratio",
        "Mean sentiment of the last scored visitor message, over conversations with at least two scored.", True,
        formula=lambda t: ratio(t.closing_sentiment_sum, t.trajectory_sessions), section="Conversation intelligence",
    ),
    Metric(
        "opened_negative_rate", "Opened negative", "percent",
        "Share of conversations with at least two scored visitor messages whose first one is negative.", False,
        formula=lambda t: rate(t.opened_negative, t.trajectory_sessions), section="Conversation intelligence",
    ),
    Metric(
        "recovered_rate", "Recovered", "percent",
        "Share of the conversations that opened negative whose last scored visitor message is positive.", True,
        formula=lambda t: rate(t.recovered, t.opened_negative), section="Conversation intelligence",
    ),
    Metric(
        "analyzed_sessions", "Analysed conversations", "count",
        "Sessions with an AI (or offline) conversation analysis.",
        formula="analyzed_sessions", section="Conversation intelligence",
    ),
    Metric(
        "analysis_coverage", "Analysis coverage", "percent", "Share of sessions that have a conversation analysis.",
        True, formula=lambda t: rate(t.analyzed_sessions, t.sessions), section="Conversation intelligence",
    ),
    Metric(
        "negative_conversation_rate", "Negative conversations", "percent",
        "Share of analysed conversations with a sentiment whose overall sentiment is negative.", False,
        formula=lambda t: rate(t.conversation_sentiments.get("negative", 0), sum(t.conversation_sentiments.values())),
        section="Conversation intelligence",
    ),
    Metric(
        "follow_up_sessions", "Need a follow-up", "count",
        "Analysed conversations the analysis says need a follow-up from a person.", False,
        formula="follow_up_sessions", section="Conversation intelligence",
    ),
    Metric(
        "handoff_rate", "Handoff rate", "percent",
        "Share of sessions in which the visitor asked for a person, whether one was available or not.", None, True,
        formula=lambda t: rate(t.handoff_sessions, t.sessions), section="Human support", card=18,
    ),
    Metric(
        "human_sessions", "Sessions with a person", "count", "Sessions a person claimed or wrote in.",
        formula="human_sessions", section="Human support",
    ),
    Metric(
        "agent_messages", "Agent messages", "count", "Messages written to visitors by people at the desk.",
        formula="agent_messages", section="Human support",
    ),
    Metric(
        "containment_rate", "Containment rate", "percent",
        "Share of finished sessions that were resolved with no person involved (none claimed or wrote in them).",
        True, True,
        formula=lambda t: rate(t.contained, _finished(t)), section="Human support", card=19,
    ),
    Metric(
        "avg_human_first_response_ms", "First human response (avg)", "duration",
        "Mean time from a visitor's request for a person to the first agent message, over answered requests.",
        False, True,
        formula=lambda t: ratio(t.human_first_response_ms_sum, t.human_first_response_count),
        section="Human support", card=20,
    ),
    Metric(
        "p50_human_first_response_ms", "First human response p50", "duration",
        "Median time from a request for a person to the first agent message (values rounded to 2 digits).", False,
        formula=lambda t: percentile(t.human_first_response_hist, 50), section="Human support",
    ),
    Metric(
        "p90_human_first_response_ms", "First human response p90", "duration",
        "90th percentile time from a request for a person to the first agent message (values rounded to 2 digits).",
        False,
        formula=lambda t: percentile(t.human_first_response_hist, 90), section="Human support",
    ),
    Metric(
        "avg_agent_response_ms", "Agent response time", "duration",
        "Per conversation, the mean time from each agent message back to the latest visitor message before it; "
        "then the mean over conversations.", False, True,
        formula=lambda t: ratio(t.agent_response_ms_sum, t.agent_response_sessions), section="Human support", card=21,
    ),
    Metric(
        "avg_human_resolution_ms", "Human resolution time", "duration",
        "Mean time from a visitor's request for a person to the agent marking it resolved.", False, True,
        formula=lambda t: ratio(t.human_resolution_ms_sum, t.human_resolution_count), section="Human support",
        card=22,
    ),
    Metric(
        "fcr_rate", "First-contact resolution", "percent",
        "Share of finished sessions of identified visitors that were resolved, by the assistant or a person, "
        "with no new session from that visitor within FCR_WINDOW_DAYS (7 days by default).", True, True,
        formula=lambda t: rate(t.fcr_resolved, t.fcr_sessions), section="Human support", card=23,
    ),
    Metric(
        "waiting_now", "Waiting for a person", "count", "Visitors waiting for a person right now.", False, card=16
    ),
    Metric(
        "longest_wait_ms", "Longest wait now", "duration",
        "How long the visitor who has waited longest for a person right now has been waiting.", False, card=17,
    ),
    Metric(
        "tokens", "Tokens", "tokens", "Input plus output tokens of every provider call.", None, True,
        formula=lambda t: t.input_tokens + t.output_tokens, section="AI usage and cost", card=26,
    ),
    Metric(
        "input_tokens", "Input tokens", "tokens", "Prompt tokens of every provider call, cached included.",
        formula="input_tokens", section="AI usage and cost",
    ),
    Metric(
        "output_tokens", "Output tokens", "tokens", "Generated tokens of every provider call.",
        formula="output_tokens", section="AI usage and cost",
    ),
    Metric(
        "cost_usd", "AI cost", "usd",
        "Price-table cost of every priced provider call; calls of unpriced models are counted apart.", False, True,
        formula=lambda t: float(t.cost_usd), section="AI usage and cost", card=24,
    ),
    Metric(
        "cost_per_session", "Cost per session", "usd", "AI cost divided by sessions.", False, True,
        formula=lambda t: ratio(float(t.cost_usd), t.sessions), section="AI usage and cost", card=25,
    ),
    Metric(
        "price_unknown_calls", "Unpriced calls", "count", "Calls that used tokens of a model with no price.",
        formula="price_unknown_calls", section="AI usage and cost",
    ),
    Metric(
        "provider_calls", "Provider calls", "count",
        "Calls to AI providers: every attempt, retries, failures and calls skipped by the circuit breaker included.",
        formula="calls", section="AI usage and cost",
    ),
    Metric(
        "failed_provider_calls", "Failed provider calls", "count",
        "Provider calls attempted (not skipped) that did not answer: errors, and replies broken off mid-stream.",
        False, formula=lambda t: t.calls_attempted - t.calls_ok, section="AI usage and cost",
    ),
    Metric(
        "avg_provider_latency_ms", "Provider call time (avg)", "ms",
        "Mean time from the start of a provider call to its end, over the calls that recorded one (failed ones "
        "included).", False,
        formula=lambda t: ratio(t.call_latency_ms_sum, t.call_latency_count), section="AI usage and cost",
    ),
    Metric(
        "provider_success_rate", "Provider success rate", "percent",
        "Share of provider calls attempted (not skipped by the circuit breaker) that answered.", True, True,
        formula=lambda t: provider_success_rate(ok=t.calls_ok, attempted=t.calls_attempted),
        section="AI usage and cost", card=27,
    ),
    Metric(
        "failover_rate", "Failover rate", "percent",
        "Share of provider calls after which another provider had to take over.", False, True,
        formula=lambda t: provider_failover_rate(failed_over=t.calls_failed_over, attempted=t.calls_attempted),
        section="AI usage and cost", card=28,
    ),
    Metric(
        "failovers", "Failovers", "count", "Times a reply moved to the next provider.",
        formula="failovers", section="AI usage and cost",
    ),
    *accuracy_metrics(),
]  # fmt: skip
#: The registry, by key. Every surface below reads it when it runs, never a copy of its own.
METRICS: dict[str, Metric] = {metric.key: metric for metric in _METRICS}


def headline() -> list[str]:
    """The keys of the headline metrics: their change versus the previous period is shown."""
    return [metric.key for metric in METRICS.values() if metric.headline]


#: `headline()` at import, for callers that want a constant.
HEADLINE = headline()
#: Metrics read live rather than over a period (no formula): the dashboard's snapshot and socket
#: frames carry their current values under `live` (`selectors.live_numbers`).
LIVE: tuple[str, ...] = ("live_sessions", "waiting_now", "longest_wait_ms")


def summarize(totals: Totals) -> dict[str, float | int | None]:
    """Every metric of `METRICS` that has a formula, for one period's totals."""
    return {key: metric.value(totals) for key, metric in METRICS.items() if metric.formula is not None}


def report_sections() -> list[tuple[Section, list[str]]]:
    """The weekly report's sections and the keys of their metrics, in order."""
    return [(title, [key for key, metric in METRICS.items() if metric.section == title]) for title in SECTIONS]


def cards() -> list[str]:
    """The keys of the dashboard's headline cards, in the order they are shown."""
    numbered = [(metric.card, key) for key, metric in METRICS.items() if metric.card is not None]
    return [key for _, key in sorted(numbered)]


def definitions() -> dict[str, dict[str, object]]:
    """The registry as JSON for the dashboard and `api/definitions/`: cards come from it, in order."""
    return {
        key: {
            "label": metric.label,
            "unit": metric.unit,
            "definition": metric.definition,
            "higher_is_better": metric.higher_is_better,
            "headline": metric.headline,
            "section": metric.section,
            "card": metric.card,
            "companion": metric.companion,
            "live": key in LIVE,
        }
        for key, metric in METRICS.items()
    }


BREAKDOWN_DEFINITIONS = {
    "prediction_quality": "How right the AI is: per predictor (predicted satisfaction, predicted resolution, the "
    "assumed-resolution rule), the confusion matrix against what visitors answered (tp, fp, fn, tn; positive = "
    "satisfied / resolved), the sample size n and accuracy, precision, recall and F1 in %.",
    "sentiment": "Visitor messages per sentiment label (negative, neutral, positive, unscored: an uncovered "
    "language), and analysed conversations per overall sentiment.",
    "sources": "The period's key numbers side by side per source (widget, api, import:<format>): sessions, "
    "messages, CSAT, AI CSAT and its coverage, resolution, first-contact resolution, agent response time, "
    "sentiment, negative conversations, recovered, and the top topics; each column equals the dashboard "
    "filtered to that source.",
    "languages": "Sessions per visitor language (ISO 639-1, detected on the visitor's text; blank when unknown).",
    "top_topics": "Topics of the period's sessions: knowledge sections the replies used and taxonomy keywords.",
    "common_issues": "Topics of the period's unresolved sessions.",
    "user_types": "Sessions by the kind of visitor the site identified (anonymous when not identified).",
    "peak_hours": "Sessions started in each hour of the day (and weekday), in the server's time zone.",
    "providers": "Provider calls, success and failover rates, tokens and cost per provider.",
    "models": "Tokens and cost per provider model; unpriced models are flagged, never shown as $0.",
    "agents": "Per person at the desk: the conversations they held last, the mean first response and resolution "
    "time of the requests among them, and the CSAT of their conversations.",
}


def top(counts: Mapping[str, int], limit: int = 10) -> list[tuple[str, int]]:
    """The `limit` largest entries, ties broken by name so that output is stable."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]


def round_value(key: str, value: float | int | None) -> float | int | None:
    """The precision a metric is shown and exported with (2 decimals; 6 for money)."""
    if value is None or isinstance(value, int):
        return value
    unit = METRICS[key].unit if key in METRICS else "ratio"
    if unit == "usd":
        return round(value, 6)
    if unit in {"ms", "duration", "count", "tokens"}:
        return round(value, 1)
    return round(value, 2)
