"""Demo data: a realistic chat history for an empty database (`manage.py seed_demo_data`).

A new installation has nothing to show on the analytics dashboard, and the analytics benchmark
(`bench/analytics_scale.py`) needs volume. This writes demo conversations over the last
`--days` days, then builds their analytics the way recovery does (`analytics_recover`, then
`rollups_rebuild`), so every number on the dashboard comes from the same code as for real chats.

What the history looks like (all drawn from `random.Random(--seed)`: the same options and
`--now` give the same rows, apart from the random public ids and client ids):

* Sessions start more on weekdays and in business hours (local `TIME_ZONE`), traffic grows
  by about a third over the period; 70 % anonymous visitors, the rest identified clients and
  providers (repeat visitors from a pool of identities).
* About 5 visitor turns per session (so ~10 messages; 100,000 sessions give ~1,000,000
  messages). Visitor texts come from templates that hit the taxonomy's topics
  (`analytics/data/topics.toml`), follow-ups that are glad or annoyed depending on how the chat
  goes, and in ~6 % of sessions a request for a human (`escalate` events, agent messages).
* Replies name the knowledge sections the real search finds for the question, and go through
  the provider chain most deployments configure: OpenAI `gpt-4.1-mini`, then Anthropic
  `claude-haiku-4-5`, Gemini `gemini-2.5-flash` and the local assistant. Each attempt is a
  `ProviderCall` row, as the router writes them: retries, failovers before any text
  (`fallback_from`), mid-stream failovers (an `interrupted` reply followed by its replacement),
  replies stopped by the visitor, timed-out replies, two provider outages where the breaker
  skips OpenAI, and one title call per session. A second server pool (5 % of sessions) runs an
  OpenAI-compatible `llama3.1:8b`, which has no price ("price unknown" in the reports) and no
  fallback (its failures are failed replies). Some FAQ first questions are answered from the
  response cache (local assistant, `cached`, no provider call).
* Thumbs up/down on ~20 % of replies (mostly up), an end-of-chat rating on ~15 % of sessions,
  widget events (`widget_open`, `quick_reply`, `link_click`), and ~40 % of sessions ended.

Rows are inserted in batches of whole sessions, one transaction each, with `COPY` on Postgres
(1,000,000 messages take minutes, not hours). The command refuses a database that already has
chat sessions unless `--append` is given, and never prompts: demo data must not mix with real
conversations by accident. It exits with status 3 when it refuses (`make demo` treats that as
"nothing to do").
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from analytics.models import ChatAnalytics, DailySessionRollup
from assistant.models import ChatEvent, ChatMessage, ChatSession, Feedback, ProviderCall, SessionRating
from assistant.protocol import PROVIDER_INTERRUPTED, PROVIDER_UNAVAILABLE, REPLY_TIMEOUT
from assistant.replies import UNAVAILABLE_TEXT
from assistant.services import make_title

#: Exit status when the database already has chat sessions and --append was not given.
REFUSED_EXIT_STATUS = 3
#: Sessions generated and inserted per transaction.
BATCH_SESSIONS = 1000

# --- what visitors write --------------------------------------------------------------------
#: Per taxonomy topic, questions that mention it (checked by tests against topics.toml).
TOPIC_QUESTIONS: dict[str, list[str]] = {
    "billing": [
        "How do I change my subscription plan?",
        "I was charged twice this month. Can I get a refund?",
        "Where can I download my invoices?",
        "What is the price of the team plan?",
        "My payment failed, what should I do?",
        "Can I switch from monthly to yearly billing?",
        "How much does it cost to add more seats?",
        "Do you offer refunds if I cancel my subscription?",
    ],
    "account": [
        "I can't log in to my account.",
        "How do I reset my password?",
        "How do I turn on two-factor authentication?",
        "Can I change the email address on my account?",
        "I never received the password reset email.",
        "Sign in keeps sending me back to the login page.",
    ],
    "installation": [
        "How do I install Parley on my server?",
        "What are the requirements to run Parley?",
        "Is there a docker image for the setup?",
        "make run stops while installing the requirements.",
        "How do I set up Parley in a virtualenv?",
        "How do I install and run Parley locally?",
    ],
    "widget": [
        "How do I embed the widget on my site?",
        "Can I change the widget colour to match our theme?",
        "Where do I paste the script tag?",
        "Can the widget position be on the left side?",
        "The widget snippet does not show up on my page.",
        "How do I customise the widget's look and text?",
    ],
    "ai_providers": [
        "How do I connect OpenAI?",
        "Can I use Ollama or vLLM instead of a cloud provider?",
        "Where do I put my API key for Anthropic?",
        "What happens when the provider fails? Is there failover?",
        "Can I choose which model answers?",
        "Does Parley work with Gemini?",
    ],
    "analytics": [
        "Where is the analytics dashboard?",
        "How do I export chats as CSV?",
        "How is visitor satisfaction measured?",
        "How do I create the weekly report?",
        "What do the metrics on the dashboard mean?",
        "What does the AI cost figure in analytics include?",
    ],
    "privacy": [
        "Is Parley GDPR compliant?",
        "How do I delete my data?",
        "How long is chat data kept? Is there a retention setting?",
        "Does any personal data leave my server?",
        "Where are conversations stored? I'm worried about privacy.",
    ],
    "performance": [
        "Replies are really slow today.",
        "How do I scale Parley to more servers?",
        "Do I need Redis for more than one process?",
        "Should I use Postgres instead of SQLite?",
        "I keep getting a timeout waiting for the answer.",
        "What latency should I expect for the first answer?",
    ],
    "bug_report": [
        "The chat is broken since the last update.",
        "I get an error: websocket close code 4403.",
        "The send button is not working.",
        "Opening the chat makes the page crash.",
        "The chat says too many messages and then fails.",
        "My conversation did not come back after a reload, it doesn't work.",
    ],
    "": [
        "Hi",
        "Hello, can you help me?",
        "What is Parley?",
        "How do I open the admin site?",
        "What should I do after the first start?",
    ],
}
TOPIC_WEIGHTS = {
    "billing": 14, "account": 13, "installation": 14, "widget": 15, "ai_providers": 10, "analytics": 8,
    "privacy": 5, "performance": 7, "bug_report": 8, "": 6,
}  # fmt: skip
GLAD = [
    "Thanks, that worked!",
    "Great, thank you!",
    "Perfect, that's exactly what I needed.",
    "Ok, thanks.",
    "Awesome, thanks for the quick help!",
    "Got it.",
]
CURIOUS = [
    "Can you explain that in more detail?",
    "Where exactly do I find that?",
    "And what about the second step?",
    "Ok. Anything else I should check?",
    "Is there a link to the documentation?",
]
ANNOYED = [
    "That didn't help, it's still not working.",
    "This is frustrating, the answer is wrong.",
    "No, that's not what I asked.",
    "I already tried that and it fails.",
    "Your answer makes no sense.",
]
HUMAN = [
    "Can I talk to a human, please?",
    "I want to speak to a real person.",
    "Please escalate this, I need a live agent.",
    "Is there a way to contact support directly?",
    "Let me talk to someone from your team.",
]
OPENINGS = ["", "", "", "", "Hi! ", "Hello, ", "Quick question: ", "Hey, "]
ENDINGS = ["", "", "", "", " Thanks!", " Thanks in advance.", " It's urgent."]
NO_ANSWER = {
    "glad": "You're welcome! Is there anything else I can help you with?",
    "curious": "Could you tell me which step you are at? Then I can point you to the right place.",
    "annoyed": (
        "I'm sorry that didn't solve it. Could you tell me exactly what you see, for example an error "
        "message or the step where it stops? If you prefer, I can flag this chat for the support team."
    ),
    "human": (
        "I can't hand the chat over myself, but I have flagged this conversation for the support team: "
        "someone will reply here as soon as possible."
    ),
    "question": (
        "I couldn't find that in the documentation I have. The support team can look at your account "
        "details: would you like me to pass this on?"
    ),
}
AGENTS = ["Sam", "Priya", "Jonas", "Ana", "Kofi"]
DOWN_REASONS = ["Not accurate", "Didn't answer my question", "Too long", "Out of date", "Other"]
DOWN_COMMENTS = ["The steps don't match what I see.", "I needed the price, not a link.", "Still broken."]
PAGES = {
    "billing": ("https://www.example.com/pricing", "Pricing"),
    "account": ("https://app.example.com/account", "Your account"),
    "installation": ("https://www.example.com/docs/install", "Install Parley"),
    "widget": ("https://www.example.com/docs/widget", "Embedding the widget"),
    "ai_providers": ("https://www.example.com/docs/providers", "AI providers"),
    "analytics": ("https://app.example.com/analytics", "Analytics"),
    "privacy": ("https://www.example.com/privacy", "Privacy"),
    "performance": ("https://www.example.com/docs/scaling", "Scaling"),
    "bug_report": ("https://app.example.com/", "Dashboard"),
    "": ("https://www.example.com/", "Parley: self-hosted AI chat"),
}
REFERRERS = ["", "", "", "https://www.google.com/", "https://duckduckgo.com/", "https://news.ycombinator.com/"]
LOCALES = ["en-US"] * 6 + ["en-GB", "de-DE", "fr-FR", "es-ES", "nl-NL"]
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:144.0) Gecko/20100101 Firefox/144.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
]
FIRST_NAMES = ["Alex", "Maria", "Chen", "Fatima", "Lukas", "Sofia", "Omar", "Yuki", "Emma", "Ravi", "Lea", "Tom"]
LAST_NAMES = ["Martin", "Garcia", "Kowalski", "Nguyen", "Schmidt", "Rossi", "Okafor", "Tanaka", "Silva", "Berg"]

# --- when visitors come ---------------------------------------------------------------------
WEEKDAY_WEIGHTS = [1.0, 1.05, 1.05, 1.0, 0.9, 0.45, 0.35]  # Monday first
HOUR_WEIGHTS = [
    0.15, 0.1, 0.08, 0.08, 0.1, 0.2, 0.35, 0.6, 1.0, 1.5, 1.7, 1.6,
    1.2, 1.35, 1.6, 1.65, 1.45, 1.15, 0.85, 0.7, 0.65, 0.55, 0.4, 0.25,
]  # fmt: skip
#: Traffic at the end of the period relative to its start.
GROWTH = 1.35

# --- how visitors feel ----------------------------------------------------------------------
#: Per mood, weights of the end-of-chat answer to "was your problem solved?": yes, no answer, no.
RESOLVED_WEIGHTS = {"good": (85, 15, 0), "meh": (25, 50, 25), "bad": (0, 25, 75)}
#: Per answer to "solved?", weights of the scores 1 to 5.
SCORE_WEIGHTS = {True: (0, 1, 5, 35, 60), None: (5, 15, 35, 30, 15), False: (45, 35, 15, 5, 0)}


# --- how providers behave -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Model:
    """A provider/model pair and its latency profile."""

    provider: str
    name: str
    ttft_ms: float  # median time to first token
    ms_per_token: float
    prompt_cache: bool = False  # reports cached prompt tokens on later turns


OPENAI = Model("openai", "gpt-4.1-mini", 620, 9.0, prompt_cache=True)
ANTHROPIC = Model("anthropic", "claude-haiku-4-5", 780, 7.0)
GEMINI = Model("gemini", "gemini-2.5-flash", 520, 5.0)
LOCAL = Model("local", "knowledge-base", 25, 15.0)
LLAMA = Model("openai", "llama3.1:8b", 1100, 28.0)  # an OpenAI-compatible Ollama: no price
MAIN_CHAIN = (OPENAI, ANTHROPIC, GEMINI, LOCAL)
SELF_HOSTED_CHAIN = (LLAMA,)
SELF_HOSTED_SHARE = 0.05
FIRST_TOKEN_TIMEOUT_MS = 15_000
REPLY_DEADLINE_MS = 120_000

#: Errors as the vendor modules report them: (kind, status code, detail, median latency ms, retried).
ERRORS = {
    "rate_limited": ("rate_limited", 429, "Error code: 429 - rate limit reached for requests", 180, True),
    "overloaded": ("retryable", 503, "Error code: 503 - the server is overloaded", 450, True),
    "timeout": ("timeout", None, "no text within 15.0 s", FIRST_TOKEN_TIMEOUT_MS, True),
    "refused": ("retryable", None, "Connection refused", 3, True),
    "auth": ("auth", 401, "Error code: 401 - invalid api key", 150, False),
}
#: Per reply of the main chain, outside outages: cumulative probabilities of what goes wrong.
MAIN_FATES = [
    (0.004, "stopped"),
    (0.010, "interrupted"),
    (0.022, "retried"),
    (0.032, "failover"),
    (0.034, "local"),
    (0.0355, "timeout"),
]
SELF_HOSTED_FATES = [(0.004, "stopped"), (0.012, "retried"), (0.027, "unavailable")]

# --- the columns written (checked against the models at startup) -----------------------------
SESSION_COLUMNS = (
    "id", "public_id", "token_hash", "status", "title", "last_seq", "user_type", "external_user_id",
    "external_user_name", "external_user_email", "page_url", "page_title", "referrer", "locale", "user_agent",
    "created_at", "updated_at", "last_seen_at", "closed_at",
)  # fmt: skip
MESSAGE_COLUMNS = (
    "id", "public_id", "session_id", "seq", "role", "text", "status", "client_id", "reply_to_id", "retry_of_id",
    "provider", "model", "ttft_ms", "duration_ms", "input_tokens", "output_tokens", "cached", "error_code",
    "knowledge_sections", "created_at", "updated_at", "finished_at",
)  # fmt: skip
CALL_COLUMNS = (
    "session_id", "message_id", "feature", "provider", "model", "attempt", "started_at", "latency_ms", "ttft_ms",
    "input_tokens", "output_tokens", "cached_tokens", "tokens_estimated", "outcome", "error_kind", "error_detail",
    "status_code", "fallback_from",
)  # fmt: skip
FEEDBACK_COLUMNS = ("message_id", "session_id", "rating", "reason", "comment", "created_at", "updated_at")
RATING_COLUMNS = ("session_id", "score", "resolved", "comment", "created_at", "updated_at")
EVENT_COLUMNS = ("session_id", "name", "data", "created_at")
#: Columns left NULL: which live server process served or generated them (`assistant.liveness`).
UNWRITTEN = {"served_by", "owner"}
TABLES: list[tuple[type[models.Model], tuple[str, ...]]] = [
    (ChatSession, SESSION_COLUMNS),
    (ChatMessage, MESSAGE_COLUMNS),
    (ProviderCall, CALL_COLUMNS),
    (Feedback, FEEDBACK_COLUMNS),
    (SessionRating, RATING_COLUMNS),
    (ChatEvent, EVENT_COLUMNS),
]


def check_columns() -> None:
    """Fail loudly when a model gained or lost a column this command does not write."""
    for model, columns in TABLES:
        expected = {f.attname for f in model._meta.concrete_fields} - ({"id"} if "id" not in columns else set())
        expected -= UNWRITTEN
        if set(columns) != expected:
            missing, extra = sorted(expected - set(columns)), sorted(set(columns) - expected)
            raise RuntimeError(
                f"seed_demo_data is out of date with {model.__name__}: missing {missing}, unknown {extra}"
            )


# --- the catalogue: texts, knowledge hits and replies, computed once per run -----------------
@dataclass(frozen=True, slots=True)
class Query:
    """A visitor text before decoration, with what the assistant answers to it."""

    text: str
    kind: str  # question, glad, curious, annoyed, human
    sections_json: str  # knowledge_sections as stored
    local_sections_json: str  # the local assistant quotes only the best section
    reply: str
    links: tuple[str, ...]  # documentation URLs of the sections (for link_click events)
    prompt_tokens: int


class Catalogue:
    """Every template with its knowledge hits, searched once with the real knowledge base."""

    def __init__(self) -> None:
        self.queries: dict[str, Query] = {}
        self.by_topic = {
            topic: [self._query(text, "question") for text in texts] for topic, texts in TOPIC_QUESTIONS.items()
        }
        self.topics = list(TOPIC_WEIGHTS)
        self.topic_weights = list(TOPIC_WEIGHTS.values())
        self.quick_replies = [self._query(text, "question") for text in settings.ASSISTANT_QUICK_REPLIES]
        self.glad = [self._query(text, "glad") for text in GLAD]
        self.curious = [self._query(text, "curious") for text in CURIOUS]
        self.annoyed = [self._query(text, "annoyed") for text in ANNOYED]
        self.human = [self._query(text, "human") for text in HUMAN]

    @cached_property
    def _search(self) -> Callable[[str], list[Any]]:
        try:
            from assistant.knowledge.index import get_knowledge_base

            knowledge = get_knowledge_base()
            knowledge.search("warm up")
        except Exception:  # no or broken knowledge base: replies cite nothing
            return lambda text: []
        return lambda text: knowledge.search(text, limit=settings.KNOWLEDGE_MAX_SECTIONS)

    def _query(self, text: str, kind: str) -> Query:
        if text in self.queries:
            return self.queries[text]
        hits = self._search(text) if kind in {"question", "curious"} else []
        sections = [{"id": hit.section.id, "title": hit.section.label, "score": hit.score} for hit in hits]
        if hits:
            best = hits[0].section
            excerpt = " ".join(best.text.replace("#", "").replace("`", "").split()[:70])
            labels = "; ".join(section["title"] for section in sections)
            reply = f"Here is what the documentation says about **{best.title}**:\n\n{excerpt}…\n\nSources: {labels}"
        else:
            reply = NO_ANSWER[kind]
        links = tuple(
            "https://docs.example.com/" + hit.section.id.replace(".md#", "#", 1).removesuffix(".md") for hit in hits
        )
        section_tokens = sum(min(400, len(hit.section.text) // 4) for hit in hits)
        query = Query(
            text=text,
            kind=kind,
            sections_json=json.dumps(sections),
            local_sections_json=json.dumps(sections[:1]),
            reply=reply,
            links=links,
            prompt_tokens=len(text) // 4 + section_tokens,
        )
        self.queries[text] = query
        return query


# --- generation -----------------------------------------------------------------------------
@dataclass(slots=True)
class Message:
    """A message being drawn; times are seconds from the session start."""

    seq: int
    role: str
    text: str
    created: float
    client_id: str | None = None
    reply_to: Message | None = None
    retry_of: Message | None = None
    status: str = ChatMessage.Status.COMPLETE
    provider: str = ""
    model: str = ""
    ttft_ms: int | None = None
    duration_ms: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached: bool = False
    error_code: str = ""
    sections: str = "[]"  # knowledge_sections, serialised once per query
    finished: float | None = None
    index: int = -1  # position in its batch, once placed
    public_id: uuid.UUID | None = None


@dataclass(slots=True)
class Call:
    """One provider attempt, as the router records it."""

    message: Message
    model: Model
    attempt: int
    start: float
    end: float
    outcome: str
    ttft: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    estimated: bool = False
    error_kind: str = ""
    error_detail: str = ""
    status_code: int | None = None
    fallback_from: str = ""
    feature: str = ProviderCall.Feature.CHAT_REPLY


@dataclass(slots=True)
class Event:
    """A widget event; `message` is the reply a link was clicked in."""

    name: str
    at: float
    data: dict[str, str] = field(default_factory=dict)
    message: Message | None = None


@dataclass(slots=True)
class Turn:
    """One visitor message with its replies and reactions (or one agent message)."""

    end: float
    messages: list[Message] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    feedback: list[tuple[Message, str, str, str, float]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


@dataclass(slots=True)
class Batch:
    """Rows of a batch of whole sessions, in column order minus the ids not known yet.

    Rows refer to sessions and messages by their position in the batch; `Writer` swaps in the
    primary keys it reserves.
    """

    sessions: list[list[Any]] = field(default_factory=list)
    messages: list[list[Any]] = field(default_factory=list)
    calls: list[list[Any]] = field(default_factory=list)
    feedback: list[list[Any]] = field(default_factory=list)
    ratings: list[list[Any]] = field(default_factory=list)
    events: list[list[Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Identity:
    """A known visitor (client or provider), reused across sessions."""

    user_type: str
    external_id: str
    name: str
    email: str


@dataclass(slots=True)
class Visit:
    """What is decided about a session before its turns are drawn."""

    identity: Identity | None
    mood: str  # good, meh, bad: drives follow-ups, thumbs, ratings
    chain: tuple[Model, ...]
    topic: str
    outage: bool  # OpenAI's breaker is open

    @property
    def user_type(self) -> str:
        """Anonymous unless the visitor is identified."""
        return self.identity.user_type if self.identity else ChatSession.UserType.ANONYMOUS


class Generator:
    """Draws sessions from one seeded random stream."""

    def __init__(self, *, seed: int, days: int, now: datetime, catalogue: Catalogue) -> None:
        self.rng = random.Random(seed)
        self.days = days
        self.now = now
        self.catalogue = catalogue
        self.identities = self._identities()
        period = timedelta(days=days).total_seconds()
        self.outages = [  # two spells when OpenAI's breaker is open: (begin, end) in seconds before now
            (begin, begin - self.rng.uniform(3600, 3 * 3600))
            for begin in (self.rng.uniform(0.1, 0.9) * period for _ in range(2))
        ]

    def _identities(self) -> list[Identity]:
        rng, people = self.rng, []
        for number in range(3000):
            user_type = ChatSession.UserType.CLIENT if number % 4 else ChatSession.UserType.PROVIDER
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            prefix = "cus" if user_type == ChatSession.UserType.CLIENT else "prv"
            domain = rng.choice(["example.com", "example.org", "mail.test"])
            email = f"{first.lower()}.{last.lower()}{number}@{domain}"
            people.append(Identity(user_type, f"{prefix}_{number:05d}", f"{first} {last}", email))
        return people

    # --- when sessions start ------------------------------------------------------------
    def start_times(self, count: int) -> list[datetime]:
        """`count` session starts over the last `days` days, shaped by weekday, hour and growth."""
        top = self.now.replace(minute=0, second=0, microsecond=0)
        slots: list[tuple[datetime, float]] = [(top, (self.now - top).total_seconds())]
        hours = self.days * 24
        slots += [(top - timedelta(hours=k), 3600.0) for k in range(1, hours)]
        daily_noise = [self.rng.uniform(0.88, 1.12) for _ in range(self.days + 2)]
        weights = []
        for k, (start, length) in enumerate(slots):
            local = timezone.localtime(start)
            trend = GROWTH ** (1 - k / hours)
            weights.append(
                WEEKDAY_WEIGHTS[local.weekday()] * HOUR_WEIGHTS[local.hour] * trend * daily_noise[k // 24] * length
            )
        chosen = self.rng.choices(range(len(slots)), weights=weights, k=count)
        return sorted(slots[k][0] + timedelta(seconds=self.rng.random() * slots[k][1]) for k in chosen)

    # --- one session --------------------------------------------------------------------
    def session(self, start: datetime, batch: Batch) -> None:
        """Draw one session starting near `start` and append its rows to `batch`."""
        rng, catalogue = self.rng, self.catalogue
        identity = rng.choice(self.identities) if rng.random() < 0.30 else None
        mood = rng.choices(("good", "meh", "bad"), weights=(70, 18, 12))[0]
        escalates = rng.random() < {"good": 0.01, "meh": 0.08, "bad": 0.30}[mood]
        chain = SELF_HOSTED_CHAIN if rng.random() < SELF_HOSTED_SHARE else MAIN_CHAIN
        topic = rng.choices(catalogue.topics, weights=catalogue.topic_weights)[0]
        quick = rng.random() < 0.18
        turns_wanted = min(40, 1 + int(rng.expovariate(1 / 4.7)))
        escalate_at = rng.randrange(turns_wanted) if escalates else -1
        before_now = (self.now - start).total_seconds()
        outage = chain is MAIN_CHAIN and any(end < before_now < begin for begin, end in self.outages)
        visit = Visit(identity=identity, mood=mood, chain=chain, topic=topic, outage=outage)

        opening = [Event("widget_open", 0.0)] if rng.random() < 0.9 else []
        turns: list[Turn] = []
        t = 2 + rng.lognormvariate(math.log(6), 0.8)
        seq = 0
        for number in range(turns_wanted):
            turn = Turn(end=t)
            if number == escalate_at:
                query = rng.choice(catalogue.human)
                text = query.text
                if rng.random() < 0.5:
                    turn.events.append(Event("escalate", t + 0.5))
            elif number == 0 and quick:
                query = rng.choice(catalogue.quick_replies)
                text = query.text
                turn.events.append(Event("quick_reply", t - 0.05, {"text": text}))
            elif number == 0:
                query = rng.choice(catalogue.by_topic[topic])
                text = rng.choice(OPENINGS) + query.text + rng.choice(ENDINGS)
            else:
                query = self._follow_up(visit, last=number == turns_wanted - 1)
                text = query.text
            seq += 1
            user = Message(seq, ChatMessage.Role.USER, text, t, client_id=str(uuid.uuid4()))
            turn.messages.append(user)
            seq = self._reply(turn, user, query, number, visit)
            turns.append(turn)
            if number == escalate_at:
                if rng.random() < 0.4:  # a person from the support team takes over
                    turns.append(self._handoff(turn.end, seq + 1))
                break
            t = turn.end + min(1200.0, rng.lognormvariate(math.log(35), 0.9))
        self._place(start, visit, opening, turns, batch)

    def _follow_up(self, visit: Visit, *, last: bool) -> Query:
        rng, catalogue = self.rng, self.catalogue
        if last and visit.mood == "good" and rng.random() < 0.6:
            return rng.choice(catalogue.glad)
        roll = rng.random()
        annoyed = {"good": 0.03, "meh": 0.2, "bad": 0.45}[visit.mood]
        if roll < annoyed:
            return rng.choice(catalogue.annoyed)
        if roll < annoyed + 0.25:
            return rng.choice(catalogue.curious)
        if roll < annoyed + 0.35:
            return rng.choice(catalogue.glad)
        if roll < annoyed + 0.85:
            return rng.choice(catalogue.by_topic[visit.topic])
        return rng.choice(catalogue.by_topic[rng.choices(catalogue.topics, weights=catalogue.topic_weights)[0]])

    def _handoff(self, after: float, seq: int) -> Turn:
        joined = after + self.rng.lognormvariate(math.log(180), 0.8)
        agent = self.rng.choice(AGENTS)
        text = f"Hi, this is {agent} from the support team. I've read the conversation: let me look into it."
        message = Message(seq, ChatMessage.Role.AGENT, text, joined, finished=joined)
        return Turn(end=joined, messages=[message], events=[Event("handoff", joined, {"agent": agent})])

    # --- one reply ----------------------------------------------------------------------
    def _fate(self, query: Query, number: int, visit: Visit) -> str:
        """What happens to this reply: ok, cached, or one of the failure paths."""
        rng = self.rng
        if number == 0 and visit.chain is MAIN_CHAIN:
            faq = query in self.catalogue.quick_replies
            if rng.random() < (0.35 if faq else 0.03):
                return "cached"
        roll = rng.random()
        fates = MAIN_FATES if visit.chain is MAIN_CHAIN else SELF_HOSTED_FATES
        fate = next((name for limit, name in fates if roll < limit), "ok")
        return "outage" if fate == "ok" and visit.outage else fate

    def _reply(self, turn: Turn, user: Message, query: Query, number: int, visit: Visit) -> int:
        """Append the reply (two after a mid-stream failover) to `user`; returns the last seq used."""
        rng, chain = self.rng, visit.chain
        fate = self._fate(query, number, visit)
        if number == 0:
            self._title_call(turn, user, query, chain[0], skipped=visit.outage)
        created = user.created + rng.lognormvariate(math.log(0.02), 0.4)
        reply = Message(user.seq + 1, ChatMessage.Role.ASSISTANT, query.reply, created, reply_to=user)
        reply.sections = query.sections_json
        turn.messages.append(reply)
        prompt = 380 + query.prompt_tokens + min(number, 8) * 110
        output = int(min(900, max(15, rng.lognormvariate(math.log(170), 0.45))))
        clock = created + rng.uniform(0.02, 0.09)  # the knowledge search
        if fate == "cached":
            ttft = rng.uniform(0.015, 0.06)
            self._end(reply, LOCAL, clock + ttft, clock + ttft + rng.uniform(0.03, 0.2), 0, 0, cached=True)
            reply.sections = query.local_sections_json
        elif fate == "ok":
            self._answer(turn, reply, chain[0], clock, prompt, output)
        elif fate == "retried":
            clock = self._fail(turn, reply, chain[0], 1, clock, rng.choice(["rate_limited", "overloaded"]))
            self._answer(turn, reply, chain[0], clock, prompt, output, attempt=2)
        elif fate == "outage":
            turn.calls.append(Call(reply, chain[0], 1, clock, clock, ProviderCall.Outcome.SKIPPED))
            self._answer(turn, reply, chain[1], clock, prompt, output, fallback_from=chain[0].provider)
        elif fate == "failover":
            error = rng.choice(["overloaded", "overloaded", "timeout", "auth"])
            for attempt in range(1, 4 if ERRORS[error][4] else 2):
                clock = self._fail(turn, reply, chain[0], attempt, clock, error)
            answering, failed = chain[1], chain[0]
            if rng.random() < 0.1:
                for attempt in range(1, 4):
                    clock = self._fail(turn, reply, chain[1], attempt, clock, "overloaded", chain[0].provider)
                answering, failed = chain[2], chain[1]
            self._answer(turn, reply, answering, clock, prompt, output, fallback_from=failed.provider)
        elif fate == "local":  # every cloud provider overloaded: the local assistant answers
            before = ""
            for model in chain[:3]:
                for attempt in range(1, 4):
                    clock = self._fail(turn, reply, model, attempt, clock, "overloaded", before)
                before = model.provider
            self._answer(turn, reply, LOCAL, clock, prompt, output, fallback_from=before)
            reply.sections = query.local_sections_json
        elif fate in {"stopped", "interrupted"}:
            reply = self._cut(turn, reply, query, chain, clock, prompt, output, stopped=fate == "stopped")
        else:
            self._give_up(turn, reply, chain, clock, timeout=fate == "timeout")
        turn.end = reply.finished or reply.created
        self._reactions(turn, reply, query, visit.mood)
        return reply.seq

    def _cut(
        self,
        turn: Turn,
        reply: Message,
        query: Query,
        chain: Sequence[Model],
        clock: float,
        prompt: int,
        output: int,
        *,
        stopped: bool,
    ) -> Message:
        """A reply cut after its text began: stopped by the visitor, or failed over mid-stream.

        Returns the message that ends the turn (the replacement, after a failover).
        """
        rng, model = self.rng, chain[0]
        ttft = self._ttft(model)
        share = rng.uniform(0.1, 0.8)
        end = clock + ttft + share * output * model.ms_per_token / 1000
        said = int(share * output)
        call = Call(reply, model, 1, clock, end, ProviderCall.Outcome.STOPPED, ttft, prompt, said, 0, estimated=True)
        turn.calls.append(call)
        reply.text = reply.text[: max(1, int(len(reply.text) * share))]
        status = ChatMessage.Status.STOPPED if stopped else ChatMessage.Status.INTERRUPTED
        self._end(reply, model, clock + ttft, end, prompt, said, status=status)
        if stopped:
            return reply
        call.outcome, call.error_kind = ProviderCall.Outcome.INTERRUPTED, "interrupted"
        call.error_detail = "the stream ended before the reply was complete"
        reply.error_code = PROVIDER_INTERRUPTED
        replacement = Message(
            reply.seq + 1, ChatMessage.Role.ASSISTANT, query.reply, end, reply_to=reply.reply_to, retry_of=reply
        )
        replacement.sections = query.sections_json
        turn.messages.append(replacement)
        self._answer(turn, replacement, chain[1], end + 0.01, prompt, output, fallback_from=model.provider)
        return replacement

    def _give_up(self, turn: Turn, reply: Message, chain: Sequence[Model], clock: float, *, timeout: bool) -> None:
        """Every provider failed: timeouts until the reply deadline, or a refused self-hosted model."""
        deadline = reply.created + REPLY_DEADLINE_MS / 1000
        error, last, before = ("timeout" if timeout else "refused"), chain[0], ""
        for model in chain[:3] if timeout else chain[:1]:
            for attempt in range(1, 4):
                if clock >= deadline:
                    break
                clock = min(deadline, self._fail(turn, reply, model, attempt, clock, error, before))
                last = model
            before = model.provider
        reply.text, reply.sections = UNAVAILABLE_TEXT, "[]"
        reply.error_code = REPLY_TIMEOUT if timeout else PROVIDER_UNAVAILABLE
        self._end(reply, last, None, clock, None, None, status=ChatMessage.Status.FAILED)

    def _ttft(self, model: Model) -> float:
        return self.rng.lognormvariate(math.log(model.ttft_ms), 0.45) / 1000

    def _answer(
        self,
        turn: Turn,
        reply: Message,
        model: Model,
        clock: float,
        prompt: int,
        output: int,
        *,
        fallback_from: str = "",
        attempt: int = 1,
    ) -> None:
        """A successful attempt that answers the whole reply."""
        rng = self.rng
        ttft = self._ttft(model)
        end = clock + ttft + output * model.ms_per_token * rng.lognormvariate(0, 0.25) / 1000
        tokens_in = int(prompt * rng.gauss(1, 0.08))
        cached = int(tokens_in * rng.uniform(0.5, 0.8)) // 128 * 128 if model.prompt_cache and prompt > 1100 else 0
        turn.calls.append(
            Call(
                reply,
                model,
                attempt,
                clock,
                end,
                ProviderCall.Outcome.OK,
                ttft,
                tokens_in,
                output,
                cached,
                fallback_from=fallback_from,
            )
        )
        self._end(reply, model, clock + ttft, end, tokens_in, output)

    def _fail(
        self,
        turn: Turn,
        message: Message,
        model: Model,
        attempt: int,
        clock: float,
        error: str,
        fallback_from: str = "",
    ) -> float:
        """A failed attempt before any text; returns when the next attempt starts."""
        kind, status, detail, latency, retried = ERRORS[error]
        took = latency / 1000 if error == "timeout" else self.rng.lognormvariate(math.log(latency), 0.5) / 1000
        turn.calls.append(
            Call(
                message,
                model,
                attempt,
                clock,
                clock + took,
                ProviderCall.Outcome.ERROR,
                error_kind=kind,
                error_detail=detail,
                status_code=status,
                fallback_from=fallback_from,
            )
        )
        wait = 0.0  # a refused connection is retried at once
        if error == "rate_limited":
            wait = self.rng.uniform(1, 3)  # Retry-After
        elif retried and error != "refused":
            wait = 0.25 * 2 ** (attempt - 1) * self.rng.uniform(0.5, 1.5)
        return clock + took + wait

    @staticmethod
    def _end(
        reply: Message,
        model: Model,
        first_text: float | None,
        end: float,
        tokens_in: int | None,
        tokens_out: int | None,
        *,
        cached: bool = False,
        status: str = ChatMessage.Status.COMPLETE,
    ) -> None:
        reply.status, reply.provider, reply.model, reply.cached = status, model.provider, model.name, cached
        reply.ttft_ms = round((first_text - reply.created) * 1000) if first_text is not None else None
        reply.duration_ms = round((end - reply.created) * 1000)
        reply.input_tokens, reply.output_tokens, reply.finished = tokens_in, tokens_out, end

    def _title_call(self, turn: Turn, user: Message, query: Query, model: Model, *, skipped: bool) -> None:
        """The session title, asked of the first cloud provider beside the first reply."""
        rng = self.rng
        start = user.created + rng.uniform(0.05, 0.2)
        title = ProviderCall.Feature.TITLE
        if skipped:
            turn.calls.append(Call(user, model, 1, start, start, ProviderCall.Outcome.SKIPPED, feature=title))
        elif rng.random() < 0.01:
            for attempt in range(1, 4):
                start = self._fail(turn, user, model, attempt, start, "overloaded")
                turn.calls[-1].feature = title
        else:
            ttft, words = self._ttft(model), rng.randint(4, 9)
            end = start + ttft + words * model.ms_per_token / 1000
            tokens_in = 70 + len(query.text) // 4
            turn.calls.append(
                Call(user, model, 1, start, end, ProviderCall.Outcome.OK, ttft, tokens_in, words, 0, feature=title)
            )

    def _reactions(self, turn: Turn, reply: Message, query: Query, mood: str) -> None:
        """Thumbs and link clicks on a finished reply."""
        rng = self.rng
        if reply.status != ChatMessage.Status.COMPLETE or reply.finished is None:
            return
        if rng.random() < 0.2:
            down = rng.random() < {"good": 0.05, "meh": 0.3, "bad": 0.65}[mood]
            at = reply.finished + rng.lognormvariate(math.log(6), 0.8)
            reason = rng.choice(DOWN_REASONS) if down and rng.random() < 0.6 else ""
            comment = rng.choice(DOWN_COMMENTS) if down and rng.random() < 0.3 else ""
            turn.feedback.append((reply, Feedback.Rating.DOWN if down else Feedback.Rating.UP, reason, comment, at))
            turn.end = max(turn.end, at)
        if query.links and rng.random() < 0.08:
            at = reply.finished + rng.lognormvariate(math.log(15), 0.7)
            turn.events.append(Event("link_click", at, {"url": rng.choice(query.links)}, message=reply))
            turn.end = max(turn.end, at)

    # --- placing a session in time --------------------------------------------------------
    def _place(self, start: datetime, visit: Visit, opening: list[Event], turns: list[Turn], batch: Batch) -> None:
        """Add the rating and the end of chat, then append the rows that are not in the future."""
        rng = self.rng
        last = turns[-1].end
        rating = None
        if rng.random() < 0.15:
            resolved = rng.choices((True, None, False), weights=RESOLVED_WEIGHTS[visit.mood])[0]
            score = rng.choices((1, 2, 3, 4, 5), weights=SCORE_WEIGHTS[resolved])[0]
            last += rng.lognormvariate(math.log(10), 0.6)
            rating = (score, resolved, "Thanks for the help!" if score == 5 and rng.random() < 0.2 else "", last)
        closed = last + rng.lognormvariate(math.log(20), 1) if rng.random() < (0.8 if rating else 0.35) else None

        # The first turn is always in the past; whatever would happen after now is left out.
        room = (self.now - start).total_seconds()
        if turns[0].end > room:
            start, room = self.now - timedelta(seconds=turns[0].end + 1), turns[0].end + 1
        kept = [turn for turn in turns if turn.end <= room]  # turns end in order: a prefix
        complete = len(kept) == len(turns)
        if closed is not None and (not complete or closed > room):
            closed = None
        if rating is not None and (not complete or rating[3] > room):
            rating = None

        def at(offset: float) -> datetime:
            return start + timedelta(seconds=offset)

        session = len(batch.sessions)
        messages = [message for turn in kept for message in turn.messages]
        seen = at(max(closed or 0, *(m.finished or m.created for m in messages)))
        identity = visit.identity
        page_url, page_title = PAGES[visit.topic]
        status = ChatSession.Status.CLOSED if closed is not None else ChatSession.Status.ACTIVE
        batch.sessions.append(
            [
                uuid.uuid4(), f"{rng.getrandbits(256):064x}", status, make_title(messages[0].text), messages[-1].seq,
                visit.user_type, identity.external_id if identity else "", identity.name if identity else "",
                identity.email if identity else "", page_url, page_title, rng.choice(REFERRERS), rng.choice(LOCALES),
                rng.choice(USER_AGENTS), start, seen, seen, at(closed) if closed is not None else None,
            ]
        )  # fmt: skip
        for message in messages:
            message.index, message.public_id = len(batch.messages), uuid.uuid4()
            created = at(message.created)
            finished = at(message.finished) if message.finished is not None else None
            batch.messages.append(
                [
                    message.public_id, session, message.seq, message.role, message.text, message.status,
                    message.client_id, message.reply_to.index if message.reply_to else None,
                    message.retry_of.index if message.retry_of else None, message.provider, message.model,
                    message.ttft_ms, message.duration_ms, message.input_tokens, message.output_tokens, message.cached,
                    message.error_code, message.sections, created, finished or created, finished,
                ]
            )  # fmt: skip
        events = opening + [event for turn in kept for event in turn.events]
        for event in events:
            data = dict(event.data, message_id=str(event.message.public_id)) if event.message else event.data
            batch.events.append([session, event.name, json.dumps(data), at(max(0.0, event.at))])
        for turn in kept:
            for call in turn.calls:
                batch.calls.append(
                    [
                        session, call.message.index, call.feature, call.model.provider, call.model.name, call.attempt,
                        at(call.start), round((call.end - call.start) * 1000),
                        round(call.ttft * 1000) if call.ttft is not None else None, call.input_tokens,
                        call.output_tokens, call.cached_tokens, call.estimated, call.outcome, call.error_kind,
                        call.error_detail, call.status_code, call.fallback_from,
                    ]
                )  # fmt: skip
            for reply, thumb, reason, comment, offset in turn.feedback:
                batch.feedback.append([reply.index, session, thumb, reason, comment, at(offset), at(offset)])
        if rating is not None:
            score, resolved, comment, offset = rating
            batch.ratings.append([session, score, resolved, comment, at(offset), at(offset)])


# --- writing --------------------------------------------------------------------------------
@dataclass(slots=True)
class Counts:
    """Rows written so far."""

    sessions: int = 0
    messages: int = 0
    calls: int = 0
    feedback: int = 0
    ratings: int = 0
    events: int = 0


class Writer:
    """Inserts batches: `COPY` on Postgres, `executemany` elsewhere; ids reserved up front."""

    def __init__(self) -> None:
        self.postgres = connection.vendor == "postgresql"
        self.counts = Counts()

    def write(self, batch: Batch) -> None:
        """Insert one batch of whole sessions in one transaction."""
        with transaction.atomic():
            session_ids = self._reserve(ChatSession, len(batch.sessions))
            message_ids = self._reserve(ChatMessage, len(batch.messages))
            self._insert(
                ChatSession, SESSION_COLUMNS, [[pk, *row] for pk, row in zip(session_ids, batch.sessions, strict=True)]
            )
            self._insert(
                ChatMessage,
                MESSAGE_COLUMNS,
                [
                    [
                        pk,
                        row[0],
                        session_ids[row[1]],
                        *row[2:7],
                        *(None if i is None else message_ids[i] for i in row[7:9]),
                        *row[9:],
                    ]
                    for pk, row in zip(message_ids, batch.messages, strict=True)
                ],
            )
            self._insert(
                ProviderCall,
                CALL_COLUMNS,
                [[session_ids[row[0]], message_ids[row[1]], *row[2:]] for row in batch.calls],
            )
            self._insert(
                Feedback,
                FEEDBACK_COLUMNS,
                [[message_ids[row[0]], session_ids[row[1]], *row[2:]] for row in batch.feedback],
            )
            self._insert(SessionRating, RATING_COLUMNS, [[session_ids[row[0]], *row[1:]] for row in batch.ratings])
            self._insert(ChatEvent, EVENT_COLUMNS, [[session_ids[row[0]], *row[1:]] for row in batch.events])
        counts = self.counts
        counts.sessions += len(batch.sessions)
        counts.messages += len(batch.messages)
        counts.calls += len(batch.calls)
        counts.feedback += len(batch.feedback)
        counts.ratings += len(batch.ratings)
        counts.events += len(batch.events)

    def _reserve(self, model: type[models.Model], count: int) -> list[int]:
        """`count` unused primary keys (from the sequence on Postgres, above the maximum elsewhere)."""
        table = model._meta.db_table
        with connection.cursor() as cursor:
            if self.postgres:
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, count]
                )
                return [row[0] for row in cursor.fetchall()]
            cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {connection.ops.quote_name(table)}")
            top = cursor.fetchone()[0]
        return list(range(top + 1, top + 1 + count))

    def _insert(self, model: type[models.Model], columns: tuple[str, ...], rows: list[list[Any]]) -> None:
        if not rows:
            return
        by_attname = {f.attname: f for f in model._meta.concrete_fields}
        fields = [by_attname[name] for name in columns]
        names = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        table = connection.ops.quote_name(model._meta.db_table)
        with connection.cursor() as cursor:
            if self.postgres:
                # Values are already what psycopg adapts (aware datetimes, UUIDs, JSON as text).
                with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                return
            adapters = [_adapter(f) for f in fields]
            values = [[adapt(value) for adapt, value in zip(adapters, row, strict=True)] for row in rows]
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(fields))})", values)


def _adapter(model_field: models.Field) -> Callable[[Any], Any]:
    """How a value of `model_field` goes to the database (JSON is already serialised)."""
    if isinstance(model_field, models.JSONField):
        return lambda value: value
    return lambda value: model_field.get_db_prep_save(value, connection)


def analyze() -> None:
    """Fresh planner statistics on Postgres after a bulk load (autovacuum would take a while)."""
    if connection.vendor != "postgresql":
        return
    tables = [model._meta.db_table for model, _ in TABLES] + [
        ChatAnalytics._meta.db_table,
        DailySessionRollup._meta.db_table,
    ]
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {', '.join(connection.ops.quote_name(table) for table in tables)}")
