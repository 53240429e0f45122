"""The offline analysis: what can be said of a conversation with no model at all.

* language: py3langid on the visitor's text (`analytics.sentiment.detect`), the session's
  locale when the text is too short to tell;
* sentiment: the visitor's messages scored with the lexicon of that language, or no sentiment
  at all when no lexicon covers it (never an English score of foreign text);
* topics: the operator's taxonomy (`analytics.taxonomy`);
* predicted satisfaction, resolution, follow-up, summary: none. A lexicon cannot tell whether
  the problem was solved, and an invented number would count in AI CSAT as if it were one.

Conversation sentiment is *opening-weighted*: visitor message i (0 = the first scored one)
weighs 2^-i, so the opening counts as much as everything after it together. A plain mean let
the closing "thanks" of a complaint pull it up to neutral or positive (the issue's finding:
fewer than half of real complaint conversations came out negative); with these weights a
complaint that opened at -0.6 and closed with "thanks, bye" (+0.44) stays negative (-0.25).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from analytics import sentiment, taxonomy
from analytics.intelligence.transcript import Line
from analytics.sentiment.language import MIN_CHARS

DETECTOR = "detector:py3langid"


@dataclass(slots=True)
class Result:
    """What one analysis concluded, and which method produced each value."""

    language: str = ""
    sentiment: float | None = None
    predicted_satisfaction: int | None = None
    predicted_resolved: bool | None = None
    topics: list[str] = field(default_factory=list)
    new_topics: list[str] = field(default_factory=list)
    summary: str = ""
    needs_follow_up: bool | None = None
    methods: dict[str, str] = field(default_factory=dict)

    @property
    def sentiment_label(self) -> str:
        """The label at `analytics.sentiment.label`'s thresholds (the same everywhere)."""
        return sentiment.label(self.sentiment)


def opening_weighted(scores: list[float]) -> float | None:
    """Weighted mean of message scores, message i weighing 2^-i; None for no scores."""
    if not scores:
        return None
    weights = [0.5**index for index in range(len(scores))]
    return round(sum(w * s for w, s in zip(weights, scores, strict=True)) / sum(weights), 4)


def language_of(lines: list[Line], locale: str) -> tuple[str, str]:
    """The conversation's language and the method that found it (detector, locale or none)."""
    visitor = " ".join(line.text for line in lines if line.role == "user")
    code = sentiment.detect(visitor, hint=locale)
    if not code:
        return "", "none"
    if sum(1 for char in visitor if char.isalpha()) < MIN_CHARS:
        return code, "locale"
    return code, DETECTOR


def analyse(lines: list[Line], *, locale: str = "") -> Result:
    """The offline result for a conversation (visitor messages are the ones scored)."""
    language, language_method = language_of(lines, locale)
    visitor = [line.text for line in lines if line.role == "user"]
    scores = [value for text in visitor if (value := sentiment.score(text, language)) is not None]
    score = opening_weighted(scores)
    rules = taxonomy.get()
    topics: list[str] = []
    for text in visitor:
        topics += [name for name in rules.topics_of(text) if name not in topics]
    lexicon = sentiment.lexicon_name(language)
    return Result(
        language=language,
        sentiment=score,
        topics=topics,
        methods={
            "language": language_method,
            "sentiment": f"lexicon:{lexicon}" if score is not None and lexicon else "none",
            "topics": "taxonomy",
            "predicted_satisfaction": "none",
            "predicted_resolved": "none",
            "summary": "none",
            "needs_follow_up": "none",
        },
    )
