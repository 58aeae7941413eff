# helm test: hello -> welcome through the edge's Service (templates/tests/test-welcome.yaml).
import asyncio
import json
import os
import sys
import time

import aiohttp

URL = os.environ["ACCORD_TEST_URL"]
TIMEOUT = float(os.environ.get("ACCORD_TEST_TIMEOUT", "20"))


async def main() -> int:
    hello = {"type": "hello", "id": 1, "client_id": "helm-test"}
    secret = os.environ.get("JWT_SECRET")
    if secret:
        import jwt

        claims = {"sub": "helm-test", "exp": int(time.time()) + 300}
        hello["token"] = jwt.encode(claims, secret, algorithm="HS256")
    async with aiohttp.ClientSession() as http, http.ws_connect(URL) as ws:
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
