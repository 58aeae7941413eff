"""The scope each of the sync service's RPCs needs of a caller's service token."""

from __future__ import annotations

from accord.common.grpc_tokens import Scope

SERVICE = "accord.sync.v1.Sync"

_BY_METHOD = {
    "Push": Scope.WRITE,
    "PushMany": Scope.WRITE,
    "PushStream": Scope.WRITE,
    "Pull": Scope.READ,
    "Subscribe": Scope.READ,
    "Head": Scope.READ,
    "ListConflicts": Scope.READ,
    "ReadRecords": Scope.READ,
    "GetRecord": Scope.READ,
}

WEBHOOKS = "accord.sync.v1.Webhooks"
"""The operators' service (webhook backlogs): every call needs ``admin``."""

SCOPES = {f"/{SERVICE}/{method}": scope for method, scope in _BY_METHOD.items()} | {
    f"/{WEBHOOKS}/{method}": Scope.ADMIN for method in ("ListWebhooks", "ResumeWebhook")
}
