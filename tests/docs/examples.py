"""The runnable code blocks of the docs: fences whose info string has ``run``.

A block is marked by its info string — ```` ```python run ````, ```` ```js run ````,
```` ```sh run ```` — which renders like any other block of that language. Words after
``run`` say what the block needs (``NEEDS``): ```` ```sh run secret ```` runs against a
suite with ``JWT_SECRET`` (``DOCS_SECRET``, exported to the block too) and no anonymous
access, with ``ACCORD_TOKEN`` minted by ``accord token``; ```` ```python run extension ````
is an extension module, loaded by a real ``accord dev`` through ``SYNC_EXTENSIONS``.
Conventions for a block (CONTRIBUTING.md): it runs as it is written, against a server
with anonymous access; it may read ``ACCORD_URL`` (the WebSocket URL) and
``ACCORD_HTTP_URL`` (the edge's HTTP root) and ``ACCORD_TOKEN`` (empty: anonymous),
defaulting to ``ws://localhost:8080/ws`` / ``http://localhost:8080``; it ends by itself
within a minute; a failure is an exception, an assertion or a non-zero exit. JS blocks
run as a module script on a page the edge serves, so ``/sdk/accord.js`` and ``/ws``
resolve.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = {
    "python": "python",
    "py": "python",
    "js": "js",
    "javascript": "js",
    "sh": "sh",
    "bash": "sh",
}
NEEDS = {
    "secret": ("python", "sh"),  # a suite with JWT_SECRET, and ACCORD_TOKEN
    "extension": ("python",),  # the block is an extension module (SYNC_EXTENSIONS)
}
"""What a block may ask for after ``run``, and the languages that may ask."""
DOCS_SECRET = "dev-secret-0123456789-0123456789-0123"
"""The ``JWT_SECRET`` of the suite ``secret`` blocks run against (the docs' example secret)."""
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class Example:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str  # python, js or sh
    code: str
    needs: frozenset[str] = frozenset()  # of NEEDS

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
        if len(words) >= 2 and words[1] == "run":
            where = f"{path}:{index + 1}"
            if words[0] not in LANGUAGES:
                raise ValueError(f"{where}: cannot run a {words[0]!r} block")
            language = LANGUAGES[words[0]]
            for need in words[2:]:
                if need not in NEEDS:
                    known = ", ".join(sorted(NEEDS))
                    raise ValueError(f"{where}: unknown need {need!r} (known: {known})")
                if language not in NEEDS[need]:
                    raise ValueError(f"{where}: a {language} block cannot need {need!r}")
            code = "\n".join(lines[index + 1 : end]) + "\n"
            found.append(Example(path, index + 1, language, code, frozenset(words[2:])))
        index = end + 1
    return found


def documents() -> list[Path]:
    """README.md and every docs/*.md page (the marker decides what runs)."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def all_examples() -> list[Example]:
    return [example for path in documents() for example in examples(path)]
