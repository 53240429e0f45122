"""What a cloud provider is sent: system prompt + knowledge sections, then the conversation.

Shared by every vendor module so that switching or failing over between vendors never changes
what the model is told.
"""

from __future__ import annotations

from assistant.providers.base import PromptMessage, ReplyRequest, estimate_tokens


def system_text(request: ReplyRequest) -> str:
    """The system prompt, followed by the retrieved knowledge sections (or a note that none matched)."""
    parts = [request.system_prompt.strip()] if request.system_prompt.strip() else []
    if not request.with_knowledge:
        return "\n\n".join(parts)
    if request.hits:
        excerpts = "\n\n---\n\n".join(f"[{hit.section.label}]\n{hit.section.text.strip()}" for hit in request.hits)
        parts.append(f"Knowledge base excerpts, best match first:\n\n{excerpts}")
    else:
        parts.append("No knowledge base excerpt matches this question.")
    if request.quick_replies:
        parts.append("Topics the visitor can pick from: " + "; ".join(request.quick_replies))
    if request.locale:
        parts.append(f"The visitor's browser language is {request.locale}.")
    return "\n\n".join(parts)


def conversation(request: ReplyRequest) -> list[PromptMessage]:
    """The latest turns that fit `history_tokens`, then the question.

    Roles alternate and the list starts with the visitor, as Anthropic requires and the
    others accept: same-role neighbours are merged, empty texts dropped.
    """
    budget = request.history_tokens
    kept: list[PromptMessage] = []
    for message in reversed(request.history):
        cost = estimate_tokens(message.text)
        if cost > budget:
            break
        budget -= cost
        kept.append(message)
    kept.reverse()
    merged: list[PromptMessage] = []
    for message in [*kept, PromptMessage(role="user", text=request.query)]:
        if not message.text.strip():
            continue
        if merged and merged[-1].role == message.role:
            merged[-1] = PromptMessage(role=message.role, text=f"{merged[-1].text}\n\n{message.text}")
        else:
            merged.append(message)
    while merged and merged[0].role != "user":
        merged.pop(0)
    return merged
