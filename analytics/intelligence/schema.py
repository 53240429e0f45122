"""What the model must answer, and the check that it did: the analysis JSON schema.

`ANALYSIS_SCHEMA` is the contract, validated with `jsonschema` on every answer. The vendors get
`vendor_schema()`: the same shape without the string-length keywords, which OpenAI's strict mode
and Gemini's schema subset do not all accept; the lengths are enforced here, locally, where an
answer that breaks them counts as invalid (one retry, then the offline fallback).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

#: Bump when the prompt or the schema changes: every conversation is then analysed again.
ANALYSIS_VERSION = "2026-12.1"
MAX_TOPICS = 5
MAX_TOPIC_CHARS = 40
MAX_SUMMARY_CHARS = 300

ANALYSIS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "sentiment",
        "sentiment_label",
        "satisfaction",
        "resolved",
        "topics",
        "language",
        "summary",
        "needs_follow_up",
    ],
    "properties": {
        "sentiment": {"type": "number", "minimum": -1, "maximum": 1},
        "sentiment_label": {"type": "string", "enum": ["negative", "neutral", "positive"]},
        "satisfaction": {"type": "integer", "minimum": 1, "maximum": 5},
        "resolved": {"type": "boolean"},
        "topics": {
            "type": "array",
            "maxItems": MAX_TOPICS,
            "items": {"type": "string", "minLength": 1, "maxLength": MAX_TOPIC_CHARS},
        },
        "language": {"type": "string", "pattern": "^[a-z]{2}$"},
        "summary": {"type": "string", "minLength": 1, "maxLength": MAX_SUMMARY_CHARS},
        "needs_follow_up": {"type": "boolean"},
    },
}
_VALIDATOR = Draft202012Validator(ANALYSIS_SCHEMA)
_FENCE = re.compile(r"^\s*```(?:json)?\s*|\s*```\s*$", re.IGNORECASE)


def vendor_schema() -> dict[str, Any]:
    """The schema sent to the vendors: the same fields and bounds, minus string lengths."""
    schema = copy.deepcopy(ANALYSIS_SCHEMA)
    for prop in schema["properties"].values():
        for target in (prop, prop.get("items", {})):
            target.pop("minLength", None)
            target.pop("maxLength", None)
    return schema


@dataclass(frozen=True, slots=True)
class Answer:
    """A valid answer of the model."""

    sentiment: float
    satisfaction: int
    resolved: bool
    topics: list[str]
    language: str
    summary: str
    needs_follow_up: bool


class InvalidAnswer(ValueError):
    """The model's text is not JSON, or not valid against ANALYSIS_SCHEMA (the message says where)."""


def parse(text: str) -> Answer:
    """The answer in `text`, or InvalidAnswer naming the first problem.

    A code fence or prose around the object is tolerated (Anthropic has no JSON mode); the
    object itself must be valid.
    """
    body = _FENCE.sub("", text.strip())
    try:
        data = json.loads(body)
    except ValueError:
        start, end = body.find("{"), body.rfind("}")
        try:
            data = json.loads(body[start : end + 1]) if 0 <= start < end else None
        except ValueError:
            data = None
        if data is None:
            raise InvalidAnswer(f"not a JSON object: {text[:80]!r}") from None
    error = next(iter(sorted(_VALIDATOR.iter_errors(data), key=lambda e: list(e.path))), None)
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        raise InvalidAnswer(f"schema violation at {where}: {error.message}"[:300])
    topics: list[str] = []
    for topic in data["topics"]:
        name = " ".join(topic.lower().split())
        if name and name not in topics:
            topics.append(name)
    return Answer(
        sentiment=float(data["sentiment"]),
        satisfaction=int(data["satisfaction"]),
        resolved=bool(data["resolved"]),
        topics=topics,
        language=data["language"],
        summary=" ".join(data["summary"].split()),
        needs_follow_up=bool(data["needs_follow_up"]),
    )
