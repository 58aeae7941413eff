"""What each hook receives and what it may answer: frozen payloads and the replies.

Every hook is one coroutine method taking one payload and answering ``None``
(pass: the next extension, then the service's own behaviour, decides),
``Refuse`` (stop here: the client gets that error for that request or that
change only) or, where the hook may rewrite, ``Rewrite`` (the next extensions
and the service see the new value instead). Mappings in payloads are the
service's own copies: read them, never keep references expecting updates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeAlias, TypeVar

ErrorCode = Literal[
    "BAD_REQUEST",
    "UNAUTHENTICATED",
    "TOKEN_EXPIRED",
    "FORBIDDEN",
    "NOT_SUBSCRIBED",
    "RATE_LIMITED",
    "TOO_LARGE",
    "UNSUPPORTED",
    "UNAVAILABLE",
    "INTERNAL",
]
"""The client protocol's error codes (``protocol.md``)."""

REFUSAL_CODES: frozenset[str] = frozenset(
    ("BAD_REQUEST", "UNAUTHENTICATED", "FORBIDDEN", "RATE_LIMITED", "TOO_LARGE", "UNSUPPORTED")
)
"""The codes an extension may refuse with. ``UNAVAILABLE`` and ``INTERNAL`` are the
service's own: they say that a hook failed (timed out or raised)."""

MAX_MESSAGE = 1024
"""A refusal's message is cut to this many characters."""

T = TypeVar("T")


@dataclass(frozen=True)
class Refuse:
    """Refuse the request (or the change): the client gets ``code`` and ``message``."""

    code: str
    message: str
    json_path: str | None = None
    """For a change: where in the record the problem is (``$.title``), when known."""

    def __post_init__(self) -> None:
        if self.code not in REFUSAL_CODES:
            raise ValueError(
                f"Refuse code {self.code!r} is not one of {', '.join(sorted(REFUSAL_CODES))}"
            )
        if not isinstance(self.message, str):
            raise ValueError("Refuse message must be a string")
        if len(self.message) > MAX_MESSAGE:
            object.__setattr__(self, "message", self.message[:MAX_MESSAGE])


@dataclass(frozen=True)
class Rewrite(Generic[T]):
    """Go on with ``value`` instead: a change's op (``before_commit``), a pushed change
    (``before_push``) or an identity (``on_authenticate``)."""

    value: T


# --- edge ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    """Where a session comes from, as the edge saw its upgrade request."""

    remote: str
    """The TCP peer's address (a proxy's ``X-Forwarded-For`` is in ``headers``)."""
    origin: str | None
    headers: Mapping[str, str] = field(default_factory=dict)
    """A subset of the request headers by lower-case name (``user-agent``,
    ``accept-language``, ``x-forwarded-*``); never ``Authorization`` or ``Cookie``."""
    transport: Literal["websocket", "sse", "api"] = "websocket"
    """``api``: a call of the server API (``POST /api/v1/rooms/{room}/changes``)."""


@dataclass(frozen=True)
class Identity:
    """Who a session acts for: the token's subject, its claims and its room grants."""

    user_id: str
    claims: Mapping[str, Any] = field(default_factory=dict)
    rooms: tuple[str, ...] | None = None
    """Glob patterns of the rooms the user may read; None: every room."""
    write: tuple[str, ...] | None = None
    """Patterns of the rooms the user may write to; None: the same as ``rooms``."""


@dataclass(frozen=True)
class Session:
    """An authenticated session, as the edge hooks after ``hello`` see it. A server API
    call is seen as a session too: ``session_id`` ``""``, the body's ``client_id``, the
    caller's identity (a token's, or an API key's with no claims), transport ``api``."""

    session_id: str
    client_id: str
    identity: Identity
    connection: Connection


@dataclass(frozen=True)
class OnConnect:
    """A connection is being opened, before the WebSocket upgrade: refusing answers the
    upgrade request with an HTTP error (403 for ``FORBIDDEN`` …, body ``{"code","message"}``)."""

    connection: Connection


@dataclass(frozen=True)
class OnAuthenticate:
    """A ``hello``'s (or a ``refresh``'s) token was verified: refuse it, or rewrite the
    identity (another user id, extra claims, other grants)."""

    connection: Connection
    client_id: str
    identity: Identity
    user: Mapping[str, Any]
    """The ``hello``'s ``user`` object (what presence shows of the user)."""


@dataclass(frozen=True)
class OnSubscribe:
    """A ``subscribe`` that passed the grants: refusing answers that request only."""

    session: Session
    room: str
    since: int
    presence: Mapping[str, Any] | None
    """The presence state it joins with; None: it only watches."""


@dataclass(frozen=True)
class BeforePush:
    """One change of a ``push`` (or of a server API ``POST …/changes``), as the client sent
    it (``client_seq``, ``collection``, ``key``, ``ts``, ``op``), already checked like any
    pushed change: refusing gives that change an error in the ``ack`` (the others go on);
    rewriting replaces it (checked again; it keeps the original's ``client_seq``)."""

    session: Session
    room: str
    change: Mapping[str, Any]


@dataclass(frozen=True)
class OnDisconnect:
    """A session ended: the WebSocket close code and reason (1006: the connection was
    lost without a close) and the rooms it was subscribed to."""

    session: Session | None
    """None when it ended before its ``hello`` was accepted."""
    connection: Connection
    code: int
    reason: str
    rooms: tuple[str, ...] = ()
    """The rooms it was subscribed to when it ended, sorted."""


# --- sync ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BeforeCommit:
    """One change about to be merged and given its ``seq``. ``record`` is the record's
    visible value just before it (as clients see it; None: it does not exist), including
    the earlier changes of the same commit. Refusing gives that change an error (nothing
    of it is stored, the other changes go on); rewriting replaces its ``op``.

    May run more than once for one change (a commit retried after contention): judge,
    do not count here; keep state from ``after_commit``."""

    room: str
    user_id: str
    client_id: str
    client_seq: int
    collection: str
    key: str
    op: Mapping[str, Any]
    """The op in the client protocol's shape: ``{"kind":"set","fields":{…}}`` …"""
    record: Mapping[str, Any] | None


@dataclass(frozen=True)
class Committed:
    """A committed change, as the room's log holds it."""

    seq: int
    user_id: str
    client_id: str
    client_seq: int
    collection: str
    key: str
    ts: int
    op: Mapping[str, Any]
    patch: Mapping[str, Any]
    """Its visible effect, as delivered to clients (``docs/merge.md``)."""


@dataclass(frozen=True)
class AfterCommit:
    """Committed changes of one room, in ``seq`` order and contiguous: the first one's
    ``seq`` is one more than the last one delivered before. Delivered at least once
    (see ``docs/extensions.md``): skip a change whose ``seq`` you have seen."""

    room: str
    changes: tuple[Committed, ...]


OnConnectReply: TypeAlias = Refuse | None
OnAuthenticateReply: TypeAlias = Refuse | Rewrite[Identity] | None
OnSubscribeReply: TypeAlias = Refuse | None
BeforePushReply: TypeAlias = Refuse | Rewrite[Mapping[str, Any]] | None
BeforeCommitReply: TypeAlias = Refuse | Rewrite[Mapping[str, Any]] | None
