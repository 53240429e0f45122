"""The provider chain, built from settings (AI_PROVIDERS and each vendor's key, model, URL…)."""

from __future__ import annotations

import asyncio
import importlib
import logging
import weakref

from django.conf import settings

from assistant.providers.base import AIProvider
from assistant.providers.local import LocalProvider

logger = logging.getLogger(__name__)

_KEY_SETTING = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY"}
_MODULES = {
    "openai": "assistant.providers.openai_provider",
    "anthropic": "assistant.providers.anthropic_provider",
    "gemini": "assistant.providers.gemini_provider",
}

# SDK clients hold connection pools bound to the event loop that first used them: one chain per
# loop, rebuilt when the settings it was built from change (tests change them).
_chains: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[tuple[object, ...], list[AIProvider]]] = (
    weakref.WeakKeyDictionary()
)


def missing_keys() -> list[str]:
    """Providers listed in AI_PROVIDERS whose API key is not set."""
    return [
        name for name in settings.AI_PROVIDERS if name in _KEY_SETTING and not getattr(settings, _KEY_SETTING[name])
    ]


def log_configuration() -> None:
    """One line per listed provider that cannot be used, and one naming the chain (at startup)."""
    for name in missing_keys():
        logger.warning(
            "AI provider %r is listed in AI_PROVIDERS but %s is not set: it is skipped.", name, _KEY_SETTING[name]
        )
    usable = [name for name in settings.AI_PROVIDERS if name not in missing_keys()]
    logger.info("AI providers, in failover order: %s", ", ".join(usable) or "none")
    for name in usable:
        if name in _MODULES:
            # Import the SDK now (about a second for some) rather than during the first reply.
            importlib.import_module(_MODULES[name])


def provider_chain() -> list[AIProvider]:
    """The usable providers of AI_PROVIDERS, in order (those without a key left out)."""
    fingerprint = _fingerprint()
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        cached = _chains.get(loop)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        for stale in cached[1] if cached else []:
            # Settings changed: close the old SDK clients (a reply may still hold one: it finishes).
            loop.create_task(stale.aclose())
    chain = [_build(name) for name in settings.AI_PROVIDERS if name not in missing_keys()]
    if loop is not None:
        _chains[loop] = (fingerprint, chain)
    return chain


def get_provider() -> AIProvider:
    """The first provider of the chain (used where no failover applies)."""
    chain = provider_chain()
    return chain[0] if chain else _build("local")


def _build(name: str) -> AIProvider:
    if name == "local":
        return LocalProvider(token_delay_ms=settings.LOCAL_TOKEN_DELAY_MS, chunk_words=settings.LOCAL_CHUNK_WORDS)
    common = {
        "connect_timeout_s": settings.PROVIDER_CONNECT_TIMEOUT_S,
        "read_timeout_s": max(settings.PROVIDER_FIRST_TOKEN_TIMEOUT_S, settings.PROVIDER_IDLE_TIMEOUT_S) + 5,
    }
    prefix = name.upper()
    options = {
        "api_key": getattr(settings, f"{prefix}_API_KEY"),
        "model": getattr(settings, f"{prefix}_MODEL"),
        "base_url": getattr(settings, f"{prefix}_BASE_URL"),
        "max_tokens": getattr(settings, f"{prefix}_MAX_TOKENS"),
        **common,
    }
    if hasattr(settings, f"{prefix}_TEMPERATURE"):  # Anthropic's current API has none
        options["temperature"] = getattr(settings, f"{prefix}_TEMPERATURE")
    # Imported here: a deployment on the local assistant alone never loads the vendor SDKs.
    if name == "openai":
        from assistant.providers.openai_provider import OpenAIProvider

        return OpenAIProvider(**options)
    if name == "anthropic":
        from assistant.providers.anthropic_provider import AnthropicProvider

        return AnthropicProvider(**options)
    if name == "gemini":
        from assistant.providers.gemini_provider import GeminiProvider

        return GeminiProvider(**options)
    raise ValueError(f"unknown provider {name!r}")


def _fingerprint() -> tuple[object, ...]:
    names = [
        "AI_PROVIDERS",
        "LOCAL_TOKEN_DELAY_MS",
        "LOCAL_CHUNK_WORDS",
        "PROVIDER_CONNECT_TIMEOUT_S",
        "PROVIDER_FIRST_TOKEN_TIMEOUT_S",
        "PROVIDER_IDLE_TIMEOUT_S",
    ]
    for vendor in _KEY_SETTING:
        prefix = vendor.upper()
        names += [f"{prefix}_{part}" for part in ("API_KEY", "MODEL", "BASE_URL", "TEMPERATURE", "MAX_TOKENS")]
    return tuple(tuple(value) if isinstance(value := getattr(settings, name, None), list) else value for name in names)


async def close_chain() -> None:
    """Close the SDK clients of this event loop's chain (tests and shutdown)."""
    cached = _chains.pop(asyncio.get_running_loop(), None)
    for provider in cached[1] if cached else []:
        try:
            await provider.aclose()
        except Exception:
            logger.exception("Could not close provider %s", provider.name)
