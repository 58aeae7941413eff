"""An edge extension implementing every edge hook, for tests/e2e/test_edge_extensions.py.

    EDGE_EXTENSIONS=tests.support.edge_hooks:factory

What it does is keyed by markers in the request, so one suite shows each reply:

- ``on_connect``: ``User-Agent: blocked`` is refused (FORBIDDEN), ``boom`` raises;
- ``on_authenticate``: a ``ban`` claim is refused (FORBIDDEN); a ``team`` claim adds
  ``team-<team>`` to the read and write grants and an ``enriched`` claim; an ``alias``
  claim replaces the user id; user ``boom`` raises, user ``slow`` sleeps; a ``fail_first``
  claim of N raises for that user's first N hellos (a provider that comes back);
- ``on_subscribe``: room ``vault`` is refused (FORBIDDEN), ``boom`` raises, ``slow`` sleeps;
- ``before_push``: a ``text`` of ``refuse`` is refused (BAD_REQUEST, ``$.text``), one
  with ``shout`` is rewritten upper-case, ``bad rewrite`` is rewritten to an invalid op,
  ``boom`` raises, ``slow`` sleeps;
- ``on_disconnect``: every payload is put on ``LAST.disconnects``.

Every payload it sees is kept in ``LAST.seen`` (hook name, payload).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from accord.extensions import (
    BeforePush,
    BeforePushReply,
    OnAuthenticate,
    OnAuthenticateReply,
    OnConnect,
    OnConnectReply,
    OnDisconnect,
    OnSubscribe,
    OnSubscribeReply,
    Refuse,
    Rewrite,
)

SLEEP = 3.0
"""Seconds a ``slow`` hook sleeps: past the tests' EXTENSION_TIMEOUT."""


class EdgeHooks:
    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []
        self.disconnects: asyncio.Queue[OnDisconnect] = asyncio.Queue()
        self.hellos: dict[str, int] = {}

    async def _act(self, marker: object) -> None:
        if marker == "boom":
            raise RuntimeError("the extension broke")
        if marker == "slow":
            await asyncio.sleep(SLEEP)

    async def on_connect(self, connect: OnConnect) -> OnConnectReply:
        self.seen.append(("on_connect", connect))
        agent = connect.connection.headers.get("user-agent")
        await self._act(agent)
        if agent == "blocked":
            return Refuse("FORBIDDEN", "this client is blocked")
        return None

    async def on_authenticate(self, hello: OnAuthenticate) -> OnAuthenticateReply:
        self.seen.append(("on_authenticate", hello))
        identity = hello.identity
        await self._act(identity.user_id)
        claims = identity.claims
        tries = self.hellos[identity.user_id] = self.hellos.get(identity.user_id, 0) + 1
        if tries <= int(claims.get("fail_first", 0)):
            raise RuntimeError(f"the identity provider is down (hello {tries})")
        if claims.get("ban"):
            return Refuse("FORBIDDEN", "this user is banned")
        changes: dict[str, Any] = {}
        team = claims.get("team")
        if isinstance(team, str):
            extra = (f"team-{team}",)
            # None: every room already (the grants need no widening).
            if identity.rooms is not None:
                changes["rooms"] = identity.rooms + extra
            if identity.write is not None:
                changes["write"] = identity.write + extra
            changes["claims"] = {**claims, "enriched": True}
        alias = claims.get("alias")
        if isinstance(alias, str):
            changes["user_id"] = alias
        return Rewrite(dataclasses.replace(identity, **changes)) if changes else None

    async def on_subscribe(self, subscribe: OnSubscribe) -> OnSubscribeReply:
        self.seen.append(("on_subscribe", subscribe))
        await self._act(subscribe.room)
        if subscribe.room == "vault":
            return Refuse("FORBIDDEN", "the vault is closed")
        return None

    async def before_push(self, push: BeforePush) -> BeforePushReply:
        self.seen.append(("before_push", push))
        text = push.change["op"].get("fields", {}).get("text")
        await self._act(text)
        if text == "refuse":
            return Refuse("BAD_REQUEST", "not this text", json_path="$.text")
        if text == "bad rewrite":
            return Rewrite({**push.change, "op": {"kind": "explode"}})
        if isinstance(text, str) and "shout" in text:
            op = {"kind": "set", "fields": {"text": text.upper()}}
            return Rewrite({**push.change, "op": op})
        return None

    async def on_disconnect(self, disconnect: OnDisconnect) -> None:
        self.seen.append(("on_disconnect", disconnect))
        self.disconnects.put_nowait(disconnect)


LAST: EdgeHooks | None = None
"""The instance the last factory call made (the running suite's)."""


def factory() -> EdgeHooks:
    global LAST
    LAST = EdgeHooks()
    return LAST
