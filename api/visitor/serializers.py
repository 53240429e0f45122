"""Request and response shapes of the visitor API.

Requests are strict, like the websocket's frames (`assistant.protocol`): a JSON object with only
the documented fields, each of its declared JSON type (a number is not a string, `1` is not
`true`), bounded in size, with no NUL or lone surrogate; anything else is a 400 naming the
field. Responses are built by the selectors (the websocket's history and frame shapes); the
serializers below describe them for the schema.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

from assistant.protocol import MAX_SEQ

ROLES = ("user", "assistant", "agent", "system")
MESSAGE_STATUSES = ("complete", "streaming", "stopped", "interrupted", "failed")
RATINGS = {"up": "up", "down": "down", "positive": "up", "negative": "down"}
#: What every non-empty string of a request may hold: no NUL (the database refuses it; a lone
#: UTF-16 surrogate is refused too, which JSON Schema cannot say), stated in the schema. (Fields
#: that may be blank are "this, or empty" there.)
TEXT_PATTERN = r"^[^\u0000]+$"
#: A character that is not blank: neither Python's whitespace nor JSON Schema's (ECMAScript's
#: `\s` also has U+FEFF; Python's `str.isspace` also has U+001C to U+001F and U+0085).
NOT_BLANK = r"[^\s\u001c-\u001f\u0085\ufeff\u0000]"


# --- strict fields ------------------------------------------------------------------------------
class StrictCharField(serializers.CharField):
    """A JSON string (DRF's CharField also takes numbers); kept as sent unless `trim_whitespace`."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: not a string, a float or a boolean."""

    default_error_messages = {"invalid": "A JSON integer is required."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """A JSON boolean: `true` or `false` (not 1, "yes" or "true")."""

    default_error_messages = {"invalid": "A JSON boolean is required."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class Shape(serializers.Serializer):
    """A serializer named `Visitor<Name>` in the schema, apart from the staff side's shapes."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "Meta" not in cls.__dict__:
            cls.Meta = type("Meta", (), {"ref_name": "Visitor" + cls.__name__.removesuffix("Serializer")})


class StrictSerializer(Shape):
    """A JSON object with only the declared fields (an unknown one is named in the 400)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [name for name in data if name not in self.fields]
            if unknown:
                allowed = ", ".join(sorted(self.fields)) or "none"
                name = str(unknown[0])[:40]
                raise serializers.ValidationError({name: [f"Unknown field '{name}'; allowed: {allowed}."]})
        return super().to_internal_value(data)


class StrictSerializerScheme(OpenApiSerializerExtension):
    """In the schema, a strict request object allows no other properties (they are refused)."""

    target_class = "api.visitor.serializers.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        """The usual mapping, closed."""
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["additionalProperties"] = False
        return schema


class StrictCharFieldScheme(OpenApiSerializerFieldExtension):
    """In the schema, a request string states the characters it may not hold."""

    target_class = "api.visitor.serializers.StrictCharField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        """The usual mapping, with `TEXT_PATTERN`."""
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        schema.setdefault("pattern", TEXT_PATTERN)
        return schema


# --- requests -----------------------------------------------------------------------------------
class PageSerializer(StrictSerializer):
    """Where the visitor is (the widget's `hello.page`)."""

    url = StrictCharField(required=False, allow_blank=True, max_length=2000)
    title = StrictCharField(required=False, allow_blank=True, max_length=500)
    referrer = StrictCharField(required=False, allow_blank=True, max_length=2000)


class IdentitySerializer(StrictSerializer):
    """A visitor identified and signed by the host site's backend (docs/widget.md, "Signed identity")."""

    user_id = StrictCharField(max_length=255)
    user_type = serializers.ChoiceField(choices=("client", "provider"), required=False)
    name = StrictCharField(required=False, allow_blank=True, max_length=255)
    email = StrictCharField(required=False, allow_blank=True, max_length=254)
    issued_at = StrictIntegerField(min_value=0, max_value=2**53, help_text="Unix time the site signed it.")
    signature = StrictCharField(max_length=128, help_text="Hex HMAC-SHA256 of the identity payload.")


class ConversationCreateSerializer(StrictSerializer):
    """The websocket's `hello` fields: all optional."""

    identity = IdentitySerializer(required=False)
    page = PageSerializer(required=False)
    locale = StrictCharField(required=False, allow_blank=True, max_length=35, help_text="A BCP 47 tag, e.g. en-GB.")


@extend_schema_field(
    {
        "type": "string",
        "minLength": 1,
        "maxLength": settings.CHAT_MAX_MESSAGE_CHARS,
        "pattern": rf"^[^\u0000]*{NOT_BLANK}[^\u0000]*$",
        "description": "The visitor's message: not blank, at most CHAT_MAX_MESSAGE_CHARS characters.",
    }
)
class MessageTextField(StrictCharField):
    """The visitor's text. Its bounds are checked by the view, with the websocket's own codes:
    `empty_message` (blank) and `message_too_long` (over CHAT_MAX_MESSAGE_CHARS), not DRF's
    generic ones; the schema states both (with the limit configured when the server started)."""

    def run_validation(self, data: Any = empty) -> Any:
        if data == "":
            return data  # the view answers `empty_message`, as the websocket does
        return super().run_validation(data)


@extend_schema_field(
    {
        "type": "string",
        "minLength": 1,
        "maxLength": 64,
        "pattern": TEXT_PATTERN,
        "not": {"pattern": "^desk:"},
    }
)
class IdempotencyKeyField(StrictCharField):
    """A visitor's idempotency key (the agent desk's keys begin with `desk:`)."""


class MessageCreateSerializer(StrictSerializer):
    """A visitor message."""

    text = MessageTextField()
    client_id = IdempotencyKeyField(
        required=False,
        min_length=1,
        max_length=64,
        help_text="Idempotency key (or send the Idempotency-Key header, the same value): a retry with the same key "
        "returns the first turn instead of asking again. Not starting with `desk:`.",
    )


class FeedbackCreateSerializer(StrictSerializer):
    """Thumbs up or down on an assistant reply."""

    rating = serializers.ChoiceField(choices=tuple(RATINGS), help_text="`positive` and `negative` mean up and down.")
    reason = StrictCharField(required=False, allow_blank=True, max_length=100)
    comment = StrictCharField(required=False, allow_blank=True, max_length=2000)


class RatingCreateSerializer(StrictSerializer):
    """The end-of-chat survey."""

    score = StrictIntegerField(min_value=1, max_value=5)
    resolved = StrictBooleanField(required=False, allow_null=True, default=None)
    comment = StrictCharField(required=False, allow_blank=True, max_length=2000)


class HandoffCreateSerializer(StrictSerializer):
    """A request for a person."""

    reason = StrictCharField(required=False, allow_blank=True, max_length=200)


class EmptySerializer(StrictSerializer):
    """No fields (an empty body, or `{}`)."""


# --- responses (for the schema) ------------------------------------------------------------------
class FeedbackStateSerializer(Shape):
    """The visitor's thumbs on a reply, as its history shows them."""

    rating = serializers.ChoiceField(choices=("up", "down"))
    reason = serializers.CharField(allow_blank=True)
    comment = serializers.CharField(allow_blank=True)


class AuthorSerializer(Shape):
    """The person at the desk who wrote a message (only their display name)."""

    name = serializers.CharField(allow_blank=True)


class HistoryMessageSerializer(Shape):
    """A message, with the fields of the websocket's history (`welcome.history`)."""

    seq = serializers.IntegerField(min_value=1, max_value=MAX_SEQ)
    message_id = serializers.UUIDField()
    role = serializers.ChoiceField(choices=ROLES)
    text = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=MESSAGE_STATUSES)
    created_at = serializers.DateTimeField()
    client_id = serializers.CharField(required=False, help_text="The visitor's idempotency key (their messages).")
    feedback = FeedbackStateSerializer(required=False, help_text="The visitor's thumbs (assistant replies).")
    reply_to = serializers.IntegerField(required=False, help_text="The seq of the message a reply answers.")
    retry_of = serializers.IntegerField(required=False, help_text="The seq of the reply this one replaces.")
    author = AuthorSerializer(required=False, help_text="Who wrote an `agent` message.")


class UsageSerializer(Shape):
    """Tokens the reply took (null when the provider did not say)."""

    input_tokens = serializers.IntegerField(allow_null=True)
    output_tokens = serializers.IntegerField(allow_null=True)


class SourceSerializer(Shape):
    """A knowledge-base section the reply drew on."""

    id = serializers.CharField()
    title = serializers.CharField(allow_blank=True)
    score = serializers.FloatField()


class ReplySerializer(Shape):
    """How a reply ended: the websocket's `reply.end` frame."""

    seq = serializers.IntegerField()
    message_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=MESSAGE_STATUSES)
    provider = serializers.CharField(allow_blank=True)
    model = serializers.CharField(allow_blank=True)
    ttft_ms = serializers.IntegerField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True)
    usage = UsageSerializer()
    cached = serializers.BooleanField()
    sources = SourceSerializer(many=True)
    error = serializers.CharField(
        required=False, help_text="Why it did not complete: provider_unavailable, reply_timeout, provider_interrupted…"
    )


class HandoffStatusSerializer(Shape):
    """Where a request for a person stands (the websocket's `handoff.status`)."""

    state = serializers.ChoiceField(choices=("waiting", "assigned", "unavailable"))
    position = serializers.IntegerField(allow_null=True, help_text="Place in the queue while waiting (1: next).")
    agent_name = serializers.CharField(allow_null=True, help_text="Who answers, once assigned.")


class TurnSerializer(Shape):
    """A turn: the visitor message stored, and the assistant's reply once it ended."""

    user_message = HistoryMessageSerializer()
    ai_message = HistoryMessageSerializer(allow_null=True, help_text="null while a person answers the visitor.")
    reply = ReplySerializer(allow_null=True, help_text="How the reply ended (null when there is none).")
    asks_for_person = serializers.BooleanField(help_text="The message asks for a person: offer the handoff.")
    handoff = HandoffStatusSerializer(allow_null=True, help_text="Set while a person answers (no AI reply).")


class TurnErrorSerializer(TurnSerializer):
    """A turn whose reply failed (or was not waited for to its end): the error, and the turn as stored."""

    code = serializers.CharField(help_text="`provider_unavailable`, `reply_timeout` or `internal_error`.")
    detail = serializers.CharField()


class ConversationCreatedSerializer(Shape):
    """A new conversation and the token that opens it (shown once: keep it)."""

    id = serializers.UUIDField()
    token = serializers.CharField(help_text="Send as `Authorization: Bearer <token>`.")
    title = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=("active", "closed"))
    created_at = serializers.DateTimeField()
    user_type = serializers.ChoiceField(
        choices=("anonymous", "client", "provider"), help_text="`anonymous` unless a valid signed identity was given."
    )


class ConversationHandoffSerializer(Shape):
    """Who answers the visitor: the assistant (`ai`), or a person (waiting, assigned, resolved)."""

    state = serializers.ChoiceField(choices=("ai", "waiting", "assigned", "resolved"))
    position = serializers.IntegerField(allow_null=True)
    agent_name = serializers.CharField(allow_null=True)


class ConfigSerializer(Shape):
    """What the widget learns in `welcome.config`."""

    max_chars = serializers.IntegerField()
    quick_replies = serializers.ListField(child=serializers.CharField())
    greeting = serializers.CharField(allow_blank=True)
    ask_contact = serializers.ChoiceField(choices=("off", "optional", "required"))


class ConversationSerializer(Shape):
    """A conversation."""

    id = serializers.UUIDField()
    title = serializers.CharField(allow_blank=True)
    status = serializers.ChoiceField(choices=("active", "closed"))
    source = serializers.CharField()
    user_type = serializers.ChoiceField(choices=("anonymous", "client", "provider"))
    created_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)
    last_seq = serializers.IntegerField(help_text="The highest message seq so far.")
    handoff = ConversationHandoffSerializer()
    config = ConfigSerializer()


class MessagePageSerializer(Shape):
    """Messages after `since`, oldest first."""

    results = HistoryMessageSerializer(many=True)
    next_since = serializers.IntegerField(
        help_text="Send as `since` next; it stops before a reply still streaming, so that one comes again."
    )
    has_more = serializers.BooleanField(help_text="More messages follow (ask again with next_since).")


class FeedbackSerializer(Shape):
    """The feedback as stored (`rating` is `up` or `down` whichever word was sent)."""

    message_id = serializers.UUIDField()
    rating = serializers.ChoiceField(choices=("up", "down"))
    reason = serializers.CharField(allow_blank=True)
    comment = serializers.CharField(allow_blank=True)


class RatingSerializer(Shape):
    """The end-of-chat survey as stored."""

    score = serializers.IntegerField(min_value=1, max_value=5)
    resolved = serializers.BooleanField(allow_null=True)
    comment = serializers.CharField(allow_blank=True)
