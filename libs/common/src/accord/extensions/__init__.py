"""Accord's extension API: typed hooks the edge and sync services call in-process.

An extension is any object with one or more of the hook coroutine methods
below, made by a factory named in ``EDGE_EXTENSIONS`` or ``SYNC_EXTENSIONS``
(``package.module:factory``, comma-separated, run in that order). Each hook is
optional, takes one frozen payload and answers ``None`` (pass), ``Refuse`` or,
where allowed, ``Rewrite``. See ``docs/extensions.md``.

    from accord.extensions import BeforeCommit, BeforeCommitReply, Refuse

    class NoShouting:
        async def before_commit(self, change: BeforeCommit) -> BeforeCommitReply:
            if change.collection == "messages" and str(change.op.get("fields")).isupper():
                return Refuse("BAD_REQUEST", "no shouting")
            return None

    def factory() -> NoShouting:
        return NoShouting()
"""

from __future__ import annotations

from accord.extensions.hooks import (
    AfterCommitHook,
    BeforeCommitHook,
    BeforePushHook,
    OnAuthenticateHook,
    OnConnectHook,
    OnDisconnectHook,
    OnSubscribeHook,
)
from accord.extensions.loader import (
    HOOKS,
    Extension,
    ExtensionContext,
    load_extensions,
    parse_specs,
)
from accord.extensions.payloads import (
    REFUSAL_CODES,
    AfterCommit,
    BeforeCommit,
    BeforeCommitReply,
    BeforePush,
    BeforePushReply,
    Committed,
    Connection,
    ErrorCode,
    Identity,
    OnAuthenticate,
    OnAuthenticateReply,
    OnConnect,
    OnConnectReply,
    OnDisconnect,
    OnSubscribe,
    OnSubscribeReply,
    Refuse,
    Rewrite,
    Session,
)
from accord.extensions.runner import Failed, HookRunner, Rewriting

__all__ = [
    "HOOKS",
    "REFUSAL_CODES",
    "AfterCommit",
    "AfterCommitHook",
    "BeforeCommit",
    "BeforeCommitHook",
    "BeforeCommitReply",
    "BeforePush",
    "BeforePushHook",
    "BeforePushReply",
    "Committed",
    "Connection",
    "ErrorCode",
    "Extension",
    "ExtensionContext",
    "Failed",
    "HookRunner",
    "Identity",
    "OnAuthenticate",
    "OnAuthenticateHook",
    "OnAuthenticateReply",
    "OnConnect",
    "OnConnectHook",
    "OnConnectReply",
    "OnDisconnect",
    "OnDisconnectHook",
    "OnSubscribe",
    "OnSubscribeHook",
    "OnSubscribeReply",
    "Refuse",
    "Rewrite",
    "Rewriting",
    "Session",
    "load_extensions",
    "parse_specs",
]
