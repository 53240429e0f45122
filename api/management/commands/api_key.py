"""`manage.py api_key create|list|revoke`: API keys from the command line (an adapter over `api.keys`).

    api_key create --name "CRM sync" --scopes read,export [--expires-in-days 90] [--user alice]
    api_key list
    api_key revoke <prefix>        (the prefix from `list`, `pk_<prefix>`, or the whole key)

`create` prints the whole key once, on its own line (so `KEY=$(manage.py api_key create … -q)`
works with `--quiet`); Parley keeps only its hash.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from api import keys

MAX_EXPIRY_DAYS = 3660


class Command(BaseCommand):
    help = "Create, list or revoke API keys for the staff side of the REST API (/api/v1/)."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="action", required=True, metavar="{create,list,revoke}")
        create = commands.add_parser("create", help="Make a key and print it (once).")
        create.add_argument("--name", required=True, help="Who or what uses it.")
        create.add_argument(
            "--scopes", required=True, help=f"Comma-separated, from {', '.join(keys.SCOPES)} (e.g. read,export)."
        )
        create.add_argument("--expires-in-days", type=int, help="Expire after this many days (default: never).")
        create.add_argument("--user", help="The username recorded as its creator.")
        create.add_argument("-q", "--quiet", action="store_true", help="Print only the key.")
        commands.add_parser("list", help="Every key: prefix, name, scopes, state, dates (never the secret).")
        revoke = commands.add_parser("revoke", help="Revoke a key now.")
        revoke.add_argument("prefix", help="The key's prefix (from `list`), or the whole key.")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        try:
            if action == "create":
                self._create(options)
            elif action == "list":
                self._list()
            else:
                key = keys.key_revoke(prefix=options["prefix"])
                self.stdout.write(f"Revoked pk_{key.prefix}_… ({key.name}) at {key.revoked_at:%Y-%m-%d %H:%M %Z}.")
        except keys.KeyProblem as problem:
            raise CommandError(str(problem)) from None

    def _create(self, options: dict[str, Any]) -> None:
        days = options["expires_in_days"]
        if days is not None and not 1 <= days <= MAX_EXPIRY_DAYS:
            raise CommandError(f"--expires-in-days must be from 1 to {MAX_EXPIRY_DAYS}, got {days}.")
        user = None
        if options["user"]:
            user = keys.user_named(options["user"])
            if user is None:
                raise CommandError(f"--user: no user named {options['user']!r}.")
        key, whole = keys.key_create(
            name=options["name"],
            scopes=options["scopes"].split(","),
            expires_at=timezone.now() + timedelta(days=days) if days else None,
            created_by=user,
        )
        if options["quiet"]:
            self.stdout.write(whole)
            return
        expiry = f"expires {key.expires_at:%Y-%m-%d %H:%M %Z}" if key.expires_at else "does not expire"
        self.stdout.write(f"API key {key.name!r} (scopes: {', '.join(key.scopes)}; {expiry}):")
        self.stdout.write(whole)
        self.stdout.write("Copy it now: it is shown only this once (Parley keeps only its hash).")

    def _list(self) -> None:
        rows = keys.keys_list()
        if not rows:
            self.stdout.write("No API keys.")
            return
        now = timezone.now()
        for key in rows:
            used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
            expires = f"{key.expires_at:%Y-%m-%d %H:%M}" if key.expires_at else "never"
            self.stdout.write(
                f"pk_{key.prefix}_…  {keys.key_state(key, now=now):<8} {','.join(key.scopes):<18} "
                f"created {key.created_at:%Y-%m-%d %H:%M}  expires {expires}  last used {used}  {key.name}"
            )
