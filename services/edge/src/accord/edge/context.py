"""What a session may use: a narrow, frozen view of the edge's shared parts.

The app module builds one of these; sessions, handlers and transports depend
on it, never on the app. ``handlers`` is the table of message handlers;
``extensions`` the ``EDGE_EXTENSIONS`` hooks that handlers and transports call
(``hooks.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from accord.common.audit import NULL, AuditLog
from accord.edge.auth import Authenticator
from accord.edge.backends import PresenceClient, SyncClient
from accord.edge.hooks import NO_HOOKS, EdgeHooks
from accord.edge.limits import SharedBuckets
from accord.edge.outbound import Budget, QueueLimits
from accord.edge.revocations import Revocations
from accord.edge.rooms import Hub
from accord.edge.roster import Roster
from accord.edge.settings import Settings

# The session is ``Any`` here: this module cannot import the session (it imports this).
Handler = Callable[[Any, dict[str, Any], "int | None"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SessionContext:
    settings: Settings
    auth: Authenticator
    hub: Hub
    roster: Roster
    sync: SyncClient
    presence: PresenceClient
    user_limits: SharedBuckets
    revocations: Revocations
    budget: Budget
    queue_limits: QueueLimits
    handlers: Mapping[str, Handler]
    audit: AuditLog = NULL
    extensions: EdgeHooks = field(default=NO_HOOKS)
