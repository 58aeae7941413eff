#!/opt/accord/bin/python
"""Container health check for the Accord images: ``accord-healthcheck sync|presence|edge``.

sync and presence are asked the standard ``grpc.health.v1`` question on their
gRPC address; the edge's ``/health`` must answer 200. The address comes from
the same environment variable the service binds (a wildcard host is checked
on loopback). With ``GRPC_TLS_CERT_FILE`` set the check speaks TLS, presenting
the service's own certificate (mutual TLS) and verifying the server against
``GRPC_TLS_CA_FILE`` under the name ``GRPC_TLS_SERVER_NAME`` (default
``localhost``, which the certificate must then name). Health needs no service
token. An edge with ``TLS_CERT_FILE`` serves only TLS, so its ``/health`` is asked over
HTTPS; the check asks its own process on loopback and does not verify the certificate
(which names the public host, not 127.0.0.1), as the kubelet's HTTPS probes do not. Exit
status 0 is healthy, 1 is not, as Docker expects.
"""

from __future__ import annotations

import os
import ssl
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


def _channel(address: str) -> object:
    import grpc

    cert, key = os.environ.get("GRPC_TLS_CERT_FILE"), os.environ.get("GRPC_TLS_KEY_FILE")
    if not cert or not key:
        return grpc.insecure_channel(address)
    ca = os.environ.get("GRPC_TLS_CA_FILE")

    def read(path: str) -> bytes:
        with open(path, "rb") as file:
            return file.read()

    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(ca) if ca else read(cert),
        private_key=read(key),
        certificate_chain=read(cert),
    )
    name = os.environ.get("GRPC_TLS_SERVER_NAME") or "localhost"
    return grpc.secure_channel(
        address, credentials, options=[("grpc.ssl_target_name_override", name)]
    )


def grpc_serving(address: str) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with _channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT_SECONDS)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def http_ok(address: str) -> bool:
    context = None
    if os.environ.get("TLS_CERT_FILE"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # its own process on loopback (see above)
    try:
        if context is None:
            reply = urllib.request.urlopen(f"http://{address}/health", timeout=TIMEOUT_SECONDS)
        else:
            reply = urllib.request.urlopen(
                f"https://{address}/health", timeout=TIMEOUT_SECONDS, context=context
            )
        with reply:
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
