"""`python manage.py generate_chat_weekly_report`: the chat report of the last N days, printed, saved or emailed.

An adapter: it checks the options, brings the rollups up to date, reads `selectors.report()` and
hands it to `analytics.reports` to render. No number is computed here.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email
from django.utils import timezone
from tqdm import tqdm

from analytics import reports, selectors, services
from analytics.params import SOURCE_PATTERN, USER_TYPES

#: Longest report: a year, leap day included.
MAX_DAYS = 366
#: Above this many days the rollups of the whole range are recomputed day by day, with a progress bar.
LONG_RANGE_DAYS = 31
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_RELATIVE_DAYS = {"today": 0, "yesterday": 1}
#: What `--format json` and `--format markdown` attach to the email (the body is always text).
_ATTACHMENTS = {"json": ("json", "application/json"), "markdown": ("md", "text/markdown")}


def parse_end_date(value: str, *, today: date) -> date:
    """A YYYY-MM-DD date, `today` or `yesterday` (in TIME_ZONE), else a CommandError naming --end-date.

    `yesterday` is what a Monday-morning schedule wants (the week that just ended) and saves
    crontabs from computing the date with `date`, in the system's time zone rather than TIME_ZONE.
    """
    if value in _RELATIVE_DAYS:
        return today - timedelta(days=_RELATIVE_DAYS[value])
    try:
        if not _DATE.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"--end-date must be a date in the format YYYY-MM-DD (like 2026-01-31), today or yesterday; got {value!r}"
        ) from None


def parse_recipients(values: list[str] | None) -> list[str]:
    """The addresses of repeated and comma-separated --email options, each checked, duplicates dropped."""
    recipients: list[str] = []
    for value in values or []:
        for address in (part.strip() for part in value.split(",")):
            if not address:
                continue
            try:
                validate_email(address)
            except ValidationError:
                raise CommandError(f"--email: {address!r} is not a valid email address") from None
            if address not in recipients:
                recipients.append(address)
    if values and not recipients:
        raise CommandError("--email: no address given")
    return recipients


def check_output(value: str | None) -> Path | None:
    """The --output path, refused up front (before any work) when its directory does not exist."""
    if value is None:
        return None
    path = Path(value).expanduser()
    if path.is_dir():
        raise CommandError(f"--output {value!r} is a directory; give a file name")
    if not path.parent.is_dir():
        raise CommandError(f"--output: directory {str(path.parent)!r} does not exist")
    return path


class Command(BaseCommand):
    help = (
        "Write the chat report of the last --days days (default 7) ending --end-date (default today, "
        "in TIME_ZONE): sessions, messages, performance, satisfaction, topics, issues, user types, "
        "peak hours, AI usage and cost, with the change from the period before. Prints it, saves it "
        "(--output) and/or emails it (--email, through Django's EMAIL_BACKEND)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=7, help=f"Days in the report, 1 to {MAX_DAYS} (default 7).")
        parser.add_argument(
            "--end-date",
            metavar="DATE",
            help="Last day of the report: YYYY-MM-DD, today or yesterday (in TIME_ZONE; default: today, so far).",
        )
        parser.add_argument(
            "--format", choices=reports.FORMATS, default="text", help="text (default), json, markdown or html."
        )
        parser.add_argument("--output", metavar="FILE", help="Write the report to FILE instead of standard output.")
        parser.add_argument(
            "--email",
            metavar="ADDR",
            action="append",
            help="Email the report to ADDR (repeat the option or separate addresses with commas).",
        )
        parser.add_argument("--user-type", choices=USER_TYPES, help="Only sessions of this user type.")
        parser.add_argument("--provider", help="Only sessions mostly answered by, and calls to, this AI provider.")
        parser.add_argument(
            "--source", help="Only sessions from this source (widget, api, import:<format>) and their calls."
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar on long ranges.")

    def handle(self, *args: Any, **options: Any) -> None:
        self._verbosity: int = options["verbosity"]
        days: int = options["days"]
        if not 1 <= days <= MAX_DAYS:
            raise CommandError(f"--days must be between 1 and {MAX_DAYS}, got {days}")
        today = timezone.localdate()
        # An empty --end-date (a script's unset variable) is refused, not taken for today.
        end = today if options["end_date"] is None else parse_end_date(options["end_date"], today=today)
        fmt: str = options["format"]
        output = check_output(options["output"])
        recipients = parse_recipients(options["email"])
        period = selectors.Period.ending(end, days)
        source = options["source"] or None
        if source is not None and not SOURCE_PATTERN.fullmatch(source):
            raise CommandError(f"--source must be a source such as widget, api or import:csv, got {source[:40]!r}")
        filters = selectors.Filters(
            user_type=options["user_type"] or None, provider=options["provider"] or None, source=source
        )

        self._refresh_rollups(period, quiet=options["no_progress"])
        data = selectors.report(period, filters)
        rendered = reports.render(data, fmt)

        if output is not None:
            try:
                output.write_text(rendered, encoding="utf-8")
            except OSError as exc:
                raise CommandError(f"--output: could not write {str(output)!r}: {exc.strerror or exc}") from None
            self._status(f"Wrote the {fmt} report to {output}.")
        elif not recipients:
            self.stdout.write(rendered, ending="")
        if recipients:
            self._send(data, rendered, fmt, recipients)
            self._status(f"Emailed the report to {', '.join(recipients)}.")

    def _refresh_rollups(self, period: selectors.Period, *, quiet: bool) -> None:
        """Bring the rollups the report reads (this period and the previous one) up to date.

        A usual week is an incremental refresh: the days changed since the last one. A long range
        is recomputed day by day instead, under a progress bar that counts those days: the
        incremental refresh cannot report progress, and a full recompute of the range also picks
        up price-table and time-zone changes, which a quarterly or yearly report should show.
        Neither moves the refresh bookmark past days it did not recompute.
        """
        if period.days <= LONG_RANGE_DAYS:
            services.rollups_refresh()
            return
        first = period.previous().start
        total = (period.end - first).days + 1
        with tqdm(total=total, unit="day", desc="Rolling up", disable=quiet, file=self.stderr._out) as bar:
            for offset in range(total):
                services.rollup_day(first + timedelta(days=offset))
                bar.update(1)

    def _send(self, data: dict[str, Any], rendered: str, fmt: str, recipients: list[str]) -> None:
        """One message to every recipient: the text report as body, plus the chosen format.

        The body is always plain text (readable anywhere, and what `--format text` asked for).
        `--format html` adds the HTML version as the alternative part; json and markdown are
        attached as files, so the format the operator chose is what arrives.
        """
        text = rendered if fmt == "text" else reports.render(data, "text")
        message = EmailMultiAlternatives(
            subject=reports.subject(data),
            body=text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=recipients,
        )
        if fmt == "html":
            message.attach_alternative(rendered, "text/html")
        elif fmt in _ATTACHMENTS:
            extension, mimetype = _ATTACHMENTS[fmt]
            period = data["period"]
            message.attach(f"chat-report-{period['start']}-to-{period['end']}.{extension}", rendered, mimetype)
        try:
            message.send()
        except OSError as exc:  # smtplib's errors are OSErrors too
            raise CommandError(f"--email: could not send the report ({type(exc).__name__}: {exc})") from None

    def _status(self, text: str) -> None:
        """What was done, on stderr so it never mixes with a report piped from stdout; -v 0 silences it."""
        if self._verbosity >= 1:
            self.stderr.write(text, style_func=self.style.SUCCESS)
