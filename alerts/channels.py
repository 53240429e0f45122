"""A rule's channels and filters as people type them: parsed and checked, without the network.

Email addresses and Slack-compatible incoming-webhook URLs are kept as text on the rule (one
per line or comma, easy to edit in the admin) and parsed here, both when the rule is saved
(precise errors naming the field) and when an alert is delivered. Whether a URL points at a
private address is decided at delivery (`webhooks.targets.check_url`), when its name is
resolved: a name that is public today may not be tomorrow.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator

from analytics.params import PROVIDERS, USER_TYPES

MAX_EMAILS = 20
MAX_SLACK_URLS = 5
MAX_URL_CHARS = 2000
_SEPARATORS = re.compile(r"[\s,;]+")
_email = EmailValidator()
_url = URLValidator(schemes=["http", "https"])


def email_list(text: str) -> list[str]:
    """The addresses in `text` (one per line, or separated by commas), in order, without repeats."""
    return list(dict.fromkeys(item for item in _SEPARATORS.split(text or "") if item))


def url_list(text: str) -> list[str]:
    """The URLs in `text`, one per line (or separated by spaces or commas), in order, without repeats."""
    return list(dict.fromkeys(item for item in re.split(r"[\s,]+", text or "") if item))


def problems(*, emails: str, slack_urls: str) -> dict[str, str]:
    """What is wrong with a rule's channels, by field name."""
    found: dict[str, str] = {}
    addresses = email_list(emails)
    if len(addresses) > MAX_EMAILS:
        found["emails"] = f"At most {MAX_EMAILS} addresses."
    else:
        for address in addresses:
            try:
                _email(address)
            except ValidationError:
                found["emails"] = f"Not an email address: {address[:80]!r}."
                break
    urls = url_list(slack_urls)
    if len(urls) > MAX_SLACK_URLS:
        found["slack_urls"] = f"At most {MAX_SLACK_URLS} URLs."
    else:
        for url in urls:
            error = url_problem(url)
            if error:
                found["slack_urls"] = error
                break
    return found


def url_problem(url: str) -> str | None:
    """Why `url` cannot be an incoming-webhook URL (syntax only), or None."""
    if len(url) > MAX_URL_CHARS:
        return f"A URL of at most {MAX_URL_CHARS} characters."
    try:
        _url(url)
    except ValidationError:
        return f"Not an http(s) URL: {url[:80]!r}."
    if urlsplit(url).username or urlsplit(url).password:
        return "No user name or password in the URL."
    return None


def filter_problems(*, user_type: str, provider: str) -> dict[str, str]:
    """Filters the dashboard's selectors would refuse, by field name."""
    found: dict[str, str] = {}
    if user_type and user_type not in USER_TYPES:
        found["user_type"] = f"One of: {', '.join(USER_TYPES)}."
    if provider and provider not in PROVIDERS:
        found["provider"] = f"One of: {', '.join(PROVIDERS)}."
    return found
