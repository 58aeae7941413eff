"""Verify the webhooks Accord sends (Standard Webhooks signatures), in a receiver.

    from accord.client.webhooks import WebhookVerificationError, verify

    try:
        event = verify(SECRET, request.headers, await request.read())
    except WebhookVerificationError:
        return web.Response(status=400)
    # event == {"type": "changes", "room": "...", "changes": [...]}
    # dedupe on request.headers["webhook-id"]: a batch may arrive more than once

``secret`` is the endpoint's ``whsec_...`` secret from ``WEBHOOKS_FILE`` (the bare
base64 part, or the key's bytes, are accepted too). ``body`` must be the request's
bytes exactly as received: parse it only after it verified.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["WebhookVerificationError", "sign", "verify"]

SECRET_PREFIX = "whsec_"


class WebhookVerificationError(Exception):
    """The request is not a webhook signed with this secret (or is too old or too new);
    ``reason`` says which check failed: ``missing-header``, ``bad-timestamp``,
    ``too-old``, ``too-new``, ``bad-signature``, ``bad-secret`` or ``bad-body``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    text = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("bad-secret", "the secret is not whsec_<base64>") from None


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    if not value:
        raise WebhookVerificationError("missing-header", f"no {name} header")
    return value


def sign(secret: str | bytes, message_id: str, timestamp: int, body: bytes | str) -> str:
    """The ``webhook-signature`` value for one request: ``v1,<base64 HMAC-SHA256>``."""
    data = body.encode() if isinstance(body, str) else body
    signed = f"{message_id}.{timestamp}.".encode() + data
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes | str,
    tolerance: int = 300,
    *,
    now: float | None = None,
) -> Any:
    """The webhook's JSON body, once its signature and timestamp check out.

    ``headers`` is any mapping of the request's headers (names in any case); the
    timestamp must be within ``tolerance`` seconds of ``now`` (default: the clock),
    which guards against replays. Raises ``WebhookVerificationError``."""
    message_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError(
            "bad-timestamp", "webhook-timestamp is not an integer"
        ) from None
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise WebhookVerificationError("too-old", "webhook-timestamp is too old")
    if timestamp > current + tolerance:
        raise WebhookVerificationError("too-new", "webhook-timestamp is in the future")
    expected = sign(secret, message_id, timestamp, body).encode()
    for candidate in signatures.split():
        version, _, _ = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(candidate.encode(), expected):
            break
    else:
        raise WebhookVerificationError("bad-signature", "no webhook-signature matches")
    try:
        return json.loads(body)
    except ValueError:
        raise WebhookVerificationError("bad-body", "the body is not JSON") from None
