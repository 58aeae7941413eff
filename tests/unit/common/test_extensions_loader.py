"""accord.extensions' loader: factories named package.module:factory, each error one line."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from accord.common.config import ConfigError
from accord.extensions import ExtensionContext, load_extensions, parse_specs

from tests.support.suite import UNPROTECTED_GRPC

MODULE = """
from accord.extensions import BeforeCommit, ExtensionContext

class Counting:
    def __init__(self, context=None):
        self.context = context

    async def before_commit(self, change: BeforeCommit):
        return None

def plain():
    return Counting()

def with_context(context: ExtensionContext):
    return Counting(context)

def raising():
    raise RuntimeError("no word list")

def hookless():
    return object()

class SyncHook:
    def before_commit(self, change):
        return None

def sync_hook():
    return SyncHook()

async def coroutine_factory():
    return Counting()

class Holder:
    nested = staticmethod(plain)

NOT_CALLABLE = 42
"""


@pytest.fixture
def module(tmp_path: Path) -> Iterator[str]:
    name = f"ext_fixture_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(MODULE))
    (tmp_path / "broken_ext.py").write_text("import no_such_module_anywhere\n")
    sys.path.insert(0, str(tmp_path))
    yield name
    sys.path.remove(str(tmp_path))
    sys.modules.pop(name, None)
    sys.modules.pop("broken_ext", None)


def test_parse_specs_splits_and_checks() -> None:
    assert parse_specs(" a.b:c , d:e.f,", "SYNC_EXTENSIONS") == ("a.b:c", "d:e.f")
    assert parse_specs("", "SYNC_EXTENSIONS") == ()
    with pytest.raises(ConfigError, match=r"^SYNC_EXTENSIONS: 'a\.b' is not package\.module"):
        parse_specs("a.b", "SYNC_EXTENSIONS")
    with pytest.raises(ConfigError):
        parse_specs("a b:c", "SYNC_EXTENSIONS")


def test_loads_in_order_with_or_without_context(module: str) -> None:
    loaded = load_extensions(
        (f"{module}:plain", f"{module}:with_context", f"{module}:plain", f"{module}:Holder.nested"),
        "sync",
        "SYNC_EXTENSIONS",
    )
    assert [e.name for e in loaded] == [
        f"{module}:plain",
        f"{module}:with_context",
        f"{module}:plain#2",
        f"{module}:Holder.nested",
    ]
    plain, contextual = loaded[0].instance, loaded[1].instance
    assert plain.context is None  # type: ignore[attr-defined]
    context = contextual.context  # type: ignore[attr-defined]
    assert isinstance(context, ExtensionContext)
    assert (context.name, context.service) == (f"{module}:with_context", "sync")
    assert context.logger.name == f"accord.extensions.{module}"
    assert loaded[0].hook("before_commit") is not None
    assert loaded[0].hook("after_commit") is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("no_such_pkg.mod:factory", r"cannot import 'no_such_pkg\.mod' \(ModuleNotFoundError"),
        ("broken_ext:factory", r"cannot import 'broken_ext' \(ModuleNotFoundError"),
        ("{module}:missing", r"has no attribute 'missing'"),
        ("{module}:NOT_CALLABLE", r"is not callable"),
        ("{module}:raising", r"failed to start \(RuntimeError: no word list\)"),
        ("{module}:hookless", r"returned an object with no hook method"),
        ("{module}:sync_hook", r"before_commit is not a coroutine function"),
        ("{module}:coroutine_factory", r"is a coroutine function"),
    ],
)
def test_each_bad_entry_is_one_config_error_line(module: str, entry: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_extensions((entry.format(module=module),), "sync", "SYNC_EXTENSIONS")
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith("SYNC_EXTENSIONS: ")
    assert caught.match(message)


def test_sync_settings_parse_the_extension_settings() -> None:
    from accord.sync.settings import Settings

    settings = Settings.from_env(
        {"SYNC_EXTENSIONS": "examples.moderation:factory, examples.quota:factory"}
    )
    assert settings.extensions == ("examples.moderation:factory", "examples.quota:factory")
    assert settings.extension_timeout == 1.0
    assert Settings.from_env({"EXTENSION_TIMEOUT": "0.25"}).extension_timeout == 0.25
    with pytest.raises(ConfigError, match=r"EXTENSION_TIMEOUT=0\.0 is out of range"):
        Settings.from_env({"EXTENSION_TIMEOUT": "0"})
    with pytest.raises(ConfigError, match=r"^SYNC_EXTENSIONS: 'examples' is not"):
        Settings.from_env({"SYNC_EXTENSIONS": "examples"})


def test_the_sync_process_stops_with_one_line_for_a_bad_extension(tmp_path: Path) -> None:
    import os
    import subprocess

    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path}/a.db",
        "SYNC_ADDR": "127.0.0.1:0",
        "METRICS_ADDR": "",
        "SYNC_EXTENSIONS": "examples.quota:factory",
        "QUOTA_LIMIT": "",
        **UNPROTECTED_GRPC,
    }
    done = subprocess.run(
        [sys.executable, "-m", "accord.sync"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "configuration error: SYNC_EXTENSIONS: examples.quota:factory failed to start "
        "(ValueError: QUOTA_LIMIT='' must be a positive integer)"
    ]
    assert not (tmp_path / "a.db").exists()  # stopped before opening anything
