"""Loading extensions named by a setting: ``package.module:factory``, comma-separated.

Each factory is imported and called once, at start-up, in the order given:
with the extension's ``ExtensionContext`` when it takes one argument, with no
argument when it takes none. Anything wrong (a module that does not import, a
missing attribute, something not callable, a factory that raises) is a
``ConfigError`` naming the setting and the entry, in one line.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from accord.common.config import ConfigError

HOOKS: tuple[str, ...] = (
    "on_connect",
    "on_authenticate",
    "on_subscribe",
    "before_push",
    "on_disconnect",
    "before_commit",
    "after_commit",
)

_SPEC = re.compile(r"\A[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*\Z")


@dataclass(frozen=True)
class ExtensionContext:
    """What a factory may be given: no settings, only how to report."""

    name: str
    """The extension's name: its ``package.module:factory`` entry (``#2`` … appended
    when the same entry is listed again); the ``extension`` label of its metrics."""
    service: str
    """``edge`` or ``sync``."""
    logger: logging.Logger
    """A logger named ``accord.extensions.<package.module>``."""


@dataclass(frozen=True)
class Extension:
    """A loaded extension: its name and the object its factory returned."""

    name: str
    instance: object

    def hook(self, name: str) -> Callable[[Any], Any] | None:
        """The extension's coroutine method ``name``, or None when it has none."""
        method = getattr(self.instance, name, None)
        return method if callable(method) else None


def parse_specs(raw: str, setting: str) -> tuple[str, ...]:
    """The entries of a comma-separated setting, each checked to be ``module:attribute``."""
    specs = tuple(part.strip() for part in raw.split(",") if part.strip())
    for spec in specs:
        if not _SPEC.match(spec):
            raise ConfigError(f"{setting}: {spec!r} is not package.module:factory")
    return specs


def _takes_context(factory: Callable[..., Any]) -> bool:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return bool(positional)


def _resolve(spec: str, setting: str) -> Callable[..., Any]:
    module_name, _, attribute = spec.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as error:
        raise ConfigError(
            f"{setting}: cannot import {module_name!r} ({type(error).__name__}: {error})"
        ) from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(
                f"{setting}: {module_name!r} has no attribute {attribute!r}"
            ) from None
    if not callable(target):
        raise ConfigError(f"{setting}: {spec!r} is not callable")
    factory: Callable[..., Any] = target
    return factory


def load_extensions(specs: tuple[str, ...], service: str, setting: str) -> tuple[Extension, ...]:
    """Import and call each factory of ``specs`` (see ``parse_specs``), in order."""
    loaded: list[Extension] = []
    seen: dict[str, int] = {}
    for spec in specs:
        seen[spec] = seen.get(spec, 0) + 1
        name = spec if seen[spec] == 1 else f"{spec}#{seen[spec]}"
        factory = _resolve(spec, setting)
        logger = logging.getLogger(f"accord.extensions.{spec.partition(':')[0]}")
        context = ExtensionContext(name=name, service=service, logger=logger)
        try:
            instance = factory(context) if _takes_context(factory) else factory()
        except Exception as error:
            raise ConfigError(
                f"{setting}: {spec} failed to start ({type(error).__name__}: {error})"
            ) from None
        if inspect.isawaitable(instance):
            if inspect.iscoroutine(instance):
                instance.close()
            raise ConfigError(f"{setting}: {spec} is a coroutine function; factories are plain")
        hooks = [h for h in HOOKS if callable(getattr(instance, h, None))]
        if not hooks:
            raise ConfigError(f"{setting}: {spec} returned an object with no hook method")
        for hook in hooks:
            if not inspect.iscoroutinefunction(getattr(instance, hook)):
                raise ConfigError(f"{setting}: {spec}'s {hook} is not a coroutine function")
        loaded.append(Extension(name, instance))
    return tuple(loaded)
