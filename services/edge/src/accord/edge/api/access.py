"""Who may call the server API: the origin, the credential, its rate, its rooms.

``Authorization: Bearer <credential>``: an API key (``ak_…``, from
``API_KEYS_FILE``) or a JWT checked exactly as a client's ``hello`` token.
Either becomes an ``Identity`` whose room grants decide each call, less the
operator's revocations (an API key's identity is its name). Refusals and API key
use are in the audit log.
"""

from __future__ import annotations

import time

from accord.common.audit import AuditLog
from accord.edge.api.errors import ApiError
from accord.edge.api.keys import PREFIX, KeyRing
from accord.edge.auth import Authenticator, AuthError, Identity
from accord.edge.gate import check_origin
from accord.edge.limits import SharedBuckets
from accord.edge.revocations import Revocations
from aiohttp import web

PRUNE_SECONDS = 60.0


class Gate:
    def __init__(
        self,
        auth: Authenticator,
        keys: KeyRing,
        limits: SharedBuckets,
        allowed_origins: tuple[str, ...] | None,
        revocations: Revocations,
        audit: AuditLog,
    ) -> None:
        self._auth = auth
        self._keys = keys
        self._limits = limits
        self._origins = allowed_origins
        self._revocations = revocations
        self._audit = audit
        self._pruned = time.monotonic()

    async def identity(self, request: web.Request) -> Identity:
        """The caller's identity; raises ``ApiError`` (403 origin, 401, 429)."""
        refusal = check_origin(self._origins, request, self._audit)
        if refusal is not None:
            raise ApiError(refusal.code, refusal.message)
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            self._failed(request, "UNAUTHENTICATED", "no bearer credential", None)
            raise ApiError("UNAUTHENTICATED", "send Authorization: Bearer <token or API key>")
        if credential.startswith(PREFIX):
            identity = self._keys.identity(credential)
            if identity is None:
                self._failed(request, "UNAUTHENTICATED", "unknown API key", "api_key")
                raise ApiError("UNAUTHENTICATED", "unknown API key")
            bucket = f"key:{identity.user_id}"
            self._audit.emit(
                "apikey.used",
                actor=identity.user_id,
                ip=request.remote,
                key_name=identity.user_id,
                method=request.method,
                path=request.path,
            )
        else:
            try:
                identity = await self._auth.authenticate(credential)
            except AuthError as error:
                self._failed(request, error.code, error.message, "jwt")
                raise ApiError(error.code, error.message) from None
            bucket = f"jwt:{identity.user_id}"
        self._rate(bucket)
        return identity

    def _failed(self, request: web.Request, code: str, reason: str, kind: str | None) -> None:
        self._audit.emit(
            "auth.failed",
            ip=request.remote,
            via="api",
            credential_kind=kind,
            code=code,
            reason=reason,
            path=request.path,
        )

    def room(self, request: web.Request, identity: Identity, room: str, *, write: bool) -> None:
        """Raise ``FORBIDDEN`` unless ``identity`` may read (and ``write``) ``room``."""
        user = identity.user_id
        denied = None
        if not identity.can_read(room) or self._revocations.denies(user, room, "read"):
            denied = "read"
        elif write and (
            not identity.can_write(room) or self._revocations.denies(user, room, "write")
        ):
            denied = "write"
        if denied is None:
            return
        self._audit.emit(
            "access.denied",
            actor=user,
            ip=request.remote,
            room=room,
            via="api",
            access=denied,
            path=request.path,
        )
        raise ApiError("FORBIDDEN", f"no {denied} access to room {room}")

    def _rate(self, bucket: str) -> None:
        now = time.monotonic()
        if now - self._pruned > PRUNE_SECONDS:
            self._pruned = now
            self._limits.prune()
        wait_ms = self._limits.take(bucket)
        if wait_ms:
            raise ApiError("RATE_LIMITED", "too many requests", retry_after_ms=wait_ms)
