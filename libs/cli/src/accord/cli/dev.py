"""``accord dev``: the whole suite as three child processes on one machine.

sync and presence start first; the edge starts once both answer their health
checks. Ctrl-C or SIGTERM stops the edge first (so it drains its sockets),
then the others. If any child dies, the rest are stopped and ``accord dev``
exits non-zero, naming the child. On loopback, without TLS files or service
tokens, gRPC between the three is allowed plaintext and unauthenticated (and
said so); bound elsewhere, the services' own refusal stands.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping

import grpc
from accord.common import config
from accord.common.config import ConfigError
from accord.common.grpc_security import (
    ALLOW_PLAINTEXT,
    ALLOW_UNAUTHENTICATED,
    TOKEN,
    ClientSecurity,
)
from accord.common.grpc_tls import CA, CERT, KEY, channel_credentials
from accord.common.grpc_tokens import SETTING as TOKENS_FILE

SERVICES = ("sync", "presence", "edge")
STOP_TIMEOUT = 30.0


def _say(message: str) -> None:
    print(f"accord dev: {message}", file=sys.stderr, flush=True)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _allow_unprotected_grpc(base: dict[str, str], hosts: tuple[str, str]) -> None:
    """On loopback only: plaintext without TLS files, no tokens without service tokens."""
    if not all(_loopback(host) for host in hosts):
        return
    if not any(base.get(name) for name in (CERT, KEY, CA, ALLOW_PLAINTEXT)):
        base[ALLOW_PLAINTEXT] = "true"
        _say("gRPC on loopback without TLS (set GRPC_TLS_* for TLS)")
    if not any(base.get(name) for name in (TOKENS_FILE, TOKEN, ALLOW_UNAUTHENTICATED)):
        base[ALLOW_UNAUTHENTICATED] = "true"
        _say("gRPC on loopback without service tokens (set SERVICE_TOKENS_FILE and SERVICE_TOKEN)")


def child_environments(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The environment of each child, validated up front."""
    base = dict(env)
    config.get_addr(base, "WS_ADDR", "0.0.0.0:8080")
    sync_host, sync_port = config.get_addr(base, "SYNC_ADDR", "127.0.0.1:50051")
    presence_host, presence_port = config.get_addr(base, "PRESENCE_ADDR", "127.0.0.1:50052")
    if sync_port == 0 or presence_port == 0:
        raise ConfigError("accord dev needs fixed SYNC_ADDR and PRESENCE_ADDR ports (not 0)")
    if (sync_host, sync_port) == (presence_host, presence_port):
        raise ConfigError("SYNC_ADDR and PRESENCE_ADDR must differ")
    if not any(base.get(name) for name in ("JWT_SECRET", "JWT_PUBLIC_KEY_FILE", "ALLOW_ANONYMOUS")):
        base["ALLOW_ANONYMOUS"] = "true"
        _say("no JWT_SECRET set: anonymous clients are allowed (development only)")
    _allow_unprotected_grpc(base, (sync_host, presence_host))
    envs = {name: dict(base) for name in SERVICES}
    envs["sync"]["METRICS_ADDR"] = base.get("SYNC_METRICS_ADDR", "127.0.0.1:9101")
    envs["presence"]["METRICS_ADDR"] = base.get("PRESENCE_METRICS_ADDR", "127.0.0.1:9102")
    # Validate every child's settings here, so a bad value is one line from us
    # rather than a child dying after its siblings started.
    from accord.edge.settings import Settings as EdgeSettings
    from accord.presence.settings import Settings as PresenceSettings
    from accord.sync.settings import Settings as SyncSettings

    SyncSettings.from_env(envs["sync"]).grpc.check()
    PresenceSettings.from_env(envs["presence"]).grpc.check()
    EdgeSettings.from_env(envs["edge"]).grpc.check()
    return envs


def _channel(target: str, security: ClientSecurity) -> grpc.Channel:
    """A blocking channel for health checks, protected as the edge's will be."""
    if security.tls is None:
        return grpc.insecure_channel(target)
    name = (
        []
        if security.server_name is None
        else [("grpc.ssl_target_name_override", security.server_name)]
    )
    return grpc.secure_channel(target, channel_credentials(security.tls), options=name)


def _wait_healthy(
    target: str, security: ClientSecurity, proc: subprocess.Popen[bytes], timeout: float = 60.0
) -> bool:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    with _channel(target, security) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    return False


def _stop(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for name in ("edge", "presence", "sync"):
        proc = procs.get(name)
        if proc is None or proc.poll() is not None:
            continue
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _say(f"{name} did not stop in {STOP_TIMEOUT:.0f}s; killing it")
            proc.kill()
            proc.wait()


def run(env: Mapping[str, str] | None = None) -> int:
    try:
        envs = child_environments(os.environ if env is None else env)
    except ConfigError as error:
        _say(f"configuration error: {error}")
        return 2

    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    security = ClientSecurity.from_env(envs["edge"])
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in ("sync", "presence"):
            procs[name] = subprocess.Popen([sys.executable, "-m", f"accord.{name}"], env=envs[name])  # noqa: S603 - argv is this interpreter and a fixed module
        for name, var, default in (
            ("sync", "SYNC_ADDR", "127.0.0.1:50051"),
            ("presence", "PRESENCE_ADDR", "127.0.0.1:50052"),
        ):
            host, port = config.get_addr(envs[name], var, default)
            target = config.format_addr(
                "127.0.0.1" if host in ("0.0.0.0", "::", "") else host, port
            )
            if not _wait_healthy(target, security, procs[name]):
                if stopping:
                    return 0
                code = procs[name].poll()
                _say(
                    f"{name} failed to start" + (f" (exit code {code})" if code is not None else "")
                )
                return 1
        procs["edge"] = subprocess.Popen([sys.executable, "-m", "accord.edge"], env=envs["edge"])
        host, port = config.get_addr(envs["edge"], "WS_ADDR", "0.0.0.0:8080")
        shown = "localhost" if host in ("0.0.0.0", "::", "") else host
        _say(f"running: ws://{shown}:{port}/ws  (Ctrl-C stops all three)")
        while not stopping:
            for name, proc in procs.items():
                code = proc.poll()
                if code is not None:
                    _say(f"{name} exited with code {code}; stopping the others")
                    return code if code > 0 else 1
            time.sleep(0.2)
        _say("stopping")
        return 0
    finally:
        _stop(procs)
