"""Hand-written lexicons for Spanish, French, German and Portuguese, scored by VADER's engine.

Nothing maintained fits offline for these languages: the PyPI `afinn` covers English and Danish
only, VADER's own lexicon is English, and the multilingual transformer models weigh hundreds of
megabytes and want a GPU to keep up. So each language has a small lexicon of customer-support
words in VADER's file format (`lexicons/<code>.txt`: word, mean score on VADER's -4..4 scale,
spread, ratings), and the text is prepared so that VADER's rules apply to it:

* the language's negations become "not" (VADER flips a word within three after "not"); French
  "ne"/"n'" is dropped, because "ne … pas" would otherwise negate twice;
* intensifiers become "very" and contrastive conjunctions "but" (VADER weighs the clause after
  "but" more);
* a few complaint phrases whose words are neutral one by one ("no funciona", "ne marche pas",
  "funktioniert nicht", "não funciona") become a negative word.

The measured agreement with hand labels is in docs/intelligence.md and
tests/analytics/test_sentiment.py.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

LEXICON_DIR = Path(__file__).resolve().parent / "lexicons"


@dataclass(frozen=True, slots=True)
class Rules:
    """How one language's text is rewritten before VADER scores it."""

    negations: frozenset[str]
    boosters: frozenset[str]
    contrasts: frozenset[str]
    dropped: frozenset[str] = frozenset()
    phrases: tuple[tuple[re.Pattern[str], str], ...] = ()


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _phrases(*pairs: tuple[str, str]) -> tuple[tuple[re.Pattern[str], str], ...]:
    return tuple((re.compile(pattern, re.IGNORECASE), word) for pattern, word in pairs)


RULES: dict[str, Rules] = {
    "es": Rules(
        negations=_words("no nunca jamás ni tampoco nadie ningún ninguna ninguno sin"),
        boosters=_words("muy tan súper super realmente totalmente sumamente demasiado bastante"),
        contrasts=frozenset({"pero", "sino"}),
        phrases=_phrases((r"\bno (funciona|funcionó|sirve|anda|carga|llega|llegó|puedo|me deja)\b", "roto")),
    ),
    "fr": Rules(
        negations=_words("pas jamais rien aucun aucune sans ni personne"),
        boosters=_words("très vraiment trop tellement complètement totalement extrêmement"),
        contrasts=frozenset({"mais"}),
        dropped=frozenset({"ne"}),
        phrases=_phrases(
            (r"\b(?:ne |n['’])?(marche|fonctionne|charge|arrive|peux) (pas|plus|jamais)\b", "cassé"),
        ),
    ),
    "de": Rules(
        negations=_words("nicht kein keine keinen keinem keiner nie niemals nichts ohne"),
        boosters=_words("sehr wirklich total echt extrem völlig absolut so"),
        contrasts=frozenset({"aber", "sondern", "jedoch"}),
        phrases=_phrases(
            (r"\b(funktioniert|klappt|geht|lädt|kommt|kam) (noch )?(nicht|nie)\b", "kaputt"),
            (r"\bnicht (funktioniert|klappt|geht|ankommt)\b", "kaputt"),
        ),
    ),
    "pt": Rules(
        negations=_words("não nunca jamais nem nenhum nenhuma sem ninguém"),
        boosters=_words("muito muita tão super realmente totalmente demais extremamente"),
        contrasts=frozenset({"mas", "porém", "contudo"}),
        phrases=_phrases((r"\bnão (funciona|funcionou|carrega|chegou|consigo|serve|abre)\b", "quebrado")),
    ),
}
_ELISION = re.compile(r"\b[cdjlmnst]['’]|\bqu['’]", re.IGNORECASE)
_WORD = re.compile(r"\w+", re.UNICODE)


@functools.cache
def analyzer(language: str) -> object:
    """VADER's analyzer with the language's lexicon (loaded once per process)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    # VADER joins lexicon_file to its own directory; an absolute path wins in os.path.join.
    return SentimentIntensityAnalyzer(lexicon_file=str(LEXICON_DIR / f"{language}.txt"))


def prepare(text: str, language: str) -> str:
    """`text` rewritten for VADER's rules (negations, intensifiers, contrasts, phrases)."""
    rules = RULES[language]
    for pattern, word in rules.phrases:
        text = pattern.sub(word, text)
    if language == "fr":
        text = _ELISION.sub(lambda m: "ne " if m.group(0)[0] in "nN" else "", text)

    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        lower = word.lower()
        if lower in rules.dropped:
            return ""
        if lower in rules.negations:
            return "not"
        if lower in rules.boosters:
            return "very"
        if lower in rules.contrasts:
            return "but"
        return word

    return _WORD.sub(swap, text)


def score(text: str, language: str) -> float:
    """VADER's compound score of `text` with the language's lexicon and rules."""
    return float(analyzer(language).polarity_scores(prepare(text, language))["compound"])  # type: ignore[attr-defined]
