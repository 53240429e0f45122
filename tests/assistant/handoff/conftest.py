"""People for the handoff tests: agents in the "Support agents" group (made by a migration)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from assistant.handoff import services


def support_agents() -> Group:
    """The group the migration makes (transactional tests flush it away between tests)."""
    group, created = Group.objects.get_or_create(name="Support agents")
    if created:
        group.permissions.add(Permission.objects.get(content_type__app_label="assistant", codename="use_desk"))
    return group


@pytest.fixture
def make_agent(db) -> Callable[..., Any]:
    """A user who may use the desk; `available` switches them on at the desk."""

    def make(username: str = "ada", *, available: bool = True, first_name: str = "") -> Any:
        user = get_user_model().objects.create_user(username=username, password="x", first_name=first_name)
        user.groups.add(support_agents())
        user = get_user_model().objects.get(pk=user.pk)  # fresh: permission caches
        if available:
            services.presence_set(user=user, available=True)
        return user

    return make
