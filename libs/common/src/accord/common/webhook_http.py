"""One Standard Webhooks request: signed, sent, judged; and the backoff between attempts.

Requests carry ``webhook-id`` (the message's, the same on every retry),
``webhook-timestamp`` (Unix seconds, of this attempt) and ``webhook-signature``
(``v1,`` + base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}``, keyed with the
secret's decoded bytes). Sync (``changes``) and presence (``presence``) send
through :func:`post`; what they keep between attempts is their own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

import aiohttp
from accord.common.webhooks import Endpoint

RESPONSE_BYTES = 64 * 1024
"""At most this much of a response body is read (and thrown away)."""
USER_AGENT = "accord-webhooks/1"

Failure = tuple[str, str | None]
"""What went wrong with an attempt, and the response's ``Retry-After`` if any."""


def new_message_id() -> str:
    """A fresh ``webhook-id``: ``msg_`` + 24 random url-safe characters."""
    return "msg_" + secrets.token_urlsafe(18)


def sign(secret: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` of one request (one ``v1`` signature)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(endpoint: Endpoint, message_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(endpoint.secret, message_id, timestamp, body),
    }


def backoff(attempts: int, base: float, maximum: float, rand: Callable[[], float]) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: base * 2^(n-1),
    at most ``maximum``, then drawn from its upper half (jitter spreads the retries of
    batches that failed together)."""
    delay = min(maximum, base * 2.0 ** min(attempts - 1, 60))
    return delay / 2 + rand() * delay / 2


def retry_after(value: str | None, maximum: float) -> float:
    """A ``Retry-After`` in seconds, at most ``maximum``; 0 when absent or not seconds."""
    if value is None or not value.strip().isdigit():
        return 0.0
    return min(float(value.strip()), maximum)


def next_delay(
    attempts: int, failure: Failure, base: float, maximum: float, rand: Callable[[], float]
) -> float:
    """Seconds to wait after ``attempts`` failed ones, honouring a longer Retry-After."""
    return max(backoff(attempts, base, maximum, rand), retry_after(failure[1], maximum))


async def post(
    http: aiohttp.ClientSession, endpoint: Endpoint, message_id: str, body: bytes
) -> Failure | None:
    """Send one attempt; None when the endpoint answered 2xx. Redirects are not followed."""
    sent = headers(endpoint, message_id, body, int(time.time()))
    try:
        async with http.post(
            endpoint.url,
            data=body,
            headers=sent,
            timeout=aiohttp.ClientTimeout(total=endpoint.timeout),
            allow_redirects=False,
        ) as response:
            await response.content.read(RESPONSE_BYTES)
            status, later = response.status, response.headers.get("Retry-After")
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__, None
    if 200 <= status < 300:
        return None
    return f"HTTP {status}", later
