#!/opt/accord/bin/python
"""Container health check for the Accord images: ``accord-healthcheck sync|presence|edge``.

sync and presence are asked the standard ``grpc.health.v1`` question on their
gRPC address; the edge's ``/health`` must answer 200. The address comes from
the same environment variable the service binds (a wildcard host is checked
on loopback). Exit status 0 is healthy, 1 is not, as Docker expects.
"""

from __future__ import annotations

import os
import sys
import urllib.request

DEFAULTS = {
    "sync": ("SYNC_ADDR", "0.0.0.0:50051"),
    "presence": ("PRESENCE_ADDR", "0.0.0.0:50052"),
    "edge": ("WS_ADDR", "0.0.0.0:8080"),
}
TIMEOUT_SECONDS = 2.0


def local_address(raw: str) -> str:
    host, _, port = raw.rpartition(":")
    if host in ("", "0.0.0.0", "[::]", "::"):  # noqa: S104 - compares an address, binds nothing
        host = "127.0.0.1"
    return f"{host}:{port}"


def grpc_serving(address: str) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT_SECONDS)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def http_ok(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/health", timeout=TIMEOUT_SECONDS) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in DEFAULTS:
        print("usage: accord-healthcheck sync|presence|edge", file=sys.stderr)
        return 2
    service = argv[1]
    variable, default = DEFAULTS[service]
    address = local_address(os.environ.get(variable) or default)
    healthy = http_ok(address) if service == "edge" else grpc_serving(address)
    if not healthy:
        print(f"{service} at {address} is not healthy", file=sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
