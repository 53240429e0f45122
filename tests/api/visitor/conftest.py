"""Fixtures of the visitor API tests: a client, and a conversation with its token."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model

from assistant.handoff import services as handoff_services
from tests.api.visitor.client import ApiClient
from tests.assistant.handoff.conftest import support_agents

BASE = "/api/v1"


@dataclass
class Conversation:
    """A conversation made through the API, and a client holding its token."""

    id: str
    token: str
    client: ApiClient

    @property
    def path(self) -> str:
        return f"{BASE}/conversations/{self.id}/"

    @property
    def messages(self) -> str:
        return f"{self.path}messages/"


@pytest.fixture(autouse=True)
def _no_linger(settings) -> None:
    """Each request closes its connection at once (test_presence.py tests the linger)."""
    settings.API_PRESENCE_LINGER_S = 0


@pytest.fixture
def api() -> ApiClient:
    """An anonymous client at 127.0.0.1."""
    return ApiClient()


async def start_conversation(api: ApiClient, **fields: object) -> Conversation:
    """`POST /conversations/`, checked."""
    reply = await api.post(f"{BASE}/conversations/", fields)
    assert reply.status == 201, reply.body
    data = reply.json()
    return Conversation(id=data["id"], token=data["token"], client=ApiClient(api.ip, token=data["token"]))


@pytest.fixture
async def conversation(api: ApiClient) -> Conversation:
    """A new conversation."""
    return await start_conversation(api)


@database_sync_to_async
def agent_claims(conversation_id: str, name: str = "Ada") -> None:
    """A person at the desk takes the conversation (no AI replies from now on)."""
    agent = get_user_model().objects.create_user(username=name.lower(), password="x", first_name=name)
    agent.groups.add(support_agents())
    handoff_services.claim(session_id=conversation_id, agent=get_user_model().objects.get(pk=agent.pk))
