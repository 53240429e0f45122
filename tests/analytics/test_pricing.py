"""The price table: effective dates, patterns, operator overrides, unknown models."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from analytics import pricing


@pytest.fixture
def operator_prices(tmp_path: Path, settings):
    path = tmp_path / "prices.toml"
    settings.ANALYTICS_PRICES_FILE = path
    yield path
    settings.ANALYTICS_PRICES_FILE = None
    pricing.reload()


def test_shipped_table_prices_the_default_models_and_local_for_free() -> None:
    table = pricing.reload()
    assert table.price("openai", "gpt-4.1-mini", date(2026, 1, 1)) == (Decimal("0.4"), Decimal("1.6"), Decimal("0.1"))
    assert table.price("local", "local", date(2026, 1, 1)) == (Decimal(0), Decimal(0), Decimal(0))


def test_a_dated_snapshot_matches_its_pattern_and_the_longest_pattern_wins() -> None:
    table = pricing.reload()
    mini = table.price("openai", "gpt-4o-mini-2024-07-18", date(2025, 1, 1))
    assert mini == (Decimal("0.15"), Decimal("0.6"), Decimal("0.075"))  # gpt-4o-mini*, not gpt-4o*
    assert table.price("openai", "gpt-4o-2024-08-06", date(2025, 1, 1))[0] == Decimal("2.5")


def test_unknown_model_and_days_before_the_first_price_have_no_price() -> None:
    table = pricing.reload()
    assert table.price("openai", "llama3.1:8b", date(2026, 1, 1)) is None
    assert table.price("openai", "gpt-4.1-mini", date(2025, 4, 13)) is None  # priced from 2025-04-14
    assert table.price("anthropic", "gpt-4.1-mini", date(2026, 1, 1)) is None  # provider matters


def test_operator_file_adds_models_and_a_new_price_from_its_date(operator_prices: Path) -> None:
    operator_prices.write_text(
        """
[[price]]
provider = "openai"
model = "llama3.1:8b"
effective_from = 2026-01-01
input = 0.05
output = 0.08

[[price]]
provider = "openai"
model = "gpt-4.1-mini*"
effective_from = 2026-06-01
input = 0.30
output = 1.20
cached_input = 0.05
""",
        encoding="utf-8",
    )
    table = pricing.reload()
    # cached_input defaults to the input price when a row leaves it out.
    assert table.price("openai", "llama3.1:8b", date(2026, 2, 1)) == (Decimal("0.05"), Decimal("0.08"), Decimal("0.05"))
    assert table.price("openai", "gpt-4.1-mini", date(2026, 5, 31))[0] == Decimal("0.4")
    assert table.price("openai", "gpt-4.1-mini", date(2026, 6, 1))[0] == Decimal("0.3")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[price]]\nprovider = "x"\nmodel = "m"\ninput = 1\noutput = 1\n', "missing effective_from"),
        ('[[price]]\nprovider = "x"\nmodel = "m"\neffective_from = "2026"\ninput = 1\noutput = 1\n', "must be a date"),
        ('[[price]]\nprovider = "x"\nmodel = "m"\neffective_from = 2026-01-01\ninput = -1\noutput = 1\n',
         "non-negative"),
        ('[[price]]\nprovider = "x"\nmodel = "m"\neffective_from = 2026-01-01\ninput = 1\noutput = 1\nextra = 2\n',
         "unknown field(s) extra"),
        ("[[price]\n", "Price table"),
    ],
)  # fmt: skip
def test_bad_price_file_fails_with_file_and_entry_named(operator_prices: Path, text: str, message: str) -> None:
    operator_prices.write_text(text, encoding="utf-8")
    with pytest.raises(ImproperlyConfigured) as error:
        pricing.reload()
    assert message in str(error.value) and str(operator_prices) in str(error.value)
