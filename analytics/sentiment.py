"""Visitor-message sentiment with VADER, an offline lexicon analyzer (vaderSentiment).

VADER needs no model download and scores a short message in tens of microseconds, so it runs
inline in the tracker. Its compound score runs from -1 (most negative) to 1 (most positive).
A later issue adds LLM-based analysis; this stays as the offline default.
"""

from __future__ import annotations

import functools

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

#: VADER is tuned for short social-media text; longer messages are scored on their start.
MAX_CHARS = 2000


@functools.cache
def _analyzer() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


def score(text: str) -> float:
    """The VADER compound score of `text`, -1 to 1."""
    return float(_analyzer().polarity_scores(text[:MAX_CHARS])["compound"])
