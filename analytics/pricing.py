"""The AI price table: USD per million tokens, per provider and model, with effective dates.

The shipped table (`analytics/data/prices.toml`) is read first, then the operator's
ANALYTICS_PRICES_FILE, whose entries replace shipped ones with the same provider, model and
date. A model with no price gives None: callers report it as "price unknown", never as $0.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

SHIPPED = Path(__file__).resolve().parent / "data" / "prices.toml"

Price = tuple[Decimal, Decimal, Decimal]  # input, output, cached input; per million tokens


@dataclass(frozen=True, slots=True)
class Entry:
    """One row of the table."""

    provider: str
    model: str
    effective_from: date
    price: Price

    def matches(self, provider: str, model: str) -> bool:
        """Whether this entry prices `model` of `provider` (exact, or prefix for `name*`)."""
        if self.provider != provider:
            return False
        if self.model.endswith("*"):
            return model.startswith(self.model[:-1])
        return model == self.model

    @property
    def specificity(self) -> tuple[int, int]:
        """Exact names beat patterns; longer patterns beat shorter ones."""
        return (0 if self.model.endswith("*") else 1, len(self.model))


def _decimal(value: object, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ImproperlyConfigured(f"{where}: prices must be non-negative numbers, got {value!r}")
    return Decimal(str(value))


def parse(path: Path) -> list[Entry]:
    """The entries of one price file; errors name the file, the entry and the problem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ImproperlyConfigured(f"Price table {path}: {exc}") from None
    entries = []
    for number, item in enumerate(data.get("price") or [], start=1):
        where = f"Price table {path}, [[price]] #{number}"
        missing = {"provider", "model", "effective_from", "input", "output"} - set(item)
        if missing:
            raise ImproperlyConfigured(f"{where}: missing {', '.join(sorted(missing))}")
        if not isinstance(item["effective_from"], date):
            raise ImproperlyConfigured(f"{where}: effective_from must be a date like 2025-01-31")
        unknown = set(item) - {"provider", "model", "effective_from", "input", "output", "cached_input"}
        if unknown:
            raise ImproperlyConfigured(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        input_price = _decimal(item["input"], where)
        entries.append(
            Entry(
                provider=str(item["provider"]),
                model=str(item["model"]),
                effective_from=item["effective_from"],
                price=(
                    input_price,
                    _decimal(item["output"], where),
                    _decimal(item.get("cached_input", item["input"]), where),
                ),
            )
        )
    return entries


class PriceTable:
    """Look up the price of a model on a day."""

    def __init__(self, entries: list[Entry]) -> None:
        merged: dict[tuple[str, str, date], Entry] = {}
        for entry in entries:  # later files replace earlier entries with the same key
            merged[(entry.provider, entry.model, entry.effective_from)] = entry
        self.entries = sorted(merged.values(), key=lambda e: (e.provider, e.model, e.effective_from))

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one table per process, lives as long as it
    def price(self, provider: str, model: str, day: date) -> Price | None:
        """The price in effect for `model` of `provider` on `day`, or None when there is none."""
        candidates = [e for e in self.entries if e.matches(provider, model) and e.effective_from <= day]
        if not candidates:
            return None
        best = max(candidates, key=lambda e: (e.specificity, e.effective_from))
        return best.price


@functools.cache
def table() -> PriceTable:
    """The shipped table plus the operator's file, if any."""
    entries = parse(SHIPPED)
    if settings.ANALYTICS_PRICES_FILE is not None:
        entries += parse(settings.ANALYTICS_PRICES_FILE)
    return PriceTable(entries)


def reload() -> PriceTable:
    """Forget the cached table and read the files again."""
    table.cache_clear()
    return table()
