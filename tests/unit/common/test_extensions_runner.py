"""accord.extensions' runner: order, first refusal, rewrites, timeouts, raising hooks."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from accord.extensions import (
    BeforeCommit,
    BeforeCommitReply,
    Extension,
    Failed,
    HookRunner,
    Refuse,
    Rewrite,
    Rewriting,
)
from prometheus_client import CollectorRegistry, Counter

PAYLOAD = BeforeCommit(
    room="r",
    user_id="u",
    client_id="c",
    client_seq=1,
    collection="messages",
    key="m1",
    op={"kind": "set", "fields": {"text": "hello darn world"}},
    record=None,
)


class Recorder:
    def __init__(self, name: str, calls: list[str], reply: BeforeCommitReply = None) -> None:
        self.name, self.calls, self.reply = name, calls, reply
        self.seen: list[BeforeCommit] = []

    async def before_commit(self, change: BeforeCommit) -> BeforeCommitReply:
        self.calls.append(self.name)
        self.seen.append(change)
        return self.reply


class Masker:
    async def before_commit(self, change: BeforeCommit) -> BeforeCommitReply:
        fields = dict(change.op["fields"])
        fields["text"] = str(fields["text"]).replace("darn", "****")
        return Rewrite({"kind": "set", "fields": fields})


class Sleeper:
    async def before_commit(self, change: BeforeCommit) -> BeforeCommitReply:
        await asyncio.sleep(10)
        return None


class Raiser:
    async def before_commit(self, change: BeforeCommit) -> BeforeCommitReply:
        raise KeyError("boom")


class WrongReply:
    async def before_commit(self, change: BeforeCommit) -> Any:
        return "yes"


def counter() -> Counter:
    return Counter(
        "accord_test_extension_errors_total",
        "test",
        ["hook", "extension"],
        registry=CollectorRegistry(),
    )


def count(errors: Counter, extension: str) -> float:
    return errors.labels("before_commit", extension)._value.get()  # type: ignore[attr-defined,no-any-return]


def checked_op(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or "kind" not in value:
        raise ValueError("an op needs a kind")
    return value


def runner(
    *extensions: tuple[str, object], errors: Counter, timeout: float = 1.0
) -> HookRunner[BeforeCommit]:
    return HookRunner(
        [Extension(name, obj) for name, obj in extensions],
        "before_commit",
        timeout,
        errors,
        Rewriting("op", checked_op),
    )


async def test_runs_in_order_and_passes_the_payload_through() -> None:
    calls: list[str] = []
    errors = counter()
    run = runner(("a", Recorder("a", calls)), ("b", Recorder("b", calls)), errors=errors)
    assert run.active and run.names == ("a", "b")
    assert await run.run(PAYLOAD) is PAYLOAD
    assert calls == ["a", "b"]


async def test_no_implementation_is_inactive() -> None:
    run = runner(("x", object()), errors=counter())
    assert not run.active
    assert await run.run(PAYLOAD) is PAYLOAD


async def test_first_refusal_stops_the_run() -> None:
    calls: list[str] = []
    refusal = Refuse("FORBIDDEN", "not here")
    run = runner(
        ("a", Recorder("a", calls, refusal)), ("b", Recorder("b", calls)), errors=counter()
    )
    assert await run.run(PAYLOAD) == refusal
    assert calls == ["a"]


async def test_a_rewrite_is_what_the_next_extension_and_the_caller_see() -> None:
    calls: list[str] = []
    after = Recorder("after", calls)
    run = runner(("mask", Masker()), ("after", after), errors=counter())
    result = await run.run(PAYLOAD)
    assert isinstance(result, BeforeCommit)
    assert result.op == {"kind": "set", "fields": {"text": "hello **** world"}}
    assert after.seen[0].op == result.op
    assert PAYLOAD.op["fields"]["text"] == "hello darn world"  # the original is untouched


async def test_a_timeout_is_unavailable_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []
    errors = counter()
    run = runner(("slow", Sleeper()), ("b", Recorder("b", calls)), errors=errors, timeout=0.05)
    with caplog.at_level(logging.WARNING, "accord.extensions.runner"):
        result = await run.run(PAYLOAD)
    assert isinstance(result, Failed)
    assert (result.code, result.extension) == ("UNAVAILABLE", "slow")
    assert calls == []
    assert count(errors, "slow") == 1
    assert any("slow" in r.getMessage() and "timeout" in r.getMessage() for r in caplog.records)


async def test_raising_is_internal_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    errors = counter()
    run = runner(("bad", Raiser()), errors=errors)
    with caplog.at_level(logging.ERROR, "accord.extensions.runner"):
        result = await run.run(PAYLOAD)
        again = await run.run(PAYLOAD)
    assert isinstance(result, Failed) and result.code == "INTERNAL"
    assert "boom" not in result.message  # the client is not told the extension's internals
    assert again == result
    assert count(errors, "bad") == 2
    assert [r.getMessage() for r in caplog.records].count(
        "extension bad: before_commit raised KeyError: 'boom'"
    ) == 2


@pytest.mark.parametrize("extension", [WrongReply(), Recorder("x", [], Rewrite({"no": "kind"}))])
async def test_a_reply_it_may_not_give_is_internal(extension: object) -> None:
    errors = counter()
    result = await runner(("odd", extension), errors=errors).run(PAYLOAD)
    assert isinstance(result, Failed) and result.code == "INTERNAL"
    assert count(errors, "odd") == 1


def test_refuse_takes_only_refusal_codes() -> None:
    with pytest.raises(ValueError, match="INTERNAL"):
        Refuse("INTERNAL", "no")
    assert len(Refuse("BAD_REQUEST", "x" * 5000).message) == 1024


def docs_example() -> dict[str, Any]:
    """The Python example of docs/extensions.md, run."""
    text = (Path(__file__).resolve().parents[3] / "docs" / "extensions.md").read_text()
    (block,) = re.findall(r"```python[^\n]*\n(.*?)```", text, flags=re.S)
    namespace: dict[str, Any] = {}
    exec(compile(block, "docs/extensions.md", "exec"), namespace)
    return namespace


async def test_the_example_in_docs_extensions_md_runs() -> None:
    extension = docs_example()["factory"]()
    shouting = dataclasses.replace(PAYLOAD, op={"kind": "set", "fields": {"text": "HEY"}})
    assert await extension.before_commit(shouting) == Refuse("BAD_REQUEST", "no shouting")
    assert await extension.before_commit(PAYLOAD) is None
