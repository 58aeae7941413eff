"""Client authentication: JWT verification and room permissions."""

from __future__ import annotations

import fnmatch
import re
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from accord.edge.settings import Settings

NAME_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


class AuthError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Identity:
    user_id: str
    expires_at: float | None
    read: tuple[str, ...] | None  # None: every room
    write: tuple[str, ...] | None  # None: every room

    def can_read(self, room: str) -> bool:
        return self.read is None or _matches(room, self.read)

    def can_write(self, room: str) -> bool:
        if not self.can_read(room):
            return False
        return self.write is None or _matches(room, self.write)


def _matches(room: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(room, pattern) for pattern in patterns)


def _patterns(claims: dict[str, Any], name: str) -> tuple[str, ...] | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise AuthError("UNAUTHENTICATED", f"token claim {name!r} must be a list of strings")
    return tuple(value)


ASYMMETRIC = ("RS256", "ES256")


class Authenticator:
    """Verifies client tokens: HS256 with the shared secret, RS256/ES256 with a
    public key or a JWKS file. The algorithm must match the kind of key, so an
    RS256 public key can never be used as an HS256 secret (algorithm confusion)."""

    def __init__(self, settings: Settings) -> None:
        self._secret = settings.jwt_secret
        self._public_key = settings.jwt_public_key
        self._jwks = jwt.PyJWKSet.from_json(settings.jwks) if settings.jwks else None
        self._allow_anonymous = settings.allow_anonymous

    def authenticate(self, token: str | None, client_id: str | None = None) -> Identity:
        if token is None:
            if self._allow_anonymous:
                # Keyed by the client's replica id, so that an anonymous client
                # keeps its identity (and its client_seq dedupe) across reconnects.
                suffix = client_id or uuid.uuid4().hex[:12]
                return Identity(f"anon-{suffix}", None, None, None)
            raise AuthError("UNAUTHENTICATED", "a token is required")
        claims = self._decode(token)
        sub = claims.get("sub")
        if not isinstance(sub, str) or not 0 < len(sub) <= 256:
            raise AuthError("UNAUTHENTICATED", "token has no valid 'sub' claim")
        read = _patterns(claims, "rooms")
        write = _patterns(claims, "write")
        if write is None:
            write = read
        return Identity(sub, float(claims["exp"]), read, write)

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("UNAUTHENTICATED", "token is not a valid JWT") from None
        alg = header.get("alg")
        key: Any
        if alg == "HS256" and self._secret is not None:
            key = self._secret
        elif alg in ASYMMETRIC and self._jwks is not None and header.get("kid") is not None:
            try:
                jwk = self._jwks[str(header["kid"])]
            except KeyError:
                raise AuthError("UNAUTHENTICATED", "token key id is not in the key set") from None
            if jwk.algorithm_name != alg:
                raise AuthError("UNAUTHENTICATED", "token algorithm does not match its key")
            key = jwk.key
        elif alg in ASYMMETRIC and self._public_key is not None:
            key = self._public_key
        else:
            raise AuthError("UNAUTHENTICATED", f"token algorithm {alg!r} is not accepted")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[alg], options={"require": ["exp", "sub"]}, leeway=0
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("TOKEN_EXPIRED", "token has expired") from None
        except jwt.PyJWTError as error:
            raise AuthError("UNAUTHENTICATED", f"invalid token: {error}") from None
        return claims
