"""`python manage.py recover_chat_analytics`: rebuild analytics of sessions whose tracker died."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from analytics import services


class Command(BaseCommand):
    help = (
        "Rebuild ChatAnalytics from the message table for sessions whose row is missing or behind "
        "(a server killed mid-conversation), mark orphaned streaming replies interrupted, and "
        "refresh the daily rollups. The server also runs this every ANALYTICS_RECOVERY_INTERVAL_S."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--all", action="store_true", help="Rebuild every session (after editing the topic taxonomy)."
        )
        parser.add_argument(
            "--grace",
            type=int,
            default=None,
            help="Leave sessions active in the last N seconds to their live tracker "
            "(default: ANALYTICS_RECOVERY_GRACE_S; 0 rebuilds them too). Sessions last served by a "
            "dead server process are rebuilt whatever N is.",
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        grace = settings.ANALYTICS_RECOVERY_GRACE_S if options["grace"] is None else max(0, options["grace"])
        if options["all"]:
            from analytics import taxonomy

            taxonomy.reload()
        bar = tqdm(total=0, unit="session", disable=options["no_progress"], file=self.stderr._out)

        def total(count: int) -> None:
            bar.reset(total=count)

        result = services.analytics_recover(
            grace=timedelta(seconds=grace),
            idle=timedelta(minutes=settings.RESOLUTION_IDLE_MINUTES),
            all_sessions=options["all"],
            progress=bar.update,
            total=total,
        )
        bar.close()
        days = services.rollups_refresh()
        replies = "reply" if result.orphaned_replies == 1 else "replies"
        self.stdout.write(
            f"Rebuilt {result.sessions} session(s); marked {result.orphaned_replies} orphaned {replies} "
            f"interrupted; refreshed {len(days)} day(s) of rollups."
        )
