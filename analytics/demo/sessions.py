"""Demo chat sessions drawn from one seeded random stream: who comes when, what they ask, how it goes.

Sessions start more on weekdays and in business hours (local `TIME_ZONE`), and traffic grows by
about a third over the period; 70 % of visitors are anonymous, the rest identified clients and
providers from a pool of repeat identities. A visitor's mood decides the follow-ups, thumbs,
ratings and requests for a human; replies and their provider calls come from `replies`.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from analytics.demo.catalogue import Catalogue, Query
from analytics.demo.drafts import Message, Turn
from analytics.demo.replies import MAIN_CHAIN, SELF_HOSTED_CHAIN, SELF_HOSTED_SHARE, Model, Replies
from analytics.demo.vocabulary import (
    AGENTS,
    DOWN_COMMENTS,
    DOWN_REASONS,
    EMAIL_DOMAINS,
    ENDINGS,
    FIRST_NAMES,
    HANDOFF,
    LAST_NAMES,
    LOCALES,
    OPENINGS,
    PAGES,
    RATING_COMMENT,
    REFERRERS,
    USER_AGENTS,
)
from analytics.demo.writing import Batch
from assistant.models import ChatEvent, ChatMessage, ChatSession, Feedback, SessionRating
from assistant.services import make_title

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
        self.replies = Replies(self.rng, catalogue.quick_replies)
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
            domain = rng.choice(EMAIL_DOMAINS)
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
        topic = catalogue.random_topic(rng)
        quick = rng.random() < 0.18
        turns_wanted = min(40, 1 + int(rng.expovariate(1 / 4.7)))
        escalate_at = rng.randrange(turns_wanted) if escalates else -1
        before_now = (self.now - start).total_seconds()
        outage = chain is MAIN_CHAIN and any(end < before_now < begin for begin, end in self.outages)
        visit = Visit(identity=identity, mood=mood, chain=chain, topic=topic, outage=outage)

        opening = [(ChatEvent(name="widget_open", data={}), 0.0)] if rng.random() < 0.9 else []
        turns: list[Turn] = []
        t = 2 + rng.lognormvariate(math.log(6), 0.8)
        seq = 0
        for number in range(turns_wanted):
            turn = Turn(end=t)
            if number == escalate_at:
                query = rng.choice(catalogue.human)
                text = query.text
                if rng.random() < 0.5:
                    turn.events.append((ChatEvent(name="escalate", data={}), t + 0.5))
            elif number == 0 and quick:
                query = rng.choice(catalogue.quick_replies)
                text = query.text
                turn.events.append((ChatEvent(name="quick_reply", data={"text": text}), t - 0.05))
            elif number == 0:
                query = rng.choice(catalogue.by_topic[topic])
                text = rng.choice(OPENINGS) + query.text + rng.choice(ENDINGS)
            else:
                query = self._follow_up(visit, last=number == turns_wanted - 1)
                text = query.text
            seq += 1
            row = ChatMessage(seq=seq, role=ChatMessage.Role.USER, text=text, client_id=str(uuid.uuid4()))
            user = Message(row, t, finished=None)
            turn.messages.append(user)
            reply = self.replies.draw(turn, user, query, number, chain=visit.chain, outage=visit.outage)
            seq = reply.row.seq
            turn.end = reply.finished or reply.created
            self._reactions(turn, reply, query, visit.mood)
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
        return rng.choice(catalogue.by_topic[catalogue.random_topic(rng)])

    def _handoff(self, after: float, seq: int) -> Turn:
        joined = after + self.rng.lognormvariate(math.log(180), 0.8)
        agent = self.rng.choice(AGENTS)
        row = ChatMessage(seq=seq, role=ChatMessage.Role.AGENT, text=HANDOFF.format(agent=agent))
        handoff = ChatEvent(name="handoff", data={"agent": agent})
        return Turn(end=joined, messages=[Message(row, joined, finished=joined)], events=[(handoff, joined)])

    def _reactions(self, turn: Turn, reply: Message, query: Query, mood: str) -> None:
        """Thumbs and link clicks on a finished reply."""
        rng = self.rng
        if reply.row.status != ChatMessage.Status.COMPLETE or reply.finished is None:
            return
        if rng.random() < 0.2:
            down = rng.random() < {"good": 0.05, "meh": 0.3, "bad": 0.65}[mood]
            at = reply.finished + rng.lognormvariate(math.log(6), 0.8)
            reason = rng.choice(DOWN_REASONS) if down and rng.random() < 0.6 else ""
            comment = rng.choice(DOWN_COMMENTS) if down and rng.random() < 0.3 else ""
            rating = Feedback.Rating.DOWN if down else Feedback.Rating.UP
            turn.feedback.append((Feedback(message=reply.row, rating=rating, reason=reason, comment=comment), at))
            turn.end = max(turn.end, at)
        if query.links and rng.random() < 0.08:
            at = reply.finished + rng.lognormvariate(math.log(15), 0.7)
            data = {"url": rng.choice(query.links), "message_id": str(reply.row.public_id)}
            turn.events.append((ChatEvent(name="link_click", data=data), at))
            turn.end = max(turn.end, at)

    # --- placing a session in time --------------------------------------------------------
    def _place(
        self, start: datetime, visit: Visit, opening: list[tuple[ChatEvent, float]], turns: list[Turn], batch: Batch
    ) -> None:
        """Add the rating and the end of chat, then append the rows that are not in the future."""
        rng = self.rng
        last = turns[-1].end
        rating = None
        if rng.random() < 0.15:
            resolved = rng.choices((True, None, False), weights=RESOLVED_WEIGHTS[visit.mood])[0]
            score = rng.choices((1, 2, 3, 4, 5), weights=SCORE_WEIGHTS[resolved])[0]
            last += rng.lognormvariate(math.log(10), 0.6)
            comment = RATING_COMMENT if score == 5 and rng.random() < 0.2 else ""
            rating = (SessionRating(score=score, resolved=resolved, comment=comment), last)
        closed = last + rng.lognormvariate(math.log(20), 1) if rng.random() < (0.8 if rating else 0.35) else None

        # The first turn is always in the past; whatever would happen after now is left out.
        room = (self.now - start).total_seconds()
        if turns[0].end > room:
            start, room = self.now - timedelta(seconds=turns[0].end + 1), turns[0].end + 1
        kept = [turn for turn in turns if turn.end <= room]  # turns end in order: a prefix
        complete = len(kept) == len(turns)
        if closed is not None and (not complete or closed > room):
            closed = None
        if rating is not None and (not complete or rating[1] > room):
            rating = None

        def at(offset: float) -> datetime:
            return start + timedelta(seconds=offset)

        messages = [message for turn in kept for message in turn.messages]
        seen = at(max(closed or 0, *(m.finished or m.created for m in messages)))
        identity = visit.identity
        page_url, page_title = PAGES[visit.topic]
        session = ChatSession(
            token_hash=f"{rng.getrandbits(256):064x}",
            status=ChatSession.Status.CLOSED if closed is not None else ChatSession.Status.ACTIVE,
            title=make_title(messages[0].row.text),
            last_seq=messages[-1].row.seq,
            user_type=visit.user_type,
            external_user_id=identity.external_id if identity else "",
            external_user_name=identity.name if identity else "",
            external_user_email=identity.email if identity else "",
            page_url=page_url,
            page_title=page_title,
            referrer=rng.choice(REFERRERS),
            locale=rng.choice(LOCALES),
            user_agent=rng.choice(USER_AGENTS),
            created_at=start,
            updated_at=seen,
            last_seen_at=seen,
            closed_at=at(closed) if closed is not None else None,
        )
        batch.sessions.append(session)
        for message in messages:
            row = message.row
            row.session = session
            row.created_at = at(message.created)
            row.finished_at = at(message.finished) if message.finished is not None else None
            row.updated_at = row.finished_at or row.created_at
            batch.messages.append(row)
        for event, offset in opening + [event for turn in kept for event in turn.events]:
            event.session, event.created_at = session, at(max(0.0, offset))
            batch.events.append(event)
        for turn in kept:
            for call in turn.calls:
                call.row.session, call.row.started_at = session, at(call.start)
                batch.calls.append(call.row)
            for feedback, offset in turn.feedback:
                feedback.session, feedback.created_at, feedback.updated_at = session, at(offset), at(offset)
                batch.feedback.append(feedback)
        if rating is not None:
            rated, offset = rating
            rated.session, rated.created_at, rated.updated_at = session, at(offset), at(offset)
            batch.ratings.append(rated)
