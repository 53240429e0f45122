"""How right the AI is: accuracy, precision, recall, F1 and sample size of each predictor, as
registry metrics over a period's confusion counts (`Totals.confusion`, "predictor.tp": n).

`registry` lists these metrics (section "How right the AI is") and builds the confusion-matrix
breakdown (`prediction_quality`) from the same formulas.
"""

from __future__ import annotations

from analytics.metrics.formulas import (
    CSAT_MIN_SCORE,
    PREDICTORS,
    accuracy,
    confusion_matrix,
    f1,
    precision,
    recall,
)
from analytics.metrics.metric import Formula, Metric, Section
from analytics.metrics.totals import Totals

#: The report section and registry group of these metrics (one of `metric.SECTIONS`).
SECTION: Section = "How right the AI is"
#: Each predictor checked against the visitor's answer: its name on every surface, and what it compares.
PREDICTOR_LABELS: dict[str, str] = {
    "satisfaction": "Predicted satisfaction",
    "resolution": "Predicted resolution",
    "assumed_rule": "Assumed-resolution rule",
}
PREDICTOR_DEFINITIONS: dict[str, str] = {
    "satisfaction": f"the analysis's predicted satisfaction ({CSAT_MIN_SCORE} or 5 = satisfied) against the visitor's "
    f"rating ({CSAT_MIN_SCORE} or 5 = satisfied), over rated sessions that have a prediction",
    "resolution": "the analysis's predicted resolved against the visitor's answer to \"was it resolved?\", over "
    "sessions with both",
    "assumed_rule": "the assumed-resolution rule's own verdict (answered, no escalation, no thumbs down, no "
    'unanswered question) against the visitor\'s answer to "was it resolved?", over finished sessions with both',
}


def _scores(predictor: str) -> dict[str, Formula]:
    """The formulas of one predictor's scores over a period's confusion counts."""

    def cells(t: Totals) -> dict[str, int]:
        return confusion_matrix(t.confusion, predictor)

    return {
        "accuracy": lambda t: accuracy(**{k: v for k, v in cells(t).items() if k != "n"}),
        "precision": lambda t: precision(tp=cells(t)["tp"], fp=cells(t)["fp"]),
        "recall": lambda t: recall(tp=cells(t)["tp"], fn=cells(t)["fn"]),
        "f1": lambda t: f1(tp=cells(t)["tp"], fp=cells(t)["fp"], fn=cells(t)["fn"]),
        "checked": lambda t: cells(t)["n"],
    }


def accuracy_metrics() -> list[Metric]:
    """Accuracy, precision, recall, F1 and sample size of each predictor (`PREDICTORS`)."""
    out = []
    for predictor in PREDICTORS:
        name, compares = PREDICTOR_LABELS[predictor], PREDICTOR_DEFINITIONS[predictor]
        formulas = _scores(predictor)
        texts = {
            "accuracy": ("accuracy", "percent", f"Share of checks that were right: {compares}."),
            "precision": ("precision", "percent", "Of the sessions it called satisfied/resolved, the share the visitor "
                          f"agreed with; no data when it called none: {compares}."),
            "recall": ("recall", "percent", "Of the sessions the visitor called satisfied/resolved, the share it "
                       f"found; no data when there were none: {compares}."),
            "f1": ("F1", "percent", f"Harmonic mean of precision and recall; no data when either is: {compares}."),
            "checked": ("checked", "count", f"Sample size of the check: {compares}."),
        }  # fmt: skip
        for score, (word, unit, definition) in texts.items():
            better = None if score == "checked" else True
            key, title = f"{predictor}_{score}", f"{name}: {word}"
            out.append(Metric(key, title, unit, definition, better, formula=formulas[score], section=SECTION))
    return out
