"""The runnable code blocks of the docs: fences whose info string ends in ``run``.

A block is marked by its info string — ```` ```python run ````, ```` ```js run ````,
```` ```sh run ```` — which renders like any other block of that language. Conventions
for a block (CONTRIBUTING.md): it runs as it is written, against a server with anonymous
access; it may read ``ACCORD_URL`` (the WebSocket URL) and ``ACCORD_HTTP_URL`` (the
edge's HTTP root) and ``ACCORD_TOKEN`` (empty: anonymous), defaulting to
``ws://localhost:8080/ws`` / ``http://localhost:8080``; it ends by itself within a
minute; a failure is an exception, an assertion or a non-zero exit. JS blocks run as a
module script on a page the edge serves, so ``/sdk/accord.js`` and ``/ws`` resolve.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = {"python": "python", "py": "python", "js": "js", "javascript": "js", "sh": "sh"}
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class Example:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str  # python, js or sh
    code: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def examples(path: Path) -> list[Example]:
    """Every runnable block of one Markdown file, in order."""
    found: list[Example] = []
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        fence, words = match["fence"], match["info"].split()
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        if len(words) == 2 and words[1] == "run":
            if words[0] not in LANGUAGES:
                raise ValueError(f"{path}:{index + 1}: cannot run a {words[0]!r} block")
            code = "\n".join(lines[index + 1 : end]) + "\n"
            found.append(Example(path, index + 1, LANGUAGES[words[0]], code))
        index = end + 1
    return found


def documents() -> list[Path]:
    """README.md and every docs/*.md page (the marker decides what runs)."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def all_examples() -> list[Example]:
    return [example for path in documents() for example in examples(path)]
