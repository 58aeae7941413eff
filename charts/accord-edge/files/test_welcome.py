# helm test: hello -> welcome through the edge's Service (templates/tests/test-welcome.yaml).
import asyncio
import json
import os
import ssl
import sys
import time

import aiohttp

URL = os.environ["ACCORD_TEST_URL"]
TIMEOUT = float(os.environ.get("ACCORD_TEST_TIMEOUT", "20"))
CA_FILE = os.environ.get("ACCORD_TEST_CA_FILE", "")


def tls_context() -> ssl.SSLContext | bool:
    """For wss://: the chain is verified (system roots, and CA_FILE when it holds a CA), the
    name is not, since the Pod dials the Service, which the certificate seldom names."""
    if not URL.startswith("wss://"):
        return True
    context = ssl.create_default_context()
    context.check_hostname = False
    if os.path.isfile(CA_FILE) and os.path.getsize(CA_FILE) > 0:
        context.load_verify_locations(CA_FILE)
    return context


async def main() -> int:
    hello = {"type": "hello", "id": 1, "client_id": "helm-test"}
    token = os.environ.get("ACCORD_TEST_TOKEN", "").strip()
    secret = os.environ.get("JWT_SECRET")
    if token:  # tests.token: minted by the release's own identity provider
        hello["token"] = token
    elif secret:
        import jwt

        claims = {"sub": "helm-test", "exp": int(time.time()) + 300}
        hello["token"] = jwt.encode(claims, secret, algorithm="HS256")
    async with aiohttp.ClientSession() as http, http.ws_connect(URL, ssl=tls_context()) as ws:
        await ws.send_json(hello)
        reply = await ws.receive_json()
    print(json.dumps(reply))
    if reply.get("type") != "welcome":
        print(f"expected welcome from {URL}", file=sys.stderr)
        return 1
    print(f"welcome from {URL}: Accord {reply.get('server', {}).get('version')}")
    return 0


try:
    sys.exit(asyncio.run(asyncio.wait_for(main(), TIMEOUT)))
except Exception as error:  # refused, closed (e.g. 4001), timed out: all a failure
    print(f"no welcome from {URL}: {error!r}", file=sys.stderr)
    sys.exit(1)
