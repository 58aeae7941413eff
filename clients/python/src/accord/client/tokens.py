"""The token a client presents: given, or asked of a provider, and refreshed before it expires."""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import json
import time
from collections.abc import Awaitable, Callable

from accord.client.connection import Connection
from accord.client.errors import AccordError, ConnectionLost

__all__ = ["TokenProvider", "TokenSource", "token_expiry"]

TokenProvider = Callable[[], Awaitable[str] | str]


class TokenSource:
    def __init__(self, token: str | None, provider: TokenProvider | None) -> None:
        self.token = token
        self.provider = provider

    async def current(self, refresh: bool = False) -> str | None:
        """The token to send; a new one from the provider when ``refresh`` or none yet."""
        if self.provider is not None and (refresh or self.token is None):
            provided = self.provider()
            self.token = await provided if inspect.isawaitable(provided) else provided
        return self.token

    async def keep_fresh(self, conn: Connection, report: Callable[[Exception], None]) -> None:
        """Swap in a fresh token on ``conn`` shortly before the current one expires."""
        while True:
            expires = token_expiry(self.token)
            if expires is None:
                return
            left = expires - time.time()
            await asyncio.sleep(max(0.0, left - min(60.0, max(0.5, left / 5))))
            token = await self.current(refresh=True)
            try:
                await conn.request({"type": "refresh", "token": token})
            except AccordError as error:
                report(error)
                return
            except (ConnectionLost, TimeoutError):
                return


def token_expiry(token: str | None) -> float | None:
    """The ``exp`` claim of a JWT, read without verifying it (the server does that)."""
    if not token or token.count(".") != 2:
        return None
    payload = token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None
