"""The hot modules run compiled (mypyc) after `make install`, and pure with ACCORD_PURE_PYTHON=1.

`make test` runs the suite twice: once as installed (compiled), once over tests/unit with
ACCORD_PURE_PYTHON=1. In the first run every module listed under [tool.accord.compiled] in the
packages' pyproject.toml must be an extension module, so a compile that silently failed (or a
module dropped from the build) fails here; in the second, none may be.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from accord.common import native

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("libs/common", "services/sync", "services/edge")


def listed() -> list[str]:
    modules: list[str] = []
    for package in PACKAGES:
        config = tomllib.loads((ROOT / package / "pyproject.toml").read_text())
        modules += config["tool"]["accord"]["compiled"]["modules"]
    return modules


def test_the_compiled_list_names_hot_modules_with_a_source() -> None:
    modules = listed()
    assert len(modules) >= 10 and len(set(modules)) == len(modules)
    for name in modules:
        package, _, leaf = name.rpartition(".")
        sources = [ROOT / p / "src" / Path(*package.split(".")) / f"{leaf}.py" for p in PACKAGES]
        assert any(path.is_file() for path in sources), name


@pytest.mark.skipif(native.pure_requested(), reason="the pure run: see the test below")
def test_as_installed_every_listed_module_is_compiled() -> None:
    not_compiled = [n for n in listed() if not native.is_compiled(importlib.import_module(n))]
    assert not not_compiled, (
        f"not compiled: {not_compiled} (run `make install`, which compiles them with mypyc; "
        "or set ACCORD_PURE_PYTHON=1 for a pure-Python checkout)"
    )
    assert set(listed()) <= set(native.compiled())
    assert native.describe().startswith("compiled with mypyc: ")


@pytest.mark.skipif(native.pure_requested(), reason="the pure run: nothing compiled is loaded")
def test_no_compiled_module_is_older_than_its_source() -> None:
    # A compiled module shadows its .py: an edit (or a checkout) after the build would be
    # silently ignored. `make install` / `make test` rebuild when a listed source changes.
    stale = []
    for name in listed():
        module = importlib.import_module(name)
        assert module.__file__ is not None
        binary = Path(module.__file__)
        source = binary.with_name(binary.name.split(".", 1)[0] + ".py")
        if source.stat().st_mtime > binary.stat().st_mtime:
            stale.append(name)
    assert not stale, f"compiled before their source last changed: {stale} (run `make install`)"


@pytest.mark.skipif(not native.pure_requested(), reason="the compiled run: see the test above")
def test_with_accord_pure_python_no_module_is_compiled() -> None:
    for name in listed():
        module = importlib.import_module(name)
        assert not native.is_compiled(module), name
        assert module.__file__ is not None and module.__file__.endswith(".py"), name
    assert native.compiled() == []
    assert native.describe() == "pure Python (ACCORD_PURE_PYTHON=1)"


def test_the_variable_switches_a_fresh_interpreter_to_the_sources() -> None:
    # Whatever is installed, ACCORD_PURE_PYTHON=1 loads the hot modules from their .py files.
    code = (
        "import accord.common, sys; from accord.common import native; "
        f"mods = {listed()!r}; [__import__(m) for m in mods]; "
        "print(sum(native.is_compiled(sys.modules[m]) for m in mods), native.describe())"
    )
    env = {**os.environ, native.PURE_ENV: "1"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "0 pure Python (ACCORD_PURE_PYTHON=1)"


@pytest.mark.parametrize("module", ["accord.sync.merge", "accord.edge.codec"])
def test_the_variable_applies_to_a_hot_module_imported_first(module: str) -> None:
    # No accord.common import before it: the package's own __init__ brings the switch.
    code = f"import {module} as m, sys; print(m.__file__.endswith('.py'))"
    env = {**os.environ, native.PURE_ENV: "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "True", result.stderr


@pytest.mark.parametrize(
    ("value", "pure"),
    [("", False), ("0", False), ("false", False), ("no", False), ("1", True), ("yes", True)],
)
def test_what_counts_as_asking_for_pure_python(value: str, pure: bool) -> None:
    assert native.pure_requested({native.PURE_ENV: value}) is pure
    assert native.pure_requested({}) is False
