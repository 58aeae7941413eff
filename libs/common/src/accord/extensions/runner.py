"""Calling one hook across the loaded extensions, in order, each with a timeout.

``HookRunner.run`` gives the first ``Refuse``, or a ``Failed`` when a hook
raised, ran past its timeout or answered something it may not, or else the
payload as the last rewrite left it (the same object when nobody rewrote).
A failure is counted in the service's ``accord_<service>_extension_errors_total``
(labels ``hook``, ``extension``) and logged once; it stops the run, and the
service answers that request (or change) with ``Failed.code``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from accord.extensions.loader import Extension
from accord.extensions.payloads import Refuse, Rewrite

log = logging.getLogger(__name__)

P = TypeVar("P")


class ErrorCounter(Protocol):
    """A Prometheus ``Counter`` with the labels ``hook`` and ``extension``."""

    def labels(self, hook: str, extension: str) -> Any: ...


@dataclass(frozen=True)
class Failed:
    """A hook failed: ``UNAVAILABLE`` when it ran past its timeout, ``INTERNAL`` when it
    raised or answered something it may not."""

    code: Literal["UNAVAILABLE", "INTERNAL"]
    message: str
    extension: str


@dataclass(frozen=True)
class Rewriting:
    """How a hook's ``Rewrite`` becomes the next payload: the payload field it replaces,
    and a check of the new value (raises ``ValueError`` with a reason: the extension's
    fault, counted as its failure) that may also normalise it."""

    field: str
    check: Callable[[Any], Any] = lambda value: value


Method = Callable[[Any], Any]


class HookRunner(Generic[P]):
    def __init__(
        self,
        extensions: Sequence[Extension],
        hook: str,
        timeout: float,
        errors: ErrorCounter,
        rewriting: Rewriting | None = None,
    ) -> None:
        self.hook = hook
        self._timeout = timeout
        self._errors = errors
        self._rewriting = rewriting
        self._methods: list[tuple[str, Method]] = [
            (e.name, method) for e in extensions if (method := e.hook(hook)) is not None
        ]

    @property
    def active(self) -> bool:
        """Whether any extension implements the hook (else ``run`` need not be called)."""
        return bool(self._methods)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self._methods)

    async def run(self, payload: P) -> P | Refuse | Failed:
        for name, method in self._methods:
            reply = await self.call(name, method, payload)
            if reply is None:
                continue
            if isinstance(reply, Refuse | Failed):
                return reply
            if isinstance(reply, Rewrite) and self._rewriting is not None:
                try:
                    value = self._rewriting.check(reply.value)
                except ValueError as error:
                    return self._failed(name, "INTERNAL", f"gave an invalid rewrite: {error}")
                payload = dataclasses.replace(  # type: ignore[type-var]
                    payload, **{self._rewriting.field: value}
                )
                continue
            return self._failed(name, "INTERNAL", f"answered {type(reply).__name__}")
        return payload

    async def call(self, name: str, method: Method, payload: object) -> Any:
        """One extension's hook: its reply, or a ``Failed``."""
        try:
            # A timeout scope, not wait_for: no task per call (half the cost of a no-op hook).
            async with asyncio.timeout(self._timeout):
                return await method(payload)
        except TimeoutError:
            return self._failed(name, "UNAVAILABLE", f"ran past its {self._timeout:g}s timeout")
        except Exception as error:
            self._errors.labels(self.hook, name).inc()
            log.error(
                "extension %s: %s raised %s: %s",
                name,
                self.hook,
                type(error).__name__,
                error,
                exc_info=error,
            )
            return Failed("INTERNAL", f"extension {name} failed in {self.hook}", name)

    def _failed(self, name: str, code: Literal["UNAVAILABLE", "INTERNAL"], reason: str) -> Failed:
        self._errors.labels(self.hook, name).inc()
        log.warning("extension %s: %s %s", name, self.hook, reason)
        what = "timed out" if code == "UNAVAILABLE" else "failed"
        return Failed(code, f"extension {name} {what} in {self.hook}", name)
