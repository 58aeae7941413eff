"""The scope each of the presence service's RPCs needs of a caller's service token."""

from __future__ import annotations

from accord.common.grpc_tokens import Scope
from accord.presence.servicer import SERVICE_NAME

_BY_METHOD = {
    "Join": Scope.WRITE,
    "JoinMany": Scope.WRITE,
    "Update": Scope.WRITE,
    "UpdateMany": Scope.WRITE,
    "Leave": Scope.WRITE,
    "Heartbeat": Scope.WRITE,
    "Broadcast": Scope.WRITE,
    "List": Scope.READ,
    "Watch": Scope.READ,
    "WatchBatched": Scope.READ,
}

SCOPES = {f"/{SERVICE_NAME}/{method}": scope for method, scope in _BY_METHOD.items()}
