"""Language detection with py3langid (a maintained, bundled-model fork of langid.py).

It answers in about 13 microseconds and loads in 0.1 s with no download; lingua, the more
accurate detector, held 1.3 GB with every model loaded. Short texts are where any detector
guesses ("thanks" came back as Xhosa), so below `MIN_CHARS` letters, or when unsure, the
caller's hint (the session's locale, or the language found earlier in the conversation) wins.
"""

from __future__ import annotations

import functools

#: Fewer letters than this, and the text alone does not decide the language.
MIN_CHARS = 12
#: Below this normalised probability the detector's answer is not trusted over the hint.
MIN_CONFIDENCE = 0.8


@functools.cache
def _identifier() -> object:
    from py3langid.langid import _load_identifier

    return _load_identifier(norm_probs=True)


def normalize(code: str) -> str:
    """An ISO 639-1 code from a locale or tag ("pt-BR" -> "pt", "EN_us" -> "en"); "" if none."""
    base = code.strip().replace("_", "-").split("-", 1)[0].lower()
    return base if len(base) == 2 and base.isalpha() else ""


def detect(text: str, *, hint: str = "") -> str:
    """The ISO 639-1 code of `text`'s language, or `hint` (normalised) when the text cannot tell."""
    hinted = normalize(hint)
    letters = sum(1 for char in text if char.isalpha())
    if letters < MIN_CHARS:
        return hinted
    code, confidence = _identifier().classify(text)  # type: ignore[attr-defined]
    if confidence < MIN_CONFIDENCE and hinted:
        return hinted
    return str(code)
