"""`Metric`, the one shape every registry entry has, and the weekly report's sections.

Apart from `registry` so that groups of metrics built in their own module (`accuracy`) can
make `Metric`s without importing the registry that lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from analytics.metrics.formulas import Unit
from analytics.metrics.totals import Totals

Section = Literal[
    "Sessions", "Messages", "Performance", "Satisfaction", "Conversation intelligence", "How right the AI is",
    "Human support", "AI usage and cost",
]  # fmt: skip
#: The weekly report's metric sections, in order (`Metric.section` names one).
SECTIONS: tuple[Section, ...] = (
    "Sessions", "Messages", "Performance", "Satisfaction", "Conversation intelligence", "How right the AI is",
    "Human support", "AI usage and cost",
)  # fmt: skip

#: A metric's formula over a period's totals.
Formula = Callable[[Totals], float | int | None]


@dataclass(frozen=True, slots=True)
class Metric:
    """A metric and everything a surface needs to show it, so that a new metric is added once.

    `formula` computes it from a period's `Totals`, or names the `Totals` field it is; None
    leaves it out of `summarize`: such a metric is read live (`LIVE`), not over a period. `section` is the weekly report
    section that lists it (None: not in the report), in registry order. `card` is the position
    of its headline card on the dashboard (None: no card). Every surface shows `label` and
    formats the value by `unit`; `higher_is_better` colours a change (None: neither).
    `companion` names a metric shown under this one's card (AI CSAT's coverage): a number that
    must never be read without the other.
    """

    key: str
    label: str
    unit: Unit
    definition: str
    higher_is_better: bool | None = None
    headline: bool = False
    formula: Formula | str | None = None
    section: Section | None = None
    card: int | None = None
    companion: str | None = None

    def value(self, totals: Totals) -> float | int | None:
        """The metric over `totals`; None without a formula, or for a rate over nothing."""
        if self.formula is None:
            return None
        if isinstance(self.formula, str):
            return getattr(totals, self.formula)  # type: ignore[no-any-return]
        return self.formula(totals)
