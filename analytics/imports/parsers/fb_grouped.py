"""PowerPulse's Facebook export: `{"<chat id>": [{FB_CHAT_ID, MESSAGE_CONTENT, DIRECTION, …}, …], …}`.

One chat id is one customer's whole thread, possibly years of it; it is cut into conversations
at silences longer than `IMPORT_CONVERSATION_GAP_HOURS`, each with the external id
`<chat id>@<ISO time of its first message, UTC>`, so first-contact resolution (the same
customer back within FCR_WINDOW_DAYS) means something. `DIRECTION` `to_company` is the customer
(role user); `to_client` is the company: role agent when `AGENT_EMAIL` (or `AGENT_USERNAME`)
names a person, role assistant (an automated reply) when both are null.

Memory: `ijson.kvitems` builds one chat id's array at a time, so it is bounded by the largest
single thread, not by the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, timedelta
from typing import Any, BinaryIO

import ijson

from analytics.imports.records import (
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    Conversation,
    Message,
    Problem,
    RecordError,
    clean_id,
    clean_text,
    parse_time,
)

DIRECTIONS = {"to_company": "user", "to_client": "company"}


def parse(stream: BinaryIO, *, gap_hours: float) -> Iterator[Conversation | Problem]:
    """Conversations of each chat id, and a `Problem` for each bad chat or message."""
    gap = timedelta(hours=gap_hours)
    items = ijson.kvitems(stream, "", use_float=True)
    while True:
        try:
            chat_id, value = next(items)
        except StopIteration:
            return
        except (ijson.JSONError, ijson.IncompleteJSONError, UnicodeDecodeError) as error:
            yield Problem("bad_json", "file", f"not valid JSON: {str(error)[:200]}", fatal=True)
            return
        where = f"chat {chat_id[:MAX_ID_CHARS]}"
        if len(chat_id) > MAX_ID_CHARS or not chat_id.strip():
            yield Problem("bad_id", where, f"the chat id must have 1 to {MAX_ID_CHARS} characters")
            continue
        if not isinstance(value, list):
            yield Problem("not_a_list", where, f"the value must be an array of messages, got {type(value).__name__}")
            continue
        messages: list[tuple[Message, str]] = []
        customer = ""
        for index, item in enumerate(value, start=1):
            try:
                message, name = _message(item)
            except RecordError as error:
                yield Problem(error.reason, f"{where} message {index}", error.detail)
                continue
            messages.append((message, name))
            if name and not customer:
                customer = name
        yield from _conversations(chat_id.strip(), where, messages, gap)


def _message(item: Any) -> tuple[Message, str]:
    """One message, and the customer's name when the message says it."""
    if not isinstance(item, dict):
        raise RecordError("bad_message", f"a message must be an object, got {type(item).__name__}")
    direction = item.get("DIRECTION")
    if direction not in DIRECTIONS:
        raise RecordError("bad_direction", f"DIRECTION must be to_company or to_client, got {direction!r:.40}")
    text = clean_text(item.get("MESSAGE_CONTENT"), "MESSAGE_CONTENT", required=False)
    at = parse_time(item.get("SOCIAL_CREATE_TIME"), "SOCIAL_CREATE_TIME")
    if direction == "to_company":
        name = clean_text(item.get("CUSTOMER_NAME"), "CUSTOMER_NAME", limit=MAX_NAME_CHARS, required=False)
        return Message("user", text, at), name
    email = clean_text(item.get("AGENT_EMAIL"), "AGENT_EMAIL", limit=254, required=False)
    username = clean_text(item.get("AGENT_USERNAME"), "AGENT_USERNAME", limit=MAX_NAME_CHARS, required=False)
    if email or username:
        return Message("agent", text, at, username or email[:MAX_NAME_CHARS]), ""
    return Message("assistant", text, at), ""


def _conversations(
    chat_id: str, where: str, messages: list[tuple[Message, str]], gap: timedelta
) -> Iterator[Conversation]:
    """The thread cut at its silences longer than `gap`, in time order (file order among equal times)."""
    ordered = sorted(messages, key=lambda pair: pair[0].at)
    customer = clean_id(chat_id, "chat id")
    current: list[Message] = []
    name = ""
    for message, said_name in ordered:
        if current and message.at - current[-1].at > gap:
            yield _conversation(chat_id, where, current, customer, name)
            current, name = [], ""
        current.append(message)
        name = name or said_name
    if current:
        yield _conversation(chat_id, where, current, customer, name)


def _conversation(chat_id: str, where: str, messages: list[Message], customer: str, name: str) -> Conversation:
    first = messages[0].at.astimezone(UTC).isoformat()
    return Conversation(
        external_id=f"{chat_id}@{first}",
        where=f"{where} from {first}",
        messages=messages,
        customer_id=customer,
        customer_name=name,
    )
