"""The `/ws/chat/` wire protocol: frame shapes, error codes and validation of client frames.

Names here are the public contract documented in docs/protocol.md: extend, never rename.
Validation is strict (unknown fields are refused) so that a client bug surfaces as a precise
error frame instead of a silently ignored field.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from typing import Any

from assistant.protocol import frames
from assistant.protocol.frames import (
    AckFrame,
    ErrorFrame,
    FeedbackState,
    HistoryMessage,
    MessageStatus,
    ReplyDeltaFrame,
    ReplyEndFrame,
    ReplyStartFrame,
    Usage,
    WelcomeConfig,
    WelcomeFrame,
)

__all__ = [
    "AckFrame",
    "ClientError",
    "ErrorFrame",
    "FeedbackState",
    "HistoryMessage",
    "MessageStatus",
    "ReplyDeltaFrame",
    "ReplyEndFrame",
    "ReplyStartFrame",
    "Usage",
    "WelcomeConfig",
    "WelcomeFrame",
    "decode_frame",
    "frames",
    "is_uuid",
    "printable",
]

# --- Error codes ----------------------------------------------------------------------------
INVALID_JSON = "invalid_json"
INVALID_FRAME = "invalid_frame"
UNKNOWN_TYPE = "unknown_type"
INVALID_FIELD = "invalid_field"
HELLO_REQUIRED = "hello_required"
EMPTY_MESSAGE = "empty_message"
MESSAGE_TOO_LONG = "message_too_long"
RATE_LIMITED = "rate_limited"
REPLY_IN_PROGRESS = "reply_in_progress"
SESSION_NOT_FOUND = "session_not_found"
NOT_FOUND = "not_found"
PROVIDER_UNAVAILABLE = "provider_unavailable"
REPLY_TIMEOUT = "reply_timeout"
INTERNAL_ERROR = "internal_error"
#: Desk: another agent claimed the conversation first.
ALREADY_CLAIMED = "already_claimed"
#: Desk: the conversation is someone else's (or the user may not use the desk).
FORBIDDEN = "forbidden"
#: A per-session quota (for example events per session) is used up; no retry will help.
LIMIT_REACHED = "limit_reached"
#: `reply.end.error` of a reply cut mid-stream by its provider; another provider's reply follows.
PROVIDER_INTERRUPTED = "provider_interrupted"
#: A `message` reached a server process that is shutting down: not stored; send it again after
#: reconnecting (another process takes over at once).
RESTARTING = "restarting"
RESTARTING_RETRY_AFTER_S = 1.0

# --- Close codes ----------------------------------------------------------------------------
#: Frames sent faster than the frame limit allows (beyond its burst), or a client that does not
#: read what it is sent: the connection is closed instead of queueing without bound.
CLOSE_POLICY_VIOLATION = 1008
CLOSE_FRAME_TOO_BIG = 1009
#: The server process is shutting down (RFC 6455 "service restart"): reconnect at once.
CLOSE_SERVICE_RESTART = 1012
CLOSE_REFUSED = 4403
CLOSE_TOO_MANY_CONNECTIONS = 4429


class ClientError(Exception):
    """A problem with what the client sent; the consumer turns it into one `error` frame."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        retry_after: float | None = None,
        client_id: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.retry_after = retry_after
        self.client_id = client_id
        self.field = field

    def frame(self) -> ErrorFrame:
        """The `error` frame sent to the client."""
        retry_after = None
        if self.retry_after is not None:
            # Rounded up: a client that waits exactly `retry_after` must not be refused again.
            retry_after = max(0.1, math.ceil(self.retry_after * 10) / 10)
        return frames.error(self.code, self.detail, retry_after=retry_after, client_id=self.client_id, field=self.field)


# --- Server → client frames: shapes and constructors live in `frames` ------------------------


# --- Client → server frames (validated) -----------------------------------------------------
@dataclass(frozen=True, slots=True)
class Field:
    """One allowed field of a client frame."""

    kind: type | tuple[type, ...]
    required: bool = False
    max_length: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] | None = None


#: Sequence numbers are 32-bit signed integers in the database.
MAX_SEQ = 2**31 - 1

_PAGE_FIELDS = {
    "url": Field(str, max_length=2000),
    "title": Field(str, max_length=500),
    "referrer": Field(str, max_length=2000),
}
_IDENTITY_FIELDS = {
    "user_id": Field(str, required=True, max_length=255),
    "name": Field(str, max_length=255),
    "email": Field(str, max_length=254),
    "user_type": Field(str, choices=("client", "provider")),
    "issued_at": Field(int, minimum=0),
    "signature": Field(str, max_length=128),
}

FRAME_FIELDS: dict[str, dict[str, Field]] = {
    "hello": {
        "session_id": Field(str, max_length=36),
        "token": Field(str, max_length=128),
        "last_seq": Field(int, minimum=0, maximum=MAX_SEQ),
        "identity": Field(dict),
        "page": Field(dict),
        "locale": Field(str, max_length=35),
    },
    "message": {
        # The text limit is a setting, checked by the consumer with its own error codes.
        "text": Field(str, required=True),
        "client_id": Field(str, required=True, max_length=64),
    },
    "stop": {},
    "feedback": {
        "message_id": Field(str, required=True, max_length=36),
        "rating": Field(str, required=True, choices=("up", "down")),
        "reason": Field(str, max_length=100),
        "comment": Field(str, max_length=2000),
    },
    "rating": {
        "score": Field(int, required=True, minimum=1, maximum=5),
        "resolved": Field(bool),
        "comment": Field(str, max_length=2000),
    },
    "event": {
        "name": Field(str, required=True, max_length=64),
        "data": Field(dict),
    },
    "end": {},
    "ping": {},
    # Human handoff (docs/desk.md).
    "handoff": {"reason": Field(str, max_length=200)},
    "contact": {
        "email": Field(str, required=True, max_length=254),
        "name": Field(str, max_length=255),
        "message": Field(str, max_length=2000),
    },
    "typing": {"state": Field(str, required=True, choices=("start", "stop"))},
}
NESTED_FIELDS: dict[tuple[str, str], dict[str, Field]] = {
    ("hello", "page"): _PAGE_FIELDS,
    ("hello", "identity"): _IDENTITY_FIELDS,
}
MAX_EVENT_DATA_BYTES = 4096
#: Nesting allowed inside `event.data` (JSON parsers and the JSON columns handle more, but no
#: widget event needs it, and every level costs on the way to the database and back).
MAX_EVENT_DATA_DEPTH = 8


def decode_frame(
    text: str,
    fields_by_type: dict[str, dict[str, Field]] | None = None,
    nested_fields: dict[tuple[str, str], dict[str, Field]] | None = None,
) -> dict[str, Any]:
    """Parse one text frame into a validated client frame, or raise ClientError.

    The chat's frames by default; another socket (the agent desk) passes its own tables.
    """
    fields_by_type = FRAME_FIELDS if fields_by_type is None else fields_by_type
    nested_fields = NESTED_FIELDS if nested_fields is None else nested_fields
    try:
        frame = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise ClientError(INVALID_JSON, f"Frame is not valid JSON: {exc}") from None
    if not isinstance(frame, dict):
        raise ClientError(INVALID_FRAME, f"Frame must be a JSON object, got {_json_kind(frame)}.")
    frame_type = frame.get("type")
    if frame_type is None:
        raise ClientError(INVALID_FRAME, "Frame has no 'type' field.", field="type")
    if not isinstance(frame_type, str):
        raise ClientError(INVALID_FRAME, "'type' must be a string.", field="type")
    fields = fields_by_type.get(frame_type)
    if fields is None:
        known = ", ".join(sorted(fields_by_type))
        raise ClientError(UNKNOWN_TYPE, f"Unknown frame type {printable(frame_type)!r}; expected one of: {known}.")
    body = {key: value for key, value in frame.items() if key != "type"}
    _check_text(frame_type, body)
    _validate(frame_type, body, fields, prefix="")
    for (owner, name), nested in nested_fields.items():
        if owner == frame_type and body.get(name) is not None:
            _validate(frame_type, body[name], nested, prefix=f"{name}.")
    data = body.get("data") if frame_type == "event" else None
    if data is not None and _depth(data) > MAX_EVENT_DATA_DEPTH:
        raise ClientError(INVALID_FIELD, f"'data' may nest at most {MAX_EVENT_DATA_DEPTH} levels.", field="data")
    if data is not None and len(json.dumps(data)) > MAX_EVENT_DATA_BYTES:
        raise ClientError(INVALID_FIELD, f"'data' must be at most {MAX_EVENT_DATA_BYTES} bytes of JSON.", field="data")
    if data is not None and _has_huge_int(data):
        # JSON allows any integer; the channel layer's msgpack (and most databases) stop at 64 bits.
        raise ClientError(INVALID_FIELD, "'data' numbers must fit in 64 bits.", field="data")
    body["type"] = frame_type
    return body


def is_uuid(value: object) -> bool:
    """Whether `value` is a string that parses as a UUID (in any of its spellings)."""
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def restarting_error(client_id: str) -> ErrorFrame:
    """The answer to a `message` while this process shuts down: not stored, so not acked.

    Not raised as a `ClientError`: the visitor did nothing wrong, so no WARNING line. The client
    sends the message again (same `client_id`) on a new connection, which the proxy gives to
    another process; `retry_after` is for a client that reconnects to the same address.
    """
    detail = "The server is restarting: reconnect and send the message again."
    return ClientError(RESTARTING, detail, retry_after=RESTARTING_RETRY_AFTER_S, client_id=client_id).frame()


def printable(text: str, limit: int = 40) -> str:
    """`text` cut to `limit` characters and safe to encode (lone surrogates become escapes)."""
    return text[:limit].encode("utf-8", "backslashreplace").decode("utf-8")


def _text_fault(text: str) -> str | None:
    """Why the database or a UTF-8 encoder would refuse `text`, or None.

    JSON's \\uXXXX escapes can spell a lone UTF-16 surrogate (`"\\ud800"`), which no UTF-8
    encoder accepts (sending it back would crash the connection), and NUL, which Postgres text
    and jsonb columns refuse.
    """
    if text.isascii():
        return "contains a NUL character" if "\x00" in text else None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone UTF-16 surrogate (not valid Unicode text)"
    return "contains a NUL character" if "\x00" in text else None


def _check_text(frame_type: str, body: dict[str, Any]) -> None:
    """Refuse any key or string, at any depth, that cannot be stored or sent back as UTF-8.

    Iterative, so a deeply nested value cannot exhaust the stack; each top-level field is named
    by its dotted path in the error.
    """
    stack: list[tuple[str, object]] = [("", body)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            fault = _text_fault(value)
            if fault is not None:
                raise ClientError(INVALID_FIELD, f"'{path}' {fault}.", field=path)
        elif isinstance(value, dict):
            for key, item in value.items():
                label = f"{path}.{printable(key)}" if path else printable(key)
                fault = _text_fault(key)
                if fault is not None:
                    raise ClientError(INVALID_FIELD, f"Field name '{label}' in '{frame_type}' {fault}.", field=label)
                stack.append((label, item))
        elif isinstance(value, list):
            stack.extend((path, item) for item in value)


def _depth(value: object) -> int:
    """How deeply `value` nests (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item)
        else:
            deepest = max(deepest, level)
            continue
        deepest = max(deepest, level + 1)
    return deepest


def _has_huge_int(value: object) -> bool:
    """Whether an integer outside the signed 64-bit range appears anywhere in `value`."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool) and not -(2**63) <= item < 2**63:
            return True
    return False


def _refuse_constant(name: str) -> object:
    """Python's json accepts NaN and Infinity; JSON (and the database's JSON columns) do not."""
    raise ValueError(f"{name} is not a JSON value")


def _validate(frame_type: str, body: dict[str, Any], fields: dict[str, Field], *, prefix: str) -> None:
    for name in body:
        if name not in fields:
            allowed = ", ".join(sorted(fields)) or "no fields"
            raise ClientError(
                INVALID_FIELD,
                f"Unknown field '{prefix}{printable(name)}' in '{frame_type}'; allowed: {allowed}.",
                field=f"{prefix}{printable(name)}",
            )
    for name, spec in fields.items():
        label = f"{prefix}{name}"
        if name not in body or body[name] is None:
            if spec.required:
                raise ClientError(INVALID_FIELD, f"'{label}' is required in '{frame_type}'.", field=label)
            body.pop(name, None)
            continue
        value = body[name]
        # bool is an int subclass in Python; JSON true is not a number.
        if not isinstance(value, spec.kind) or (spec.kind is int and isinstance(value, bool)):
            raise ClientError(
                INVALID_FIELD, f"'{label}' must be {_kind_name(spec.kind)}, got {_json_kind(value)}.", field=label
            )
        if spec.max_length is not None and len(value) > spec.max_length:
            raise ClientError(INVALID_FIELD, f"'{label}' must be at most {spec.max_length} characters.", field=label)
        if spec.minimum is not None and value < spec.minimum:
            raise ClientError(INVALID_FIELD, f"'{label}' must be at least {spec.minimum}.", field=label)
        if spec.maximum is not None and value > spec.maximum:
            raise ClientError(INVALID_FIELD, f"'{label}' must be at most {spec.maximum}.", field=label)
        if spec.choices is not None and value not in spec.choices:
            raise ClientError(INVALID_FIELD, f"'{label}' must be one of: {', '.join(spec.choices)}.", field=label)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "a boolean", dict: "an object", list: "an array"}
    if isinstance(kind, tuple):
        return " or ".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, kind.__name__)


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
