"""One ``Protocol`` per hook, for extension authors' type checkers: an extension
implements any of them (every hook is optional)."""

from __future__ import annotations

from typing import Protocol

from accord.extensions.payloads import (
    AfterCommit,
    BeforeCommit,
    BeforeCommitReply,
    BeforePush,
    BeforePushReply,
    OnAuthenticate,
    OnAuthenticateReply,
    OnConnect,
    OnConnectReply,
    OnDisconnect,
    OnSubscribe,
    OnSubscribeReply,
)


class OnConnectHook(Protocol):
    async def on_connect(self, connection: OnConnect, /) -> OnConnectReply: ...


class OnAuthenticateHook(Protocol):
    async def on_authenticate(self, hello: OnAuthenticate, /) -> OnAuthenticateReply: ...


class OnSubscribeHook(Protocol):
    async def on_subscribe(self, subscribe: OnSubscribe, /) -> OnSubscribeReply: ...


class BeforePushHook(Protocol):
    async def before_push(self, push: BeforePush, /) -> BeforePushReply: ...


class OnDisconnectHook(Protocol):
    async def on_disconnect(self, disconnect: OnDisconnect, /) -> None: ...


class BeforeCommitHook(Protocol):
    async def before_commit(self, change: BeforeCommit, /) -> BeforeCommitReply: ...


class AfterCommitHook(Protocol):
    async def after_commit(self, committed: AfterCommit, /) -> None: ...
