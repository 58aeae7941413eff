"""accord.client.webhooks: Standard Webhooks verification, checked against the spec's
published test vector (standard-webhooks/standard-webhooks, libraries' test suites)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from accord.client.webhooks import WebhookVerificationError, sign, verify
from accord.sync.delivery import sign as server_sign
from accord.sync.webhooks import parse_secret
from aiohttp.test_utils import TestClient, TestServer

# The vector every Standard Webhooks library tests its signing against.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = '{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def vector_headers(**changes: str) -> dict[str, str]:
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    headers.update(changes)
    return headers


def test_signing_matches_the_published_test_vector() -> None:
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE
    # The server signs with the key it parsed from WEBHOOKS_FILE: the same signature.
    key = parse_secret(VECTOR_SECRET, "test")
    assert server_sign(key, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY.encode()) == VECTOR_SIGNATURE


def test_the_test_vector_verifies_and_its_body_is_returned() -> None:
    event = verify(VECTOR_SECRET, vector_headers(), VECTOR_BODY, now=VECTOR_TIMESTAMP + 10)
    assert event == {"test": 2432232314}
    # The bare base64 part and the raw key are accepted as the secret too.
    assert verify(VECTOR_SECRET[6:], vector_headers(), VECTOR_BODY, now=VECTOR_TIMESTAMP)
    key = parse_secret(VECTOR_SECRET, "test")
    assert verify(key, vector_headers(), VECTOR_BODY.encode(), now=VECTOR_TIMESTAMP)


def test_header_names_are_matched_in_any_case_and_several_signatures_may_be_sent() -> None:
    headers = {
        "Webhook-Id": VECTOR_ID,
        "WEBHOOK-TIMESTAMP": str(VECTOR_TIMESTAMP),
        "Webhook-Signature": "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= "
        f"v2,abc {VECTOR_SIGNATURE}",
    }
    assert verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP) == {"test": 2432232314}


@pytest.mark.parametrize(
    ("headers", "body", "now", "reason"),
    [
        (vector_headers(), '{"test": 2432232315}', VECTOR_TIMESTAMP, "bad-signature"),
        (
            vector_headers(
                **{"webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="}
            ),
            VECTOR_BODY,
            VECTOR_TIMESTAMP,
            "bad-signature",
        ),
        (
            vector_headers(**{"webhook-signature": VECTOR_SIGNATURE.replace("v1,", "v2,")}),
            VECTOR_BODY,
            VECTOR_TIMESTAMP,
            "bad-signature",
        ),
        (
            vector_headers(**{"webhook-id": "msg_other"}),
            VECTOR_BODY,
            VECTOR_TIMESTAMP,
            "bad-signature",
        ),
        (
            vector_headers(**{"webhook-timestamp": "hello"}),
            VECTOR_BODY,
            VECTOR_TIMESTAMP,
            "bad-timestamp",
        ),
        (vector_headers(), VECTOR_BODY, VECTOR_TIMESTAMP + 301, "too-old"),
        (vector_headers(), VECTOR_BODY, VECTOR_TIMESTAMP - 301, "too-new"),
        ({"webhook-id": VECTOR_ID}, VECTOR_BODY, VECTOR_TIMESTAMP, "missing-header"),
    ],
)
def test_a_request_that_does_not_check_out_raises_a_typed_error(
    headers: dict[str, str], body: str, now: int, reason: str
) -> None:
    with pytest.raises(WebhookVerificationError) as raised:
        verify(VECTOR_SECRET, headers, body, now=now)
    assert raised.value.reason == reason


def test_the_tolerance_is_the_callers() -> None:
    assert verify(VECTOR_SECRET, vector_headers(), VECTOR_BODY, 1000, now=VECTOR_TIMESTAMP + 900)
    with pytest.raises(WebhookVerificationError) as raised:
        verify(VECTOR_SECRET, vector_headers(), VECTOR_BODY, 10, now=VECTOR_TIMESTAMP + 11)
    assert raised.value.reason == "too-old"


def test_a_secret_that_is_not_base64_is_a_typed_error() -> None:
    with pytest.raises(WebhookVerificationError) as raised:
        verify("whsec_not*base64", vector_headers(), VECTOR_BODY, now=VECTOR_TIMESTAMP)
    assert raised.value.reason == "bad-secret"


DOCS = Path(__file__).resolve().parents[3] / "docs" / "webhooks.md"


def docs_receiver() -> dict[str, Any]:
    """The receiver example of docs/webhooks.md, run as written."""
    text = DOCS.read_text()
    code = re.findall(r"```python[^\n]*\n(.*?)```", text, flags=re.S)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOCS), "exec"), namespace)
    return namespace


async def test_the_documented_receiver_accepts_a_signed_request_and_refuses_a_forged_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = docs_receiver()
    body = json.dumps(
        {
            "type": "changes",
            "room": "invoice:42",
            "changes": [{"seq": 58, "patch": {"set": {"a": 1}}}],
        }
    ).encode()
    stamp = int(time.time())
    signed = {
        "webhook-id": "msg_doc",
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(example["SECRET"], "msg_doc", stamp, body),
    }
    async with TestClient(TestServer(example["app"])) as http:
        for _ in range(2):  # the second is a redelivery: deduped
            answer = await http.post("/accord-hook", data=body, headers=signed)
            assert answer.status == 204
        forged = await http.post("/accord-hook", data=body + b" ", headers=signed)
        assert (forged.status, await forged.text()) == (400, "bad-signature")
    assert capsys.readouterr().out == "invoice:42 58 {'set': {'a': 1}}\n"
