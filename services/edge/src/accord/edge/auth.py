"""Client authentication: which keys verify a token, what a token grants.

A token is accepted when any configured key verifies it (docs/server-api.md
"Identity"): HS256 with ``JWT_SECRET``; RS256/ES256 with the PEM key or JWKS
document of ``JWT_PUBLIC_KEY_FILE`` / ``JWT_JWKS_FILE``, or with the identity
provider's keys at ``JWKS_URL``. The algorithm must match the kind of key, so a
public key can never be used as an HS256 secret (algorithm confusion), and a
key from a set verifies only the one algorithm the set gives it.

The room grants are read strictly: a grants claim that is present must be a
list of strings — ``null``, a string, a number or an object makes the token
malformed, never "every room".
"""

from __future__ import annotations

import fnmatch
import logging
import uuid
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jwt
from accord.common import config
from accord.common.config import ConfigError, Env
from accord.common.rules import CLIENT_ID_RE as CLIENT_ID_RE
from accord.common.rules import ROOM_RE
from accord.edge.jwks import (
    ASYMMETRIC,
    KeySetError,
    RemoteKeySet,
    VerifyingKey,
    check_jwks_url,
    parse_key_set,
)

log = logging.getLogger(__name__)

NAME_RE = ROOM_RE
"""Room names (the protocol's rules live in ``accord.common.rules``)."""
MIN_SECRET_BYTES = 32
MAX_SUB = 256
NO_CLAIMS: Mapping[str, Any] = MappingProxyType({})


class AuthError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class IdentitySettings:
    """How the edge checks tokens (the settings of docs/server-api.md "Identity")."""

    secret: str | None = None
    public_key: str | None = None
    """A PEM public key (``JWT_PUBLIC_KEY_FILE`` holding PEM)."""
    key_set: str | None = None
    """A JWKS document (``JWT_JWKS_FILE``, or ``JWT_PUBLIC_KEY_FILE`` holding JWKS)."""
    jwks_url: str | None = None
    audience: tuple[str, ...] = ()
    issuer: tuple[str, ...] = ()
    authorized_parties: tuple[str, ...] = ()
    leeway: float = 0.0
    rooms_claim: str = "rooms"
    write_claim: str = "write"
    rooms_required: bool = False
    jwks_timeout: float = 5.0
    jwks_refetch_interval: float = 10.0
    allow_anonymous: bool = False

    @classmethod
    def from_env(cls, env: Env) -> IdentitySettings:
        secret = config.get_optional(env, "JWT_SECRET")
        if secret is not None and len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"JWT_SECRET is too short: use at least {MIN_SECRET_BYTES} bytes (RFC 7518)"
            )
        public_key, key_set = None, None
        key_file = config.get_optional(env, "JWT_PUBLIC_KEY_FILE")
        if key_file is not None:
            text = _read(key_file, "JWT_PUBLIC_KEY_FILE")
            if text.lstrip().startswith("{"):
                key_set = _checked_key_set(text, "JWT_PUBLIC_KEY_FILE", key_file)
            else:
                public_key = _checked_pem(text, key_file)
        jwks_file = config.get_optional(env, "JWT_JWKS_FILE")
        if jwks_file is not None:
            if key_set is not None:
                raise ConfigError("JWT_JWKS_FILE and a JWKS JWT_PUBLIC_KEY_FILE: set only one")
            key_set = _checked_key_set(
                _read(jwks_file, "JWT_JWKS_FILE"), "JWT_JWKS_FILE", jwks_file
            )
        jwks_url = config.get_optional(env, "JWKS_URL")
        if jwks_url is not None and (why := check_jwks_url(jwks_url)) is not None:
            raise ConfigError(f"JWKS_URL={jwks_url!r} {why}")
        allow_anonymous = config.get_bool(env, "ALLOW_ANONYMOUS", False)
        if (secret, public_key, key_set, jwks_url) == (None,) * 4 and not allow_anonymous:
            raise ConfigError(
                "no way to authenticate clients: set JWT_SECRET, JWT_PUBLIC_KEY_FILE,"
                " JWT_JWKS_FILE, JWKS_URL or ALLOW_ANONYMOUS=true"
            )
        return cls(
            secret=secret,
            public_key=public_key,
            key_set=key_set,
            jwks_url=jwks_url,
            audience=_list(env, "JWT_AUDIENCE"),
            issuer=_list(env, "JWT_ISSUER"),
            authorized_parties=_list(env, "JWT_AUTHORIZED_PARTIES"),
            leeway=config.get_float(env, "JWT_LEEWAY", 0.0, minimum=0.0, maximum=3600.0),
            rooms_claim=_claim_path(env, "JWT_ROOMS_CLAIM", "rooms"),
            write_claim=_claim_path(env, "JWT_WRITE_CLAIM", "write"),
            rooms_required=config.get_bool(env, "JWT_ROOMS_REQUIRED", False),
            jwks_timeout=config.get_float(env, "JWKS_TIMEOUT", 5.0, minimum=0.1, maximum=60.0),
            jwks_refetch_interval=config.get_float(
                env, "JWKS_REFETCH_INTERVAL", 10.0, minimum=0.0, maximum=3600.0
            ),
            allow_anonymous=allow_anonymous,
        )


def _read(path: str, name: str) -> str:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise ConfigError(f"{name}={path!r} cannot be read: {reason}") from None


def _checked_key_set(text: str, name: str, path: str) -> str:
    try:
        parse_key_set(text)
    except KeySetError as error:
        raise ConfigError(f"{name}={path!r} is not a usable JWKS document: {error}") from None
    return text


def _checked_pem(text: str, path: str) -> str:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        load_pem_public_key(text.encode())
    except ValueError:
        raise ConfigError(
            f"JWT_PUBLIC_KEY_FILE={path!r} holds neither a PEM public key nor a JWKS document"
        ) from None
    return text


def _list(env: Env, name: str) -> tuple[str, ...]:
    raw = config.get_optional(env, name)
    if raw is None:
        return ()
    values = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not values:
        raise ConfigError(f"{name} is set but names nothing")
    return values


def _claim_path(env: Env, name: str, default: str) -> str:
    path = config.get_str(env, name, default)
    if not path or any(not part for part in path.split(".")):
        raise ConfigError(f"{name}={path!r} is not a dotted claim path like app_metadata.rooms")
    return path


@dataclass(frozen=True)
class Identity:
    user_id: str
    expires_at: float | None
    """When the session's token runs out (``exp`` plus the leeway); None: never."""
    read: tuple[str, ...] | None  # None: every room
    write: tuple[str, ...] | None  # None: every room
    claims: Mapping[str, Any] = field(default_factory=lambda: NO_CLAIMS, compare=False, repr=False)
    """The token's claims, kept only when edge extensions are installed (they see them)."""

    def can_read(self, room: str) -> bool:
        return self.read is None or _matches(room, self.read)

    def can_write(self, room: str) -> bool:
        if not self.can_read(room):
            return False
        return self.write is None or _matches(room, self.write)


def _matches(room: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(room, pattern) for pattern in patterns)


_ABSENT = object()


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The claim at a dotted ``path`` (``_ABSENT`` when there is none).

    A name that itself holds dots is matched whole first, so Auth0-style
    namespaced claims (``https://app.example.com/rooms``) work as paths too.
    """
    if path in claims:
        return claims[path]
    for index, char in enumerate(path):
        if char != ".":
            continue
        head = claims.get(path[:index], _ABSENT)
        if isinstance(head, Mapping):
            found = claim_at(head, path[index + 1 :])
            if found is not _ABSENT:
                return found
    return _ABSENT


def _patterns(claims: Mapping[str, Any], path: str) -> tuple[str, ...] | None:
    value = claim_at(claims, path)
    if value is _ABSENT:
        return None
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise AuthError("UNAUTHENTICATED", f"token claim {path!r} must be a list of strings")
    return tuple(value)


class Authenticator:
    """Verifies client tokens against every configured key (an async context manager:
    with ``JWKS_URL`` it keeps the provider's key set fresh while open)."""

    def __init__(self, settings: IdentitySettings, *, keep_claims: bool = False) -> None:
        self._settings = settings
        self._keep_claims = keep_claims
        self._secret = settings.secret
        self._public_key = settings.public_key
        self._file_keys = parse_key_set(settings.key_set) if settings.key_set else {}
        self._remote = (
            RemoteKeySet(
                settings.jwks_url,
                timeout=settings.jwks_timeout,
                refetch_interval=settings.jwks_refetch_interval,
            )
            if settings.jwks_url
            else None
        )
        self._stack = AsyncExitStack()

    @property
    def ready(self) -> bool:
        """False while a configured ``JWKS_URL`` has never been fetched."""
        return self._remote is None or self._remote.ready

    async def __aenter__(self) -> Authenticator:
        if self._remote is not None:
            await self._stack.enter_async_context(self._remote)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def authenticate(self, token: str | None, client_id: str | None = None) -> Identity:
        try:
            return await self._authenticate(token, client_id)
        except AuthError as error:
            log.info("token refused (%s): %s", error.code, error.message)
            raise

    async def _authenticate(self, token: str | None, client_id: str | None) -> Identity:
        settings = self._settings
        if token is None:
            if settings.allow_anonymous:
                # Keyed by the client's replica id, so that an anonymous client
                # keeps its identity (and its client_seq dedupe) across reconnects.
                suffix = client_id or uuid.uuid4().hex[:12]
                return Identity(f"anon-{suffix}", None, None, None)
            raise AuthError("UNAUTHENTICATED", "a token is required")
        claims = self._decode(token, await self._key_for(token))
        sub = claims.get("sub")
        if not isinstance(sub, str) or not 0 < len(sub) <= MAX_SUB:
            raise AuthError("UNAUTHENTICATED", "token has no valid 'sub' claim")
        azp = claims.get("azp")
        if (
            settings.authorized_parties
            and azp is not None
            and azp not in settings.authorized_parties
        ):
            raise AuthError("UNAUTHENTICATED", f"token authorized party {azp!r} is not accepted")
        read = _patterns(claims, settings.rooms_claim)
        if read is None and settings.rooms_required:
            raise AuthError(
                "UNAUTHENTICATED", f"token has no {settings.rooms_claim!r} claim (required)"
            )
        write = _patterns(claims, settings.write_claim)
        if write is None:
            write = read
        exp = claims["exp"]
        if not isinstance(exp, (int, float)) or isinstance(exp, bool):
            raise AuthError("UNAUTHENTICATED", "token 'exp' claim must be a number")
        kept = claims if self._keep_claims else NO_CLAIMS
        return Identity(sub, float(exp) + settings.leeway, read, write, kept)

    async def _key_for(self, token: str) -> tuple[str, Any]:
        """The algorithm and key that may verify ``token``."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("UNAUTHENTICATED", "token is not a valid JWT") from None
        alg = header.get("alg")
        if alg == "HS256":
            if self._secret is None:
                raise AuthError("UNAUTHENTICATED", "token algorithm 'HS256' is not accepted")
            return alg, self._secret
        if alg not in ASYMMETRIC or (
            self._public_key is None and not self._file_keys and self._remote is None
        ):
            raise AuthError("UNAUTHENTICATED", f"token algorithm {alg!r} is not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthError("UNAUTHENTICATED", "token 'kid' must be a string")
        key = await self._set_key(kid)
        if key is not None:
            if key.algorithm != alg:
                raise AuthError(
                    "UNAUTHENTICATED", f"token algorithm {alg!r} is not allowed for key {kid!r}"
                )
            return alg, key.key
        if self._public_key is not None:
            return alg, self._public_key
        if kid is None:
            raise AuthError("UNAUTHENTICATED", "token has no 'kid' to pick its key by")
        if self._remote is not None and not self._remote.ready:
            raise AuthError("UNAUTHENTICATED", "the identity provider's keys are not available yet")
        raise AuthError("UNAUTHENTICATED", f"token key id {kid!r} is not in the key set")

    async def _set_key(self, kid: str | None) -> VerifyingKey | None:
        if kid is None:
            return None
        key = self._file_keys.get(kid)
        if key is None and self._remote is not None:
            key = await self._remote.lookup(kid)
        return key

    def _decode(self, token: str, alg_key: tuple[str, Any]) -> dict[str, Any]:
        settings = self._settings
        alg, key = alg_key
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=list(settings.audience) or None,
                issuer=list(settings.issuer) or None,
                leeway=settings.leeway,
                options={"require": ["exp", "sub"], "verify_aud": bool(settings.audience)},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("TOKEN_EXPIRED", "token has expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError("UNAUTHENTICATED", "token audience is not accepted") from None
        except jwt.InvalidIssuerError:
            raise AuthError("UNAUTHENTICATED", "token issuer is not accepted") from None
        except jwt.MissingRequiredClaimError as error:
            raise AuthError("UNAUTHENTICATED", f"token has no {error.claim!r} claim") from None
        except jwt.PyJWTError as error:
            raise AuthError("UNAUTHENTICATED", f"invalid token: {error}") from None
        return claims
