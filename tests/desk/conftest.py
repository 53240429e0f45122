"""The desk tests use the handoff tests' people."""

from tests.assistant.handoff.conftest import make_agent  # noqa: F401 (a fixture, shared)
