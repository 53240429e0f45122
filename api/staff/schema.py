"""The staff API's OpenAPI parameters: types, enums, bounds and meaning, stated once for every operation."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

from analytics.params import MAX_DAYS, PROVIDERS, SOURCE_PATTERN, USER_TYPES
from api import errors
from api.schema_common import error_responses
from api.staff import params

QUERY = OpenApiParameter.QUERY


def _bounded_int(minimum: int, maximum: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


def _text(minimum: int, maximum: int) -> dict[str, Any]:
    return {"type": "string", "minLength": minimum, "maxLength": maximum}


DAYS = OpenApiParameter(
    "days", _bounded_int(1, MAX_DAYS), QUERY,
    description=f"The last N local days, today included (default {params.DEFAULT_DAYS}). Not with dates.",
)  # fmt: skip
START_DATE = OpenApiParameter(
    "start_date", OpenApiTypes.DATE, QUERY,
    description="First local day (TIME_ZONE), inclusive; from 2000-01-01. Alone: from then to today.",
)  # fmt: skip
END_DATE = OpenApiParameter(
    "end_date", OpenApiTypes.DATE, QUERY,
    description=f"Last local day, inclusive; at most a year ahead. Alone: the {params.DEFAULT_DAYS} days ending then. "
    f"A range is at most {MAX_DAYS} days.",
)  # fmt: skip
USER_TYPE = OpenApiParameter(
    "user_type", str, QUERY, enum=list(USER_TYPES), description="Only sessions of this kind of visitor."
)
PROVIDER = OpenApiParameter(
    "provider", str, QUERY, enum=list(PROVIDERS),
    description="Only sessions mostly answered by this provider, and calls to it.",
)  # fmt: skip
SOURCE = OpenApiParameter(
    "source", {"type": "string", "pattern": f"^{SOURCE_PATTERN.pattern}$", "maxLength": 32}, QUERY,
    description="Only sessions from this source: `widget`, `api`, `import:<format>` (and their provider calls).",
)  # fmt: skip
USER_ID = OpenApiParameter(
    "user_id", _text(1, params.USER_ID_MAX), QUERY,
    description="Only the sessions (and their calls) of one identified visitor: the `external_user_id` the "
    "site gave the widget.",
)  # fmt: skip

PERIOD = [DAYS, START_DATE, END_DATE]

#: Errors every staff operation may answer, described for the staff side.
COMMON_ERRORS = error_responses(
    400, 401, 403, 405, 429,
    s400=f"`{errors.INVALID_PARAMETER}`: the `parameter` named is unknown, given twice, or has a bad value.",
    s401=f"`{errors.UNAUTHORIZED}`: no credentials, or the API key is unknown, expired or revoked (`detail` says "
    "which).",
    s403=f"`{errors.FORBIDDEN}`: signed in but not staff, or the API key lacks the scope this needs (named).",
    s429=f"`{errors.RATE_LIMITED}`: this API key made API_KEY_RATE_LIMIT_PER_MINUTE requests this minute; wait "
    "`retry_after` seconds (the Retry-After header).",
)  # fmt: skip
RETRY_AFTER = OpenApiParameter(
    "Retry-After", OpenApiTypes.INT, OpenApiParameter.HEADER, response=[429],
    description="Seconds until the key may make requests again.",
)  # fmt: skip
WWW_AUTHENTICATE = OpenApiParameter(
    "WWW-Authenticate", OpenApiTypes.STR, OpenApiParameter.HEADER, response=[401],
    description='`Bearer realm="api"`.',
)  # fmt: skip
HEADERS = [RETRY_AFTER, WWW_AUTHENTICATE]


def responses(ok: Any, *extra_errors: int) -> dict[Any, Any]:
    """The 200 answer and the errors (400, 401, 403, 429, plus `extra_errors`)."""
    return {200: ok, **COMMON_ERRORS, **error_responses(*extra_errors, s404="`not_found`: no session with that id.")}


def boolean(name: str, description: str) -> OpenApiParameter:
    """A true/false filter (also 1/0, yes/no)."""
    return OpenApiParameter(name, OpenApiTypes.BOOL, QUERY, description=description)


SESSION_FILTERS = [
    OpenApiParameter(
        "start_date", OpenApiTypes.DATE, QUERY, description="Sessions that started on or after this local day."
    ),
    OpenApiParameter(
        "end_date", OpenApiTypes.DATE, QUERY, description="Sessions that started on or before this local day."
    ),
    USER_TYPE,
    OpenApiParameter("status", str, QUERY, enum=list(params.STATUSES), description="The session's status."),
    boolean("resolved", "Resolved (confirmed by the visitor, or assumed), as analytics records it."),
    boolean("escalated", "Handed to a person, or the visitor asked for one."),
    boolean("satisfied_only", "true: only sessions rated 4 or 5 at the end of the chat."),
    OpenApiParameter(
        "topic",
        _text(1, params.TOPIC_MAX),
        QUERY,
        description="Sessions with this topic (a knowledge section title or taxonomy keyword), exactly.",
    ),
    OpenApiParameter(
        "provider", str, QUERY, enum=list(PROVIDERS), description="The provider that answered most replies."
    ),
    SOURCE,
    OpenApiParameter(
        "q",
        _text(params.Q_MIN, params.Q_MAX),
        QUERY,
        description="Text (case-insensitive) in the title or in a message the visitor or an agent wrote "
        "(assistant replies are not searched).",
    ),
    OpenApiParameter(
        "cursor",
        {"type": "string", "maxLength": 200},
        QUERY,
        description="`next_cursor` of the previous page (opaque).",
    ),
    OpenApiParameter(
        "limit",
        _bounded_int(1, params.MAX_LIMIT),
        QUERY,
        description=f"Sessions per page (default {params.DEFAULT_LIMIT}).",
    ),
]


def streamed(description: str) -> dict[Any, Any]:
    """An export's answers: CSV or JSON lines, and the errors."""
    return {
        (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description=description),
        (200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.STR, description=description),
        **COMMON_ERRORS,
    }
