"""Which of Accord's modules run compiled (mypyc) and which run as pure Python.

``make install`` compiles the hot modules listed under ``[tool.accord.compiled]`` in the
packages' pyproject.toml (scripts/compile.py; the Docker image's build does the same, the
wheels of ``make dist`` stay pure Python): an
extension module ``merge.cpython-311-x86_64-linux-gnu.so`` sits beside ``merge.py`` and
Python imports it first. The ``.py`` source stays the source of truth.

``ACCORD_PURE_PYTHON=1`` in the environment makes every ``accord.*`` module that has a
``.py`` source load from it, compiled files present or not: :func:`force_pure` puts a finder
in front of the import system, and ``accord.common`` calls it on import when the variable is
set (the services import ``accord.common`` before any hot module; so does tests/conftest.py).

:func:`compiled` lists the ``accord`` modules loaded from extension modules;
:func:`describe` is the line the services log at start-up ("compiled" or "pure").
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Sequence
from types import ModuleType

PURE_ENV = "ACCORD_PURE_PYTHON"


def pure_requested(environ: dict[str, str] | None = None) -> bool:
    """Whether ACCORD_PURE_PYTHON asks for pure Python (any value but empty, 0, false, no)."""
    value = (os.environ if environ is None else environ).get(PURE_ENV, "")
    return value.strip().lower() not in ("", "0", "false", "no")


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Finds ``accord.*`` modules among ``.py`` sources only, so no extension module wins."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("accord.") or path is None:
            return None
        loader = (importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES)
        for entry in path:
            spec = importlib.machinery.FileFinder(entry, loader).find_spec(fullname, target)
            if spec is not None and spec.loader is not None:
                return spec
        return None  # a namespace package, or no source: the usual finders decide


_FINDER = _SourceFirst()


def force_pure() -> None:
    """Load every ``accord.*`` module imported from now on from its ``.py`` source."""
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def is_compiled(module: ModuleType) -> bool:
    """Whether a module was loaded from an extension module (mypyc's output) or from source."""
    return isinstance(getattr(module, "__loader__", None), importlib.machinery.ExtensionFileLoader)


def compiled() -> list[str]:
    """The loaded ``accord`` modules that run compiled, sorted by name."""
    return sorted(
        name
        for name, module in list(sys.modules.items())
        if name.startswith("accord.") and is_compiled(module)
    )


def describe() -> str:
    """One line for the start-up log: whether the hot modules loaded so far run compiled."""
    names = compiled()
    if names:
        return f"compiled with mypyc: {len(names)} modules ({', '.join(names)})"
    why = f"{PURE_ENV}=1" if pure_requested() else "no compiled modules installed"
    return f"pure Python ({why})"
