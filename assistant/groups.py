"""Channel-layer group names, built in exactly one place."""

from __future__ import annotations

import uuid


def session_group(public_id: uuid.UUID | str) -> str:
    """Every connection of one chat session, in any process, joins this group."""
    return f"chat.session.{uuid.UUID(str(public_id)).hex}"


def session_of_group(group: str) -> str | None:
    """The public id (canonical form) of a `session_group` name, or None for another group."""
    prefix = "chat.session."
    if not group.startswith(prefix):
        return None
    try:
        return str(uuid.UUID(hex=group[len(prefix) :]))
    except ValueError:
        return None


def reply_control_group(public_id: uuid.UUID | str) -> str:
    """The reply task of a session (in whichever process runs it) listens here for stop/snapshot."""
    return f"chat.control.{uuid.UUID(str(public_id)).hex}"


def desk_session_group(public_id: uuid.UUID | str) -> str:
    """Agent desk connections watching one conversation, in any process, join this group."""
    return f"desk.session.{uuid.UUID(str(public_id)).hex}"


def analytics_live_group() -> str:
    """Staff dashboards, in any process, join this group for live session events."""
    return "analytics.live"
