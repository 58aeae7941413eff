"""Who may call the server API: the origin, the credential, its rate.

``Authorization: Bearer <credential>``: an API key (``ak_…``, from
``API_KEYS_FILE``) or a JWT checked exactly as a client's ``hello`` token.
Either becomes an ``Identity`` whose room grants decide each call.
"""

from __future__ import annotations

import time

from accord.edge.api.errors import ApiError
from accord.edge.api.keys import PREFIX, KeyRing
from accord.edge.auth import Authenticator, AuthError, Identity
from accord.edge.limits import SharedBuckets
from aiohttp import web

PRUNE_SECONDS = 60.0


class Gate:
    def __init__(
        self,
        auth: Authenticator,
        keys: KeyRing,
        limits: SharedBuckets,
        allowed_origins: tuple[str, ...] | None,
    ) -> None:
        self._auth = auth
        self._keys = keys
        self._limits = limits
        self._origins = allowed_origins
        self._pruned = time.monotonic()

    async def identity(self, request: web.Request) -> Identity:
        """The caller's identity; raises ``ApiError`` (403 origin, 401, 429)."""
        origin = request.headers.get("Origin")
        allowed = self._origins
        if origin is not None and allowed is not None and origin.rstrip("/") not in allowed:
            raise ApiError("FORBIDDEN", "origin not allowed")
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise ApiError("UNAUTHENTICATED", "send Authorization: Bearer <token or API key>")
        if credential.startswith(PREFIX):
            identity = self._keys.identity(credential)
            if identity is None:
                raise ApiError("UNAUTHENTICATED", "unknown API key")
            bucket = f"key:{identity.user_id}"
        else:
            try:
                identity = await self._auth.authenticate(credential)
            except AuthError as error:
                raise ApiError(error.code, error.message) from None
            bucket = f"jwt:{identity.user_id}"
        self._rate(bucket)
        return identity

    def _rate(self, bucket: str) -> None:
        now = time.monotonic()
        if now - self._pruned > PRUNE_SECONDS:
            self._pruned = now
            self._limits.prune()
        wait_ms = self._limits.take(bucket)
        if wait_ms:
            raise ApiError("RATE_LIMITED", "too many requests", retry_after_ms=wait_ms)
