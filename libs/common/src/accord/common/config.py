"""Parsing helpers for settings modules.

Only each service's ``settings`` module reads the environment; it uses these
helpers so that every bad value stops start-up with one clear line naming the
variable, the value and what was expected.
"""

from __future__ import annotations

import contextlib
import difflib
import ipaddress
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import TypeVar

from accord.common.logs import LOG_FORMATS, LOG_LEVELS

T = TypeVar("T")

Env = Mapping[str, str]


class ConfigError(ValueError):
    """A setting has a value the service cannot start with."""


def environ() -> Env:
    return os.environ


def get_str(env: Env, name: str, default: str) -> str:
    value = env.get(name)
    return default if value is None or value == "" else value


def get_optional(env: Env, name: str) -> str | None:
    value = env.get(name)
    return None if value is None or value.strip() == "" else value.strip()


def get_int(env: Env, name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name}={value} is out of range [{minimum}, {maximum}]")
    return value


def get_float(env: Env, name: str, default: float, *, minimum: float, maximum: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name}={value} is out of range [{minimum}, {maximum}]")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def get_bool(env: Env, name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true or false)")


def get_choice(env: Env, name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value not in choices:
        raise ConfigError(f"{name}={raw!r} must be one of {', '.join(choices)}")
    return value


def get_addr(env: Env, name: str, default: str) -> tuple[str, int]:
    """A ``host:port`` address (``[::1]:port`` for IPv6)."""
    raw = get_str(env, name, default).strip()
    host, sep, port_text = raw.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"{name}={raw!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} has a port that is not a number") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{name}={raw!r} has a port outside 0-65535")
    return host, port


def format_addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def address_shown(host: str, port: int) -> str:
    """``host:port`` as a user would type it: a bind-all host as ``localhost``."""
    shown = "localhost" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 (shown, not bound)
    return format_addr(shown, port)


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1); a name is not resolved."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def get_url(env: Env, name: str, schemes: tuple[str, ...]) -> str | None:
    value = get_optional(env, name)
    if value is None:
        return None
    scheme, sep, _ = value.partition("://")
    if not sep or scheme not in schemes:
        raise ConfigError(f"{name} must start with one of {', '.join(s + '://' for s in schemes)}")
    return value


def get_log_level(env: Env) -> str:
    return get_choice(env, "LOG_LEVEL", "info", LOG_LEVELS)


def get_log_format(env: Env) -> str:
    return get_choice(env, "LOG_FORMAT", "text", LOG_FORMATS)


# The known-settings registry: which environment variables Accord reads, so that
# a misspelt one can be named instead of being silently ignored.

OTHER_SETTINGS = frozenset(
    {
        "SYNC_METRICS_ADDR",  # accord dev: sync's METRICS_ADDR
        "PRESENCE_METRICS_ADDR",  # accord dev: presence's METRICS_ADDR
        "ACCORD_URL",  # the SDKs' examples and tools: the WebSocket URL
        "ACCORD_HTTP_URL",  # ... the edge's HTTP root
        "ACCORD_TOKEN",  # ... a token (accord token)
        "ACCORD_PORT",  # docker-compose.yml: the published port
    }
)
"""Names read outside the services' ``Settings.from_env`` (which ``settings_read`` finds)."""

SIMILARITY = 0.85
"""How close (difflib's ratio) an unknown name must be to a setting to be called a misspelling."""


class RecordingEnv(Mapping[str, str]):
    """An environment that remembers every name looked up in it."""

    def __init__(self, env: Env) -> None:
        self._env = env
        self.names: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.names.add(name)
        return self._env[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)


def settings_read(
    readers: Iterable[Callable[[Env], object]], envs: Iterable[Env]
) -> frozenset[str]:
    """Every name ``readers`` (``Settings.from_env``) look up in any of ``envs``, and ours.

    Reading with the actual environment and with one that takes the defaults
    covers a setting read only when another is set (or unset). A reader that
    fails counts what it read up to the failure.
    """
    names: set[str] = set(OTHER_SETTINGS)
    sources = list(envs)
    for reader in readers:
        for source in sources:
            recorder = RecordingEnv(source)
            with contextlib.suppress(ConfigError):
                reader(recorder)
            names |= recorder.names
    return frozenset(names)


def misspelt_settings(env: Env, known: Collection[str]) -> list[str]:
    """One warning line per variable that looks like a setting but is not one.

    An ``ACCORD_*`` name Accord does not read, or a name within ``SIMILARITY`` of
    a known one (``HEARTBEAT_INTERVL``), named with the likely intended setting.
    Empty variables are skipped: every setting treats empty as unset.
    """
    warnings: list[str] = []
    candidates = sorted(known)
    for name in sorted(env):
        if name in known or not env[name].strip():
            continue  # empty: as good as unset
        if name.startswith("ACCORD_"):
            bare = name.removeprefix("ACCORD_")
            guess = difflib.get_close_matches(bare, candidates, n=1, cutoff=SIMILARITY)
            hint = f"; did you mean {guess[0]}?" if guess else ""
            warnings.append(f"{name} is not a setting Accord reads (settings have no prefix){hint}")
            continue
        guess = difflib.get_close_matches(name, candidates, n=1, cutoff=SIMILARITY)
        if guess:
            warnings.append(f"{name} is not a setting Accord reads; did you mean {guess[0]}?")
    return warnings
