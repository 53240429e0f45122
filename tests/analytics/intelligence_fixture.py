"""A hand-computed fixture for sentiment, trajectory, AI CSAT and how right the AI is.

One day, 2026-05-06 (UTC, `TIME_ZONE=UTC`), reported as the 7 days ending that day. "Now" is
21:00; the idle window is 30 minutes, so every session but P1 is finished.

Rated sessions R1-R10: one neutral visitor message ("I ordered a blue chair last week, reference
NNN."), then a reply that is complete (the assumed rule says resolved) or failed (it says not).
Each has a rating, a "resolved?" answer (or none) and an analysis:

    session rating resolved  reply     predicted  pred. resolved  sat.  resolution  assumed rule
    R1      5      yes       complete  5          yes             tp    tp          tp
    R2      4      yes       complete  4          yes             tp    tp          tp
    R3      5      -         complete  5          yes             tp    -           -
    R4      2      no        complete  4          yes             fp    fp          fp
    R5      4      yes       failed    3          no              fn    fn          fn
    R6      5      yes       complete  2          -               fn    -           tp
    R7      1      no        failed    1          no              tn    tn          tn
    R8      2      no        complete  2          no              tn    tn          fp
    R9      3      -         failed    3          no              tn    -           -
    R10     1      no        failed    1          yes             tn    fp          tn

  satisfaction tp 3 fp 1 fn 2 tn 4 (n 10): accuracy 7/10 = 70 %, precision 3/4 = 75 %,
    recall 3/5 = 60 %, F1 6/9 = 66.67 %;
  resolution tp 2 fp 2 fn 1 tn 2 (n 7): accuracy 4/7 = 57.14 %, precision 2/4 = 50 %, recall 2/3 =
    66.67 %, F1 4/7 = 57.14 %;
  assumed_rule tp 3 fp 2 fn 1 tn 2 (n 8): accuracy 5/8 = 62.5 %, precision 3/5 = 60 %, recall 3/4 =
    75 %, F1 6/9 = 66.67 %.
CSAT: ratings 5 4 5 2 4 5 1 2 3 1, five are 4 or 5 → 50 %; average 32 / 10 = 3.2.

Unrated sessions, each answered (complete reply), finished:
  T1  "This is terrible, I am very angry." then "Thank you so much, that was great help!": opens
      negative, closes positive (recovered). Analysis: predicted 5, positive.
  T2  "This is awful and broken." then "Still broken, this is terrible.": opens and closes
      negative. Analysis: predicted 4, negative.
  T3  "Hello, I love this product, it is great." then "Thanks, wonderful!": positive throughout.
      Analysis: predicted 2, neutral.
  J   Japanese (locale ja), two messages: no offline lexicon covers Japanese, so both unscored.
      No analysis.
  U5  "When does my parcel arrive at the depot?" (neutral). Analysis with no prediction and no
      sentiment label (as the offline analyser gives an uncovered case).
Pending: P1, started at 20:55 and still going, a neutral message; analysis predicted 5, neutral:
  not finished, so not in AI CSAT.

AI CSAT: finished unrated T1 T2 T3 J U5 = 5; with a prediction T1 T2 T3 = 3 (coverage 60 %);
  predicted 4-5: T1 T2 → 2 / 3 = 66.67 %; predicted average (5 + 4 + 2) / 3 = 3.67.
Messages: scored R1-R10 10 neutral, T1 neg+pos, T2 neg+neg, T3 pos+pos, U5 and P1 neutral →
  negative 3, neutral 12, positive 3 (18 scored); unscored 2 (J). Negative 3/18 = 16.67 %,
  positive 16.67 %, unscored 2/20 = 10 %.
Trajectory (two or more scored messages): T1 T2 T3 = 3; opened negative T1 T2 = 2 (66.67 %);
  recovered T1 = 1 of 2 = 50 %.
Analyses: R1-R10, T1-T3, U5, P1 = 15 of 16 sessions (93.75 %). Labels: negative R4 R7 R10 T2 = 4,
  positive R1 R2 R3 T1 = 4, neutral R5 R6 R8 R9 T3 P1 = 6 (14 labelled; U5 has none) → negative
  conversations 4/14 = 28.57 %. Follow-up: R4, R7 = 2. Topic "loyalty card" only in the analyses of
  R1 and R2 → 2 sessions in the top topics.
Languages: ja 1 (J), en 15.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import time_machine

from analytics import services
from analytics.models import ConversationAnalysis
from analytics.selectors import Period
from assistant.models import ChatSession, SessionRating
from tests.analytics.conftest import _message, _session

DAY = date(2026, 5, 6)
NOW = datetime(2026, 5, 6, 21, 0, tzinfo=UTC)
PERIOD = Period.ending(DAY, 7)

NEUTRAL = "I ordered a blue chair last week, reference {n}."
#: (name, rating, resolved, reply complete, predicted satisfaction, predicted resolved, label, follow-up)
RATED = [
    ("R1", 5, True, True, 5, True, "positive", False),
    ("R2", 4, True, True, 4, True, "positive", False),
    ("R3", 5, None, True, 5, True, "positive", False),
    ("R4", 2, False, True, 4, True, "negative", True),
    ("R5", 4, True, False, 3, False, "neutral", False),
    ("R6", 5, True, True, 2, None, "neutral", False),
    ("R7", 1, False, False, 1, False, "negative", True),
    ("R8", 2, False, True, 2, False, "neutral", False),
    ("R9", 3, None, False, 3, False, "neutral", False),
    ("R10", 1, False, False, 1, True, "negative", False),
]
TRAJECTORIES = {
    "T1": ("This is terrible, I am very angry.", "Thank you so much, that was great help!"),
    "T2": ("This is awful and broken.", "Still broken, this is terrible."),
    "T3": ("Hello, I love this product, it is great.", "Thanks, wonderful!"),
}
JAPANESE = ("注文した商品がまだ届いていません。どうなっていますか？", "返金をお願いできますか？")

EXPECTED: dict[str, Any] = {
    "sessions": 16,
    "ratings": 10,
    "csat": 50.0,
    "avg_rating": 3.2,
    "ai_csat": 66.67,
    "ai_csat_coverage": 60.0,
    "predicted_satisfaction_avg": 3.67,
    "scored_messages": 18,
    "negative_message_rate": 16.67,
    "positive_message_rate": 16.67,
    "unscored_message_rate": 10.0,
    "opened_negative_rate": 66.67,
    "recovered_rate": 50.0,
    "analyzed_sessions": 15,
    "analysis_coverage": 93.75,
    "negative_conversation_rate": 28.57,
    "follow_up_sessions": 2,
    "satisfaction_accuracy": 70.0,
    "satisfaction_precision": 75.0,
    "satisfaction_recall": 60.0,
    "satisfaction_f1": 66.67,
    "satisfaction_checked": 10,
    "resolution_accuracy": 57.14,
    "resolution_precision": 50.0,
    "resolution_recall": 66.67,
    "resolution_f1": 57.14,
    "resolution_checked": 7,
    "assumed_rule_accuracy": 62.5,
    "assumed_rule_precision": 60.0,
    "assumed_rule_recall": 75.0,
    "assumed_rule_f1": 66.67,
    "assumed_rule_checked": 8,
}
EXPECTED_QUALITY = [
    {"predictor": "satisfaction", "label": "Predicted satisfaction", "tp": 3, "fp": 1, "fn": 2, "tn": 4, "n": 10,
     "accuracy": 70.0, "precision": 75.0, "recall": 60.0, "f1": 66.67},
    {"predictor": "resolution", "label": "Predicted resolution", "tp": 2, "fp": 2, "fn": 1, "tn": 2, "n": 7,
     "accuracy": 57.14, "precision": 50.0, "recall": 66.67, "f1": 57.14},
    {"predictor": "assumed_rule", "label": "Assumed-resolution rule", "tp": 3, "fp": 2, "fn": 1, "tn": 2, "n": 8,
     "accuracy": 62.5, "precision": 60.0, "recall": 75.0, "f1": 66.67},
]  # fmt: skip
EXPECTED_SENTIMENT = {
    "messages": {"negative": 3, "neutral": 12, "positive": 3, "unscored": 2},
    "conversations": {"negative": 4, "neutral": 6, "positive": 4},
}
EXPECTED_LANGUAGES = [{"language": "en", "sessions": 15}, {"language": "ja", "sessions": 1}]


def _analysis(session: ChatSession, **fields: Any) -> None:
    ConversationAnalysis.objects.create(
        session=session, content_hash="0" * 64, version="test", method="llm", provider="openai", model="m",
        analyzed_at=NOW, **fields,
    )  # fmt: skip


def _conversation(name: str, at: datetime, texts: tuple[str, ...], *, complete: bool = True, locale: str = "en"):
    session = _session(at)
    ChatSession.objects.filter(pk=session.pk).update(locale=locale)
    seq = 0
    for index, text in enumerate(texts):
        when = at + timedelta(minutes=2 * index)
        seq += 1
        _message(session, seq, "user", when, text=text)
        seq += 1
        status = {} if complete else {"status": "failed", "error_code": "provider_unavailable"}
        reply = "Here is the answer." if complete else ""
        _message(session, seq, "assistant", when + timedelta(seconds=5), text=reply, provider="openai",
                 model="gpt-4.1-mini", ttft_ms=100, duration_ms=900 if complete else None, **status)  # fmt: skip
    session.refresh_from_db()
    return session


def build_intelligence_day() -> dict[str, ChatSession]:
    """Create the docstring's sessions, ratings and analyses, then the analytics rows and rollups as of NOW."""
    sessions: dict[str, ChatSession] = {}
    start = datetime(2026, 5, 6, 8, 0, tzinfo=UTC)
    for index, (name, score, resolved, complete, predicted, predicted_resolved, label, follow) in enumerate(RATED):
        at = start + timedelta(minutes=20 * index)
        session = _conversation(name, at, (NEUTRAL.format(n=100 + index),), complete=complete)
        with time_machine.travel(at + timedelta(minutes=1), tick=False):
            SessionRating.objects.create(session=session, score=score, resolved=resolved)
        _analysis(session, predicted_satisfaction=predicted, predicted_resolved=predicted_resolved,
                  sentiment_label=label, needs_follow_up=follow,
                  topics=["loyalty card"] if name in {"R1", "R2"} else [])  # fmt: skip
        sessions[name] = session
    later = datetime(2026, 5, 6, 14, 0, tzinfo=UTC)
    predictions = {"T1": (5, "positive"), "T2": (4, "negative"), "T3": (2, "neutral")}
    for index, (name, texts) in enumerate(TRAJECTORIES.items()):
        session = _conversation(name, later + timedelta(minutes=20 * index), texts)
        predicted, label = predictions[name]
        _analysis(session, predicted_satisfaction=predicted, sentiment_label=label, needs_follow_up=False)
        sessions[name] = session
    sessions["J"] = _conversation("J", later + timedelta(hours=2), JAPANESE, locale="ja")
    sessions["U5"] = _conversation("U5", later + timedelta(hours=3), ("When does my parcel arrive at the depot?",))
    _analysis(sessions["U5"], predicted_satisfaction=None, sentiment_label="", needs_follow_up=None)
    sessions["P1"] = _conversation("P1", NOW - timedelta(minutes=5), (NEUTRAL.format(n=999),))
    _analysis(sessions["P1"], predicted_satisfaction=5, sentiment_label="neutral", needs_follow_up=False)
    with time_machine.travel(NOW, tick=False):
        services.analytics_recover(grace=timedelta(0), idle=timedelta(minutes=30), all_sessions=True)
        services.rollups_rebuild()
    return sessions
