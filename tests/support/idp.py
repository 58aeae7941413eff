"""A local identity provider for tests: a real HTTP server publishing a JWKS, and its keys.

It signs tokens shaped like those of real providers (Auth0, Clerk, Supabase) and
rotates its keys the way they do: a new key is published beside the old one,
then the old one is removed.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.support.ports import free_port


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    def public_jwk(self) -> dict[str, Any]:
        algorithm = RSAAlgorithm if self.alg == "RS256" else ECAlgorithm
        jwk = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}


def new_key(kid: str, alg: str = "RS256") -> SigningKey:
    if alg == "RS256":
        return SigningKey(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return SigningKey(kid, alg, ec.generate_private_key(ec.SECP256R1()))


@dataclass
class IdentityProvider:
    """Serves ``/.well-known/jwks.json`` on loopback; ``requests`` counts fetches."""

    port: int
    keys: list[SigningKey] = field(default_factory=list)
    cache_control: str | None = "max-age=600"
    down: bool = False
    requests: int = 0
    issuer: str = ""

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/.well-known/jwks.json"

    async def _jwks(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.down:
            return web.Response(status=503, text="maintenance")
        headers = {"Cache-Control": self.cache_control} if self.cache_control else {}
        body = {"keys": [key.public_jwk() for key in self.keys]}
        return web.json_response(body, headers=headers)

    def add(self, key: SigningKey) -> SigningKey:
        self.keys.append(key)
        return key

    def remove(self, kid: str) -> None:
        self.keys = [key for key in self.keys if key.kid != kid]

    def token(
        self, key: SigningKey, claims: dict[str, Any], *, ttl: float = 3600, alg: str | None = None
    ) -> str:
        now = int(time.time())
        body = {"iss": self.issuer, "iat": now, "exp": now + int(ttl), **claims}
        return jwt.encode(body, key.private, algorithm=alg or key.alg, headers={"kid": key.kid})


@pytest.fixture
async def idp() -> AsyncIterator[IdentityProvider]:
    provider = IdentityProvider(free_port())
    provider.issuer = f"http://127.0.0.1:{provider.port}/"
    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", provider._jwks)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", provider.port)
    await site.start()
    try:
        yield provider
    finally:
        await runner.cleanup()
