"""`python manage.py seed_demo_data`: fill an empty database with a realistic chat history.

An adapter: options, the refusal on a non-empty database, progress bars. The history itself is
generated and written by `analytics.demo` (see its docstring for what it looks like).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm

from analytics import selectors, services
from analytics.demo import BATCH_SESSIONS, REFUSED_EXIT_STATUS, Batch, Catalogue, Generator, Writer, analyze


# --- the command ----------------------------------------------------------------------------
def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Fill an empty database with a realistic demo chat history (sessions, messages, provider calls, "
        "feedback, ratings, events) over the last --days days, then build its analytics and rollups. "
        "Deterministic for a given --seed. Refuses (exit status 3) when chat sessions exist, unless --append."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sessions", type=_positive, default=500, help="Sessions to create (default 500).")
        parser.add_argument("--days", type=_positive, default=30, help="Spread them over this many days (default 30).")
        parser.add_argument("--seed", type=int, default=1, help="Random seed: same seed, same history (default 1).")
        parser.add_argument(
            "--now",
            type=datetime.fromisoformat,
            default=None,
            help="Pretend it is this time (ISO 8601) for a reproducible history; default: now.",
        )
        parser.add_argument(
            "--append", action="store_true", help="Add demo sessions even though the database has chat sessions."
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bars.")

    def handle(self, *args: Any, **options: Any) -> None:
        now = options["now"] or timezone.now()
        if timezone.is_naive(now):
            now = timezone.make_aware(now)
        if now > timezone.now() + timedelta(minutes=1):
            raise CommandError(f"--now {now.isoformat()} is in the future: demo chats cannot have happened yet.")
        existing = selectors.table_sizes()["sessions"]
        if existing and not options["append"]:
            raise CommandError(
                f"The database already has {existing:,} chat session(s); seed_demo_data only fills an empty "
                "database, so that demo conversations never mix with real ones. Use --append to add demo data "
                "anyway, or point DATABASE_URL (or SQLITE_PATH) at an empty database.",
                returncode=REFUSED_EXIT_STATUS,
            )
        quiet = options["no_progress"]
        started = time.monotonic()

        catalogue = Catalogue()
        generator = Generator(seed=options["seed"], days=options["days"], now=now, catalogue=catalogue)
        starts = generator.start_times(options["sessions"])
        writer = Writer()
        with self._bar(len(starts), "sessions", quiet) as bar:
            for offset in range(0, len(starts), BATCH_SESSIONS):
                batch = Batch()
                for start in starts[offset : offset + BATCH_SESSIONS]:
                    generator.session(start, batch)
                writer.write(batch)
                bar.update(len(batch.sessions))
        analyze()
        seeded = time.monotonic()

        with self._bar(0, "sessions analysed", quiet) as bar:
            services.analytics_recover(
                grace=timedelta(0),
                idle=timedelta(minutes=settings.RESOLUTION_IDLE_MINUTES),
                all_sessions=not existing,
                batch=1000,
                progress=bar.update,
                total=lambda count: bar.reset(total=count),
            )
        analysed = time.monotonic()
        with self._bar(options["days"] + 1, "rollup days", quiet) as bar:
            days = services.rollups_rebuild(progress=bar.update)
        analyze()
        done = time.monotonic()

        counts = writer.counts
        sizes = selectors.table_sizes()
        self.stdout.write(
            f"Seeded {counts.sessions:,} sessions, {counts.messages:,} messages, {counts.calls:,} provider calls, "
            f"{counts.feedback:,} feedback, {counts.ratings:,} ratings, {counts.events:,} events; "
            f"{sizes['analytics']:,} analytics rows, {sizes['rollups']:,} session "
            f"rollup rows over {len(days)} days in {done - started:.1f} s (rows {seeded - started:.1f} s, "
            f"analytics {analysed - seeded:.1f} s, rollups {done - analysed:.1f} s)."
        )

    def _bar(self, total: int, unit: str, quiet: bool) -> tqdm:
        return tqdm(total=total, unit=f" {unit}", disable=quiet, file=self.stderr._out)
