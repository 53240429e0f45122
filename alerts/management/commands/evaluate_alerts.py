"""`python manage.py evaluate_alerts`: one pass over the alert rules (cron, tests, by hand)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from alerts import services


class Command(BaseCommand):
    help = (
        "Evaluate every active alert rule once: fire, resolve, and send the emails, Slack messages and "
        "webhooks. Safe beside running servers (a rule fires once)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        result = services.alerts_evaluate()
        skipped = sum(1 for outcome in result.outcomes if outcome.skipped)
        self.stdout.write(
            f"{len(result.outcomes)} rule(s) evaluated: {result.fired} fired, {result.resolved} resolved, "
            f"{skipped} skipped (evaluated just now elsewhere), {result.errors} failed."
        )
        if result.errors:
            raise SystemExit(1)
