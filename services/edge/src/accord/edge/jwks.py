"""Public keys that verify client tokens: a JWKS document, read from a file or fetched.

``parse_key_set`` turns a JWKS document into the keys the edge accepts (RS256 and
ES256 signing keys only: an ``oct`` key or an encryption key in an identity
provider's set is skipped, so a symmetric secret can never sneak in through a
key set). ``RemoteKeySet`` keeps the set of ``JWKS_URL`` fresh:

- fetched at start-up and again when its ``Cache-Control: max-age`` runs out
  (clamped to ``MIN_TTL``..``MAX_TTL``; ``DEFAULT_TTL`` when the provider says
  nothing), so a provider's key rotation is picked up without a restart;
- fetched at once when a token names a ``kid`` the set lacks (the provider has
  just rotated), but at most once per ``refetch_interval`` seconds, with every
  waiting token sharing the one fetch, so a flood of forged ``kid`` values
  cannot hammer the provider;
- while the provider is unreachable the last good set stays in use; the gauge
  ``accord_edge_jwks_stale`` is 1 and one warning is logged per outage.

An edge that could not fetch the set even once is *not ready* (``ready`` is
False, ``/ready`` answers 503): tokens other keys verify still work, tokens
that need the provider's keys are refused until the first fetch succeeds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jwt
from accord.common.config import is_loopback
from accord.common.tasks import Backoff, stop
from accord.edge import metrics

log = logging.getLogger(__name__)

ASYMMETRIC = ("RS256", "ES256")
DEFAULT_TTL = 600.0
MIN_TTL = 30.0
MAX_TTL = 24 * 3600.0
MAX_DOCUMENT_BYTES = 1024 * 1024
RETRY_MIN = 1.0
RETRY_MAX = 60.0
_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)


class KeySetError(Exception):
    """A JWKS document that cannot be used (not JSON, no ``keys``, no usable key)."""


@dataclass(frozen=True)
class VerifyingKey:
    """One public key of a set, with the one algorithm it may verify."""

    kid: str | None
    algorithm: str
    key: Any


def parse_key_set(document: str | bytes) -> dict[str, VerifyingKey]:
    """The usable signing keys of a JWKS document, by ``kid``."""
    try:
        data = json.loads(document)
    except ValueError as error:
        raise KeySetError(f"not JSON: {error}") from None
    keys = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(keys, list):
        raise KeySetError('not a JWKS document: no "keys" array')
    usable: dict[str, VerifyingKey] = {}
    for index, raw in enumerate(keys):
        key = _usable_key(raw)
        if key is None:
            continue
        usable[key.kid or f"#{index}"] = key
    if not usable:
        raise KeySetError("no RS256 or ES256 signing key in the set")
    return usable


def _usable_key(raw: Any) -> VerifyingKey | None:
    if not isinstance(raw, dict) or raw.get("kty") not in ("RSA", "EC"):
        return None
    if raw.get("use", "sig") != "sig" or "d" in raw:
        return None  # an encryption key, or a private key published by mistake
    kid = raw.get("kid")
    if kid is not None and not isinstance(kid, str):
        return None
    try:
        jwk = jwt.PyJWK(raw)
    except jwt.PyJWTError as error:
        log.warning("skipping JWKS key %s: %s", kid, error)
        return None
    if jwk.algorithm_name not in ASYMMETRIC:
        return None
    return VerifyingKey(kid, jwk.algorithm_name, jwk.key)


def check_jwks_url(url: str) -> str | None:
    """Why ``url`` may not be a ``JWKS_URL`` (None when it may): https, or http on loopback."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname and is_loopback(parts.hostname):
        return None
    return "must be an https:// URL (http:// only for 127.0.0.1, ::1 or localhost)"


def cache_ttl(headers: Mapping[str, str]) -> float:
    """How long a fetched set is fresh, from its ``Cache-Control`` header."""
    control = headers.get("Cache-Control", "")
    if re.search(r"no-cache|no-store", control, re.IGNORECASE):
        return MIN_TTL
    match = _MAX_AGE.search(control)
    if match is None:
        return DEFAULT_TTL
    return min(MAX_TTL, max(MIN_TTL, float(match.group(1))))


class RemoteKeySet:
    """The key set of one identity provider, fetched from ``url`` and kept fresh."""

    def __init__(self, url: str, *, timeout: float, refetch_interval: float) -> None:
        self.url = url
        self._timeout = timeout
        self._refetch_interval = refetch_interval
        self._keys: dict[str, VerifyingKey] = {}
        self._fetched_at: float | None = None
        self._last_attempt = -float("inf")
        self._fresh_until = 0.0
        self._failing = False
        self._fetching: asyncio.Task[bool] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None

    @property
    def ready(self) -> bool:
        """The set was fetched at least once."""
        return self._fetched_at is not None

    async def __aenter__(self) -> RemoteKeySet:
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            headers={"Accept": "application/json"},
        )
        if not await self.refresh():
            log.error(
                "JWKS_URL %s could not be fetched at start-up: the edge is not ready, and tokens"
                " that need its keys are refused until it is reached (retrying)",
                self.url,
            )
        self._refresher = asyncio.create_task(self._refresh_loop(), name="jwks-refresh")
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in (self._refresher, self._fetching):
            await stop(task)
        if self._http is not None:
            await self._http.close()

    def get(self, kid: str) -> VerifyingKey | None:
        return self._keys.get(kid)

    async def lookup(self, kid: str) -> VerifyingKey | None:
        """The key ``kid``, fetching the set once more when it is unknown (rate-limited)."""
        key = self._keys.get(kid)
        if key is not None:
            return key
        if time.monotonic() - self._last_attempt < self._refetch_interval:
            metrics.JWKS_REFETCHES.labels("limited").inc()
            if self._fetching is not None and not self._fetching.done():
                await asyncio.shield(self._fetching)
            return self._keys.get(kid)
        metrics.JWKS_REFETCHES.labels("unknown_kid").inc()
        await self.refresh()
        return self._keys.get(kid)

    async def refresh(self) -> bool:
        """Fetch the set now (joining a fetch already under way); True when it worked."""
        if self._fetching is None or self._fetching.done():
            self._fetching = asyncio.create_task(self._fetch(), name="jwks-fetch")
        return await asyncio.shield(self._fetching)

    async def _fetch(self) -> bool:
        assert self._http is not None
        self._last_attempt = time.monotonic()
        try:
            async with self._http.get(self.url, allow_redirects=False) as response:
                if response.status != 200:
                    raise KeySetError(f"HTTP {response.status}")
                body = await response.content.read(MAX_DOCUMENT_BYTES + 1)
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise KeySetError(f"larger than {MAX_DOCUMENT_BYTES} bytes")
                keys = parse_key_set(body)
                ttl = cache_ttl(response.headers)
        except (aiohttp.ClientError, TimeoutError, KeySetError) as error:
            metrics.JWKS_FETCHES.labels("error").inc()
            if not self._failing:
                self._failing = True
                log.warning(
                    "JWKS_URL %s cannot be fetched (%s): keeping the last good key set (%d keys)",
                    self.url,
                    error or type(error).__name__,
                    len(self._keys),
                )
            metrics.JWKS_STALE.set(1)
            return False
        metrics.JWKS_FETCHES.labels("ok").inc()
        if self._failing:
            log.info("JWKS_URL %s reachable again", self.url)
        added = set(keys) - set(self._keys)
        if self._fetched_at is not None and (added or set(self._keys) - set(keys)):
            log.info("JWKS key set changed: %d keys, new kids %s", len(keys), sorted(added))
        self._keys = keys
        self._failing = False
        self._fetched_at = time.monotonic()
        self._fresh_until = self._fetched_at + ttl
        metrics.JWKS_STALE.set(0)
        metrics.JWKS_KEYS.set(len(keys))
        return True

    async def _refresh_loop(self) -> None:
        backoff = Backoff(RETRY_MIN, RETRY_MAX)
        while True:
            await asyncio.sleep(max(0.0, self._fresh_until - time.monotonic()))
            if await self.refresh():
                backoff.reset()
                continue
            await backoff.wait()
