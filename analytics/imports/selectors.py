"""Reads of the import pages: the latest runs."""

from __future__ import annotations

from typing import Any

from analytics.models import ImportRun


def recent_runs(limit: int = 20) -> list[dict[str, Any]]:
    """The latest imports, newest first, with who started them (the upload page lists them)."""
    return list(
        ImportRun.objects.order_by("-started_at", "-pk").values(
            "pk",
            "format",
            "filename",
            "via",
            "dry_run",
            "status",
            "summary",
            "started_at",
            "finished_at",
            "started_by__username",
        )[:limit]
    )
