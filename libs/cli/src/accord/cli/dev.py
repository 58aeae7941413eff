"""``accord dev``: the whole suite as three child processes on one machine.

sync and presence start first; the edge starts once both answer their health
checks, and the address is printed once the edge's ``/ready`` answers 200. A child
that dies while the suite starts is reported alone: a port in use is one line
naming the setting to change, exit code 2. Ctrl-C or SIGTERM stops the edge first
(so it drains its sockets while sync and presence still answer), then the others;
a second Ctrl-C kills them. If a child dies later, the rest are stopped and
``accord dev`` exits non-zero, naming the child. On loopback, without TLS files or
service tokens, gRPC between the three is allowed plaintext and unauthenticated (and
said so); bound elsewhere, the services' own refusal stands. The edge sends its
pushes to sync over a Unix socket in a private temporary directory
(``SYNC_PUSH_SOCKET``, docs/operations.md) unless that is set; set empty, over gRPC.
``--one-process`` runs the three in this process instead (``accord.cli.one_process``).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from accord.cli.supervise import (
    Child,
    StopRequest,
    stop_in_order,
    unavailable_listener,
    wait_for,
)
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
from accord.common.push_socket import MAX_PATH_BYTES

PUSH_SOCKET = "SYNC_PUSH_SOCKET"

SERVICES = ("sync", "presence", "edge")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
"""Seconds sync and presence get to stop; the edge gets its DRAIN_TIMEOUT and this."""


def _say(message: str) -> None:
    print(f"accord dev: {message}", file=sys.stderr, flush=True)


def _allow_unprotected_grpc(base: dict[str, str], hosts: tuple[str, str], notes: list[str]) -> None:
    """On loopback only: plaintext without TLS files, no tokens without service tokens."""
    if not all(config.is_loopback(host) for host in hosts):
        return
    if not any(base.get(name) for name in (CERT, KEY, CA, ALLOW_PLAINTEXT)):
        base[ALLOW_PLAINTEXT] = "true"
        notes.append("gRPC on loopback without TLS (set GRPC_TLS_* for TLS)")
    if not any(base.get(name) for name in (TOKENS_FILE, TOKEN, ALLOW_UNAUTHENTICATED)):
        base[ALLOW_UNAUTHENTICATED] = "true"
        notes.append(
            "gRPC on loopback without service tokens (set SERVICE_TOKENS_FILE and SERVICE_TOKEN)"
        )


def _readers() -> list[Callable[[Mapping[str, str]], object]]:
    from accord.edge.settings import Settings as EdgeSettings
    from accord.presence.settings import Settings as PresenceSettings
    from accord.sync.settings import Settings as SyncSettings

    return [SyncSettings.from_env, PresenceSettings.from_env, EdgeSettings.from_env]


def settings_warnings(env: Mapping[str, str]) -> list[str]:
    """A line for each variable of ``env`` that looks like a misspelt setting."""
    defaults = {"ALLOW_ANONYMOUS": "true"}  # what accord dev runs with when nothing is set
    return config.misspelt_settings(env, config.settings_read(_readers(), [env, defaults]))


def child_environments(
    env: Mapping[str, str], notes: list[str] | None = None
) -> dict[str, dict[str, str]]:
    """The environment of each child, validated up front; what it chose for the user is
    added to ``notes`` (said once the ports are known to be free)."""
    notes = [] if notes is None else notes
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
        notes.append("no JWT_SECRET set: anonymous clients are allowed (development only)")
    _allow_unprotected_grpc(base, (sync_host, presence_host), notes)
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


def listeners(
    envs: Mapping[str, Mapping[str, str]], one_process: bool = False
) -> list[tuple[str, tuple[str, int]]]:
    """Every address the children will listen on, by the setting that names it (in one
    process, no metrics port but the edge's)."""
    found = [
        ("WS_ADDR", config.get_addr(envs["edge"], "WS_ADDR", "0.0.0.0:8080")),
        ("SYNC_ADDR", config.get_addr(envs["sync"], "SYNC_ADDR", "127.0.0.1:50051")),
        ("PRESENCE_ADDR", config.get_addr(envs["presence"], "PRESENCE_ADDR", "127.0.0.1:50052")),
    ]
    if one_process:
        return found
    for name, setting in (("sync", "SYNC_METRICS_ADDR"), ("presence", "PRESENCE_METRICS_ADDR")):
        if envs[name]["METRICS_ADDR"].strip():
            found.append((setting, config.get_addr(envs[name], "METRICS_ADDR", "")))
    return found


def _local(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


@contextmanager
def _grpc_serving(target: str, security: ClientSecurity) -> Iterator[Callable[[], bool]]:
    """A check: does the gRPC server at ``target`` report SERVING? (Over TLS when the edge's
    calls will be: the health service needs no token.)"""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    if security.tls is None:
        opened = grpc.insecure_channel(target)
    else:
        name = (
            []
            if security.server_name is None
            else [("grpc.ssl_target_name_override", security.server_name)]
        )
        opened = grpc.secure_channel(target, channel_credentials(security.tls), options=name)
    with opened as channel:
        stub = health_pb2_grpc.HealthStub(channel)

        def serving() -> bool:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
            except grpc.RpcError:
                return False
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

        yield serving


def _http_ready(url: str) -> bool:
    """Does ``url`` (the edge's ``/ready``) answer 200?"""
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310 - our own http:// URL
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _grpc_target(env: Mapping[str, str], setting: str, default: str) -> str:
    host, port = config.get_addr(env, setting, default)
    return config.format_addr(_local(host), port)


@contextmanager
def _push_socket(env: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """``env``, with ``SYNC_PUSH_SOCKET`` in a private directory of its own unless set
    (set empty: pushes go over gRPC); the directory is removed afterwards."""
    if PUSH_SOCKET in env:
        yield dict(env)
        return
    directory = tempfile.mkdtemp(prefix="accord-dev-")  # mode 0700: ours alone
    path = os.path.join(directory, "push.sock")
    try:
        if len(path.encode()) > MAX_PATH_BYTES:  # a long TMPDIR: gRPC, as before
            yield dict(env)
        else:
            yield {**env, PUSH_SOCKET: path}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run(env: Mapping[str, str] | None = None, *, one_process: bool = False) -> int:
    source = os.environ if env is None else env
    for warning in settings_warnings(source):
        _say(f"warning: {warning}")
    with _push_socket(source) as chosen:
        return _run(chosen, one_process)


def _run(source: Mapping[str, str], one_process: bool) -> int:
    notes: list[str] = []
    try:
        envs = child_environments(source, notes)
    except ConfigError as error:
        _say(f"configuration error: {error}")
        return 2

    busy = unavailable_listener(listeners(envs, one_process))
    if busy is not None:
        _say(busy)
        return 2
    for note in notes:
        _say(note)
    if one_process:
        from accord.cli import one_process as single

        return single.run(envs)

    from accord.edge.settings import Settings as EdgeSettings

    edge_stop = EdgeSettings.from_env(envs["edge"]).drain_timeout + STOP_TIMEOUT
    stop = StopRequest()
    stop.install()
    children: dict[str, Child] = {}
    try:
        return _serve(envs, children, stop)
    finally:
        stop_in_order(
            [
                ([children[name] for name in ("edge",) if name in children], edge_stop),
                (
                    [children[name] for name in ("sync", "presence") if name in children],
                    STOP_TIMEOUT,
                ),
            ],
            stop,
            _say,
        )


def _serve(envs: dict[str, dict[str, str]], children: dict[str, Child], stop: StopRequest) -> int:
    for name in ("sync", "presence"):
        children[name] = Child(name, envs[name])
    security = ClientSecurity.from_env(envs["edge"])
    with (
        _grpc_serving(
            _grpc_target(envs["sync"], "SYNC_ADDR", "127.0.0.1:50051"), security
        ) as sync_ok,
        _grpc_serving(
            _grpc_target(envs["presence"], "PRESENCE_ADDR", "127.0.0.1:50052"), security
        ) as presence_ok,
    ):
        outcome = wait_for(
            lambda: sync_ok() and presence_ok(), children.values(), stop, START_TIMEOUT
        )
    host, port = config.get_addr(envs["edge"], "WS_ADDR", "0.0.0.0:8080")
    if outcome is True:
        children["edge"] = Child("edge", envs["edge"])
        ready = f"http://{config.format_addr(_local(host), port)}/ready"
        outcome = wait_for(lambda: _http_ready(ready), children.values(), stop, START_TIMEOUT)
    if isinstance(outcome, Child):
        for child in children.values():
            if child is not outcome:
                child.mute()
        code, message = outcome.failure()
        _say(message)
        return code
    if not outcome:
        for child in children.values():
            child.go_live()
        if stop.requested:
            _say("stopping")
            return 0
        _say(f"the suite did not become ready in {START_TIMEOUT:.0f} s")
        return 1

    for child in children.values():
        child.go_live()
    _say(f"running: ws://{config.address_shown(host, port)}/ws  (Ctrl-C stops all three)")
    while not stop.requested:
        for name, child in children.items():
            exited = child.exit_code
            if exited is not None:
                _say(f"{name} exited with code {exited}; stopping the others")
                return exited if exited > 0 else 1
        time.sleep(0.1)
    _say("stopping")
    return 0
