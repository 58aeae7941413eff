"""Write the values table of each chart's README.md from its values.schema.json and values.yaml.

Usage: python scripts/chart_docs.py [--check] [CHART_DIR ...]

Each row is one value: its key, its type (from the schema: types, enums, bounds), its
default (from values.yaml) and its description (the schema's ``description``, else the
comment above the key in values.yaml, else the comment at the end of its line). Objects
the schema describes property by property are opened into their keys; free-form ones
(``{}`` maps, lists) are one row. The table replaces what lies between the README's
``<!-- values:start -->`` and ``<!-- values:end -->`` markers; nothing else is touched.

``--check`` writes nothing and exits 1 naming every README whose table is stale
(``tests/deploy/test_charts.py`` runs it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHARTS = ("accord", "accord-edge", "accord-sync", "accord-presence")
START, END = "<!-- values:start -->", "<!-- values:end -->"
KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z0-9_.\-]+|\"[^\"]+\"|'[^']+'):(?P<rest>.*)$")
INLINE_COMMENT = re.compile(r"""^(?:[^#"']|"[^"]*"|'[^']*')*?\s#\s?(?P<text>.*)$""")


def comments(text: str) -> dict[str, str]:
    """Dotted key -> the comment lines just above it (or at the end of its line)."""
    found: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] = []
    header = True  # the comment block the file starts with describes the file, not a key
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            pending, header = [], False
            continue
        if stripped.startswith("#"):
            if not header:
                pending.append(stripped.lstrip("#").strip())
            continue
        header = False
        match = KEY.match(line)
        if match is None or stripped.startswith("- "):
            pending = []
            continue
        indent, key = len(match["indent"]), match["key"].strip("\"'")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([*(k for _, k in stack), key])
        inline = INLINE_COMMENT.match(match["rest"])
        words = [*pending, *([inline["text"].strip()] if inline else [])]
        if words:
            found[path] = " ".join(w for w in words if w)
        stack.append((indent, key))
        pending = []
    return found


def describe_type(schema: dict[str, Any], value: Any) -> str:
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}` (fixed)"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if alternatives and "type" not in schema:
        parts = [describe_type(alt, value) for alt in alternatives]
        return " or ".join(dict.fromkeys(p for p in parts if p))
    kind = schema.get("type")
    if kind is None:
        kind = type_of(value)
    text = " or ".join(kind) if isinstance(kind, list) else str(kind)
    bounds = []
    if "minimum" in schema:
        bounds.append(f"≥ {schema['minimum']}")
    if "exclusiveMinimum" in schema:
        bounds.append(f"> {schema['exclusiveMinimum']}")
    if "maximum" in schema:
        bounds.append(f"≤ {schema['maximum']}")
    if schema.get("minLength"):
        bounds.append(f"length ≥ {schema['minLength']}")
    if "maxLength" in schema:
        bounds.append(f"length ≤ {schema['maxLength']}")
    return text + (f" ({', '.join(bounds)})" if bounds else "")


_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),  # before int: a bool is an int too
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)


def type_of(value: Any) -> str:
    return next((name for kind, name in _JSON_TYPES if isinstance(value, kind)), "null")


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def rows(
    values: dict[str, Any], schema: dict[str, Any], notes: dict[str, str], prefix: str = ""
) -> list[tuple[str, str, str, str]]:
    found: list[tuple[str, str, str, str]] = []
    properties: dict[str, Any] = schema.get("properties", {})
    for key, value in values.items():
        path = f"{prefix}{key}"
        sub = properties.get(key, {})
        note = sub.get("description") or notes.get(path, "")
        opened = isinstance(value, dict) and value and sub.get("properties")
        if opened:
            if note:
                found.append((path, "object", "", note))
            found.extend(rows(value, sub, notes, f"{path}."))
            continue
        default = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
        found.append((path, describe_type(sub, value), f"`{default}`", note))
    return found


def table(chart: Path) -> str:
    values = yaml.safe_load((chart / "values.yaml").read_text()) or {}
    schema = json.loads((chart / "values.schema.json").read_text())
    notes = comments((chart / "values.yaml").read_text())
    lines = [
        "| key | type | default | description |",
        "|---|---|---|---|",
        *(
            f"| `{cell(k)}` | {cell(t)} | {cell(d)} | {cell(n)} |"
            for k, t, d, n in rows(values, schema, notes)
        ),
    ]
    return "\n".join(lines)


def rendered(chart: Path) -> tuple[str, str]:
    """(the README as it is, the README with a fresh table)."""
    readme = chart / "README.md"
    text = readme.read_text() if readme.exists() else ""
    if START not in text or END not in text:
        raise SystemExit(f"{readme}: needs the markers {START} and {END}")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    note = (
        "<!-- generated by scripts/chart_docs.py from values.schema.json and values.yaml: "
        "edit those, then run it -->"
    )
    return text, f"{head}{START}\n{note}\n\n{table(chart)}\n\n{END}{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a README is stale")
    parser.add_argument("charts", nargs="*", type=Path, help="chart directories (default: all)")
    args = parser.parse_args()
    charts = args.charts or [ROOT / "charts" / name for name in CHARTS]
    stale = []
    for chart in charts:
        old, new = rendered(chart)
        if old == new:
            continue
        stale.append(str(chart / "README.md"))
        if not args.check:
            (chart / "README.md").write_text(new)
    if args.check and stale:
        sys.exit(f"stale values tables (run scripts/chart_docs.py): {', '.join(stale)}")


if __name__ == "__main__":
    main()
