"""Which providers answer: AI_PROVIDERS minus those without a key, reported once at startup."""

from __future__ import annotations

import logging
from typing import Any

from assistant.providers.registry import log_configuration, provider_chain


def test_a_provider_without_its_key_is_skipped_with_one_clear_line(settings: Any, caplog: Any) -> None:
    settings.AI_PROVIDERS = ["openai", "gemini", "local"]
    settings.GEMINI_API_KEY = "g-key"
    with caplog.at_level(logging.INFO, logger="assistant.providers.registry"):
        log_configuration()
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert warnings == ["AI provider 'openai' is listed in AI_PROVIDERS but OPENAI_API_KEY is not set: it is skipped."]
    assert "AI providers, in failover order: gemini, local" in caplog.text
    assert [provider.name for provider in provider_chain()] == ["gemini", "local"]


async def test_the_chain_is_rebuilt_when_settings_change(settings: Any) -> None:
    settings.AI_PROVIDERS = ["anthropic", "local"]
    settings.ANTHROPIC_API_KEY = "a-key"
    settings.ANTHROPIC_MODEL = "claude-test"
    first = provider_chain()
    assert [(p.name, p.model) for p in first] == [("anthropic", "claude-test"), ("local", "knowledge-base")]
    assert provider_chain() is first  # cached for this event loop: SDK clients are reused
    settings.ANTHROPIC_MODEL = "claude-other"
    assert provider_chain()[0].model == "claude-other"
