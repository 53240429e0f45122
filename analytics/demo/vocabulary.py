"""What the demo's visitors write and who they are: `analytics/data/demo_vocabulary.toml`, read once.

The texts live in a data file, like the taxonomy they are written against (`topics.toml`);
this module only gives them names. Lists keep the file's order: the seeded draws pick by
position.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

PATH = Path(__file__).resolve().parent.parent / "data" / "demo_vocabulary.toml"

_DATA: dict[str, Any] = tomllib.loads(PATH.read_text(encoding="utf-8"))
_TOPICS: dict[str, dict[str, Any]] = _DATA["topics"]

# --- what visitors write --------------------------------------------------------------------
#: Per taxonomy topic ("" for none), first questions that mention it.
TOPIC_QUESTIONS: dict[str, list[str]] = {name: topic["questions"] for name, topic in _TOPICS.items()}
#: Per topic, its relative share of sessions.
TOPIC_WEIGHTS: dict[str, int] = {name: topic["weight"] for name, topic in _TOPICS.items()}
#: Per topic, the page (URL, title) the visitor opened the widget on.
PAGES: dict[str, tuple[str, str]] = {name: (topic["page_url"], topic["page_title"]) for name, topic in _TOPICS.items()}
GLAD: list[str] = _DATA["follow_ups"]["glad"]
CURIOUS: list[str] = _DATA["follow_ups"]["curious"]
ANNOYED: list[str] = _DATA["follow_ups"]["annoyed"]
HUMAN: list[str] = _DATA["follow_ups"]["human"]
OPENINGS: list[str] = _DATA["decoration"]["openings"]
ENDINGS: list[str] = _DATA["decoration"]["endings"]

# --- what the assistant and the support team say --------------------------------------------
#: Per kind of visitor message, the reply when the knowledge base finds nothing.
NO_ANSWER: dict[str, str] = _DATA["no_answer"]
AGENTS: list[str] = _DATA["support"]["agents"]
#: An agent's first message; `{agent}` is the agent's name.
HANDOFF: str = _DATA["support"]["handoff"]

# --- how visitors react ---------------------------------------------------------------------
DOWN_REASONS: list[str] = _DATA["feedback"]["down_reasons"]
DOWN_COMMENTS: list[str] = _DATA["feedback"]["down_comments"]
RATING_COMMENT: str = _DATA["feedback"]["rating_comment"]

# --- who visitors are -----------------------------------------------------------------------
FIRST_NAMES: list[str] = _DATA["visitors"]["first_names"]
LAST_NAMES: list[str] = _DATA["visitors"]["last_names"]
EMAIL_DOMAINS: list[str] = _DATA["visitors"]["email_domains"]
REFERRERS: list[str] = _DATA["visitors"]["referrers"]
LOCALES: list[str] = _DATA["visitors"]["locales"]
USER_AGENTS: list[str] = _DATA["visitors"]["user_agents"]
