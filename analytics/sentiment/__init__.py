"""Language-aware sentiment of visitor messages, offline: detect the language, then score with
that language's lexicon, or not at all.

English is scored with VADER (vaderSentiment); Spanish, French, German and Portuguese with the
hand-written lexicons of `analytics/sentiment/lexicons/`, run through VADER's engine
(`lexicons.py`; `COVERED` lists them all). A language no lexicon covers gets no score
(`None`), never an English-lexicon score of foreign words: VADER reads most Spanish or German
as neutral and the odd English-looking word as a strong signal.

The language is a conversation's property rather than a message's: short messages ("ok",
"thanks") say nothing reliable about their language, so callers detect on the visitor's text
so far and pass the session's locale as a hint (`detect`).

Scores run from -1 (most negative) to 1 (most positive), VADER's compound scale;
`label` cuts them at VADER's own thresholds (±0.05).
"""

from __future__ import annotations

import functools

from analytics.sentiment import lexicons
from analytics.sentiment.language import detect, normalize

__all__ = ["COVERED", "NEGATIVE_MAX", "POSITIVE_MIN", "detect", "label", "lexicon_name", "normalize", "score"]

#: VADER is tuned for short social-media text; longer messages are scored on their start.
MAX_CHARS = 2000
#: VADER's own cut-offs for a negative and a positive compound score.
NEGATIVE_MAX = -0.05
POSITIVE_MIN = 0.05

#: ISO 639-1 codes of the languages the offline lexicons score.
COVERED: frozenset[str] = frozenset({"en", *lexicons.RULES})


@functools.cache
def _vader() -> object:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def score(text: str, language: str = "en") -> float | None:
    """The compound score of `text` in `language`, -1 to 1; None when no lexicon covers it."""
    if language not in COVERED:
        return None
    if language != "en":
        return lexicons.score(text[:MAX_CHARS], language)
    return float(_vader().polarity_scores(text[:MAX_CHARS])["compound"])  # type: ignore[attr-defined]


def lexicon_name(language: str) -> str:
    """The name of the lexicon that scores `language` ("vader-en", "parley-es"…); "" if none."""
    if language not in COVERED:
        return ""
    return "vader-en" if language == "en" else f"parley-{language}"


def label(value: float | None) -> str:
    """negative, neutral or positive; "" for no score."""
    if value is None:
        return ""
    if value <= NEGATIVE_MAX:
        return "negative"
    if value >= POSITIVE_MIN:
        return "positive"
    return "neutral"
