"""Turn a folder of Markdown files into sections, one per heading.

A section is the unit the assistant answers from and analytics counts as a topic, so its id
must be stable across edits elsewhere in the file: `<relative path>#<heading slug>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_HEADING = re.compile(r"^(#{1,3})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


@dataclass(frozen=True, slots=True)
class Section:
    """One heading's worth of a knowledge file."""

    id: str
    title: str
    document: str
    source: str
    text: str

    @property
    def label(self) -> str:
        """How the section is named to visitors: 'Document › Heading'."""
        return self.title if self.title == self.document else f"{self.document} › {self.title}"


def slugify(text: str) -> str:
    """GitHub-style anchor for a heading."""
    slug = re.sub(r"[^\w\s-]", "", text.lower()).strip()
    return re.sub(r"[\s_]+", "-", slug) or "section"


def load_sections(directory: Path) -> list[Section]:
    """Every section of every `*.md` file under `directory`, in a stable order."""
    sections: list[Section] = []
    for path in sorted(directory.rglob("*.md")):
        if path.is_file():
            relative = path.relative_to(directory).as_posix()
            sections.extend(parse_markdown(path.read_text(encoding="utf-8"), source=relative))
    return sections


def parse_markdown(markdown: str, *, source: str) -> list[Section]:
    """Split one Markdown document at its level 1–3 headings (ignoring code fences)."""
    document = Path(source).stem.replace("-", " ").replace("_", " ").capitalize()
    chunks: list[tuple[str, list[str]]] = []
    title: str | None = None
    lines: list[str] = []
    in_fence = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _HEADING.match(line)
        if heading:
            if title is not None or any(item.strip() for item in lines):
                chunks.append((title or document, lines))
            title = heading.group(2).strip()
            if len(heading.group(1)) == 1:
                document = title
            lines = []
        else:
            lines.append(line)
    if title is not None or any(item.strip() for item in lines):
        chunks.append((title or document, lines))

    sections: list[Section] = []
    used: set[str] = set()
    for heading, body in chunks:
        text = "\n".join(body).strip()
        if not text:
            continue
        base = slug = slugify(heading)
        suffix = 0
        while slug in used:
            suffix += 1
            slug = f"{base}-{suffix}"
        used.add(slug)
        sections.append(Section(id=f"{source}#{slug}", title=heading, document=document, source=source, text=text))
    return sections
