"""`python manage.py rollup_analytics`: rebuild the daily rollups from the per-session rows."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from analytics import services


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"expected a date like 2026-01-31, got {value!r}") from None


class Command(BaseCommand):
    help = (
        "Recompute the daily session and provider rollups. The server keeps them current "
        "incrementally; run this after changing the price table, the time zone or past data."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", help="First day to rebuild (YYYY-MM-DD; default: all).")
        parser.add_argument("--until", help="Last day to rebuild (YYYY-MM-DD; default: all).")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        start = _date(options["since"]) if options["since"] else None
        end = _date(options["until"]) if options["until"] else None
        if start and end and start > end:
            raise CommandError(f"--since {start} is after --until {end}")
        from analytics import pricing

        pricing.reload()
        with tqdm(unit="day", disable=options["no_progress"], file=self.stderr._out) as bar:
            days = services.rollups_rebuild(start=start, end=end, progress=bar.update)
        span = f" ({days[0]} to {days[-1]})" if days else ""
        self.stdout.write(f"Rebuilt the rollups of {len(days)} day(s){span}.")
