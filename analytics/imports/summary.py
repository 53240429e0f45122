"""An import's account of itself: what was created, updated, left alone, dropped and skipped, and why."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from analytics.imports.records import Problem

#: Skipped records listed by place in the summary (the counts cover all of them).
EXAMPLES = 10


@dataclass(slots=True)
class Summary:
    """Counts of one import; `as_dict` is what ImportRun.summary, the page and the API show."""

    format: str
    dry_run: bool = False
    conversations: int = 0  # read from the file and valid (before the date filter)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    outside_dates: int = 0
    messages: int = 0  # stored (or, on a dry run, that would be) in created and updated conversations
    autoresponses: int = 0
    duplicates: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, str]] = field(default_factory=list)
    stopped: str = ""  # why the rest of the file was not read (broken JSON), if it was not
    days: int = 0  # local days whose rollups were rebuilt
    bytes_read: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # write (read + write), returns, rollups

    def skip(self, problem: Problem) -> None:
        """Count a skipped record, keeping the first few as examples."""
        self.skipped[problem.reason] += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append({"reason": problem.reason, "where": problem.where, "detail": problem.detail})
        if problem.fatal:
            self.stopped = f"{problem.where}: {problem.detail}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready counts."""
        return {
            "format": self.format,
            "dry_run": self.dry_run,
            "conversations": {
                "read": self.conversations,
                "created": self.created,
                "updated": self.updated,
                "unchanged": self.unchanged,
                "outside_dates": self.outside_dates,
            },
            "messages": self.messages,
            "dropped": {"autoresponses": self.autoresponses, "duplicates": self.duplicates},
            "skipped": dict(sorted(self.skipped.items())),
            "skipped_total": sum(self.skipped.values()),
            "examples": list(self.examples),
            "stopped": self.stopped,
            "rollup_days": self.days,
            "bytes_read": self.bytes_read,
            "seconds": dict(self.seconds),
        }

    def lines(self) -> list[str]:
        """The summary as text (the command prints it)."""
        verb = "would be" if self.dry_run else ""
        out = [
            f"Conversations: {self.conversations} read; {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.outside_dates} outside the dates{' (dry run)' if self.dry_run else ''}",
            f"Messages {verb or 'stored'}{' stored' if verb else ''}: {self.messages}; dropped: "
            f"{self.autoresponses} autoresponses, {self.duplicates} duplicates",
        ]
        total = sum(self.skipped.values())
        if total:
            reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(self.skipped.items()))
            out.append(f"Skipped: {total} ({reasons})")
            out += [f"  {item['where']}: {item['reason']}: {item['detail']}" for item in self.examples]
        else:
            out.append("Skipped: 0")
        if self.stopped:
            out.append(f"Stopped early: {self.stopped}")
        if not self.dry_run:
            out.append(f"Rollups rebuilt for {self.days} day(s)")
        if self.seconds:
            out.append("Seconds: " + ", ".join(f"{name} {value:.1f}" for name, value in self.seconds.items()))
        return out
