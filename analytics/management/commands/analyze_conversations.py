"""`manage.py analyze_conversations [--since --until --source --force --limit]`.

Analyses finished conversations whose analysis is missing or stale (another ANALYSIS_VERSION,
or messages written since), ANALYSIS_CONCURRENCY at a time, with the model when a cloud
provider is configured and offline otherwise; then refreshes the rollups. See docs/intelligence.md.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm

from analytics import services as analytics_services
from analytics.intelligence import runner, selectors
from assistant.providers.registry import close_chain


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"not a date (YYYY-MM-DD): {value!r}") from None


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


class Command(BaseCommand):
    help = "Analyse finished conversations (sentiment, predicted satisfaction, resolution, topics, summary)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", type=_day, help="Conversations started on or after this day (YYYY-MM-DD).")
        parser.add_argument("--until", type=_day, help="Conversations started on or before this day (YYYY-MM-DD).")
        parser.add_argument("--source", default="", help="Only this source (widget, api, import:fb-grouped…).")
        parser.add_argument("--force", action="store_true", help="Analyse again even when nothing changed.")
        parser.add_argument("--limit", type=int, default=None, help="At most this many conversations.")
        parser.add_argument("--concurrency", type=int, default=None, help="Default: ANALYSIS_CONCURRENCY.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        since, until = options["since"], options["until"]
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError("--limit: at least 1")
        if options["concurrency"] is not None and not 1 <= options["concurrency"] <= 64:
            raise CommandError("--concurrency: 1 to 64")
        if since and until and until < since:
            raise CommandError("--until is before --since")
        finished = selectors.finished_sessions(
            since=_start_of(since) if since else None,
            until=_start_of(until + timedelta(days=1)) if until else None,
            source=options["source"],
        )
        stale = selectors.needing_analysis(finished, force=options["force"]).order_by("pk")
        pks = list(
            stale.values_list("pk", flat=True)[: options["limit"]]
            if options["limit"]
            else stale.values_list("pk", flat=True)
        )
        current = finished.count() - len(pks) if not options["limit"] else 0
        bar = tqdm(total=len(pks), unit="conv", file=sys.stderr, disable=options["no_progress"] or not pks)
        summary = asyncio.run(self._run(pks, force=options["force"], concurrency=options["concurrency"], bar=bar))
        bar.close()
        days = analytics_services.rollups_refresh()
        self.stdout.write(
            f"Analysed {summary.llm + summary.offline} conversation(s): {summary.llm} by the model, "
            f"{summary.offline} offline; {summary.skipped + current} skipped (unchanged); {summary.failed} failed; "
            f"{summary.calls} provider call(s); {len(days)} rollup day(s) refreshed."
        )

    @staticmethod
    async def _run(pks: list[int], *, force: bool, concurrency: int | None, bar: tqdm) -> runner.Summary:
        try:
            return await runner.analyse_many(pks, force=force, concurrency=concurrency, progress=lambda _: bar.update())
        finally:
            await close_chain()
