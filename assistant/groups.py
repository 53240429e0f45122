"""Channel-layer group names, built in exactly one place."""

from __future__ import annotations

import uuid


def session_group(public_id: uuid.UUID | str) -> str:
    """Every connection of one chat session, in any process, joins this group."""
    return f"chat.session.{uuid.UUID(str(public_id)).hex}"
