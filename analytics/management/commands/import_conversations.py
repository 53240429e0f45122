"""`python manage.py import_conversations FILE`: import past chats (docs/import.md)."""

from __future__ import annotations

import os
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from analytics import imports

HEAD_BYTES = 4096


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"not a date (YYYY-MM-DD): {value[:40]!r}") from None


class Command(BaseCommand):
    help = (
        "Import past conversations from PowerPulse's Facebook export (fb-grouped), jsonl or csv. "
        "Re-importing a file changes only the conversations that changed; bad records are reported "
        "and skipped (--strict stops at the first, writing nothing). See docs/import.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The file to import.")
        parser.add_argument(
            "--format",
            choices=imports.FORMATS,
            help="The file's format (default: from its extension, .json/.jsonl/.csv, or its first bytes).",
        )
        parser.add_argument(
            "--start-date", type=_day, help="Only conversations whose first message is on or after this local day."
        )
        parser.add_argument(
            "--end-date", type=_day, help="Only conversations whose first message is on or before this local day."
        )
        parser.add_argument("--force", action="store_true", help="Rewrite every conversation, changed or not.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Read and compare everything, write nothing; print the summary."
        )
        parser.add_argument(
            "--strict", action="store_true", help="Stop at the first bad record and write nothing (one transaction)."
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        path: str = options["file"]
        if options["start_date"] and options["end_date"] and options["start_date"] > options["end_date"]:
            raise CommandError("--start-date is after --end-date.")
        try:
            stream = open(path, "rb")  # noqa: SIM115 (closed in the finally below)
        except OSError as error:
            raise CommandError(f"cannot open {path}: {error.strerror}") from None
        try:
            format_name = options["format"] or imports.guess_format(path, stream.read(HEAD_BYTES))
            stream.seek(0)
            if format_name is None:
                raise CommandError(f"cannot tell the format of {path}: give --format ({', '.join(imports.FORMATS)}).")
            size = os.fstat(stream.fileno()).st_size
            bar = tqdm(
                total=size,
                unit="B",
                unit_scale=True,
                desc="Importing",
                disable=options["no_progress"],
                file=self.stderr._out,
            )
            run_options = imports.ImportOptions(
                format=format_name,
                filename=os.path.basename(path),
                via="command",
                start_date=options["start_date"],
                end_date=options["end_date"],
                force=options["force"],
                dry_run=options["dry_run"],
                strict=options["strict"],
                background=True,
            )
            try:
                result = imports.import_stream(stream, run_options, progress=bar.update)
            except imports.ImportAborted as aborted:
                raise CommandError(f"--strict: stopped at {aborted}; nothing was written.") from None
            finally:
                bar.close()
        finally:
            stream.close()
        for line in result.summary.lines():
            self.stdout.write(line)
        self.stdout.write(f"Import run {result.run_id}{' (dry run: nothing written)' if options['dry_run'] else ''}.")
