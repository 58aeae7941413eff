"""The push socket's framing and its setting (``accord.common.push_socket``)."""

from __future__ import annotations

import asyncio

import pytest
from accord.common.config import ConfigError
from accord.common.push_socket import MAX_PATH_BYTES, FrameError, frame, read_frame, socket_path
from accord.edge.settings import Settings as EdgeSettings
from accord.sync.settings import Settings as SyncSettings


def reader_of(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def test_frames_are_read_back_in_order_and_the_end_between_them_is_none() -> None:
    reader = reader_of(frame(b"first") + frame(b"") + frame(b"x" * 70_000))
    assert await read_frame(reader) == b"first"
    assert await read_frame(reader) == b""
    assert await read_frame(reader) == b"x" * 70_000
    assert await read_frame(reader) is None


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"\x00\x00", "inside a frame's length"),
        (frame(b"abcdef")[:-2], "4 bytes into a frame of 6"),
    ],
)
async def test_a_frame_cut_short_is_an_error_saying_where(data: bytes, says: str) -> None:
    with pytest.raises(FrameError, match=says):
        await read_frame(reader_of(data))


async def test_a_frame_over_the_limit_is_refused_before_its_body_is_read() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data((1001).to_bytes(4, "big"))  # no body follows, and no end either
    with pytest.raises(FrameError, match="1001 bytes is over the limit of 1000"):
        await asyncio.wait_for(read_frame(reader, limit=1000), 1)


def test_unset_or_empty_is_no_socket_and_a_good_path_is_kept() -> None:
    assert socket_path(None) is None
    assert socket_path("  ") is None
    assert socket_path(" /run/accord/push.sock ") == "/run/accord/push.sock"
    assert socket_path("/" + "s" * (MAX_PATH_BYTES - 1)) == "/" + "s" * (MAX_PATH_BYTES - 1)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("push.sock", "absolute path"),
        ("/run/accord/", "directory"),
        ("/run/\x00x", "NUL"),
        ("/" + "s" * MAX_PATH_BYTES, "at most 107"),
    ],
)
@pytest.mark.parametrize("settings", [SyncSettings, EdgeSettings])
def test_a_bad_path_stops_either_service_with_one_line(
    settings: type[SyncSettings] | type[EdgeSettings], value: str, says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings.from_env({"SYNC_PUSH_SOCKET": value, "ALLOW_ANONYMOUS": "true"})
    message = str(caught.value)
    assert message.startswith("SYNC_PUSH_SOCKET=") and says in message
    assert "\n" not in message


def test_both_services_read_the_same_setting() -> None:
    env = {"SYNC_PUSH_SOCKET": "/run/accord/push.sock", "ALLOW_ANONYMOUS": "true"}
    assert SyncSettings.from_env(env).push_socket == "/run/accord/push.sock"
    assert EdgeSettings.from_env(env).push_socket == "/run/accord/push.sock"
    assert SyncSettings.from_env({}).push_socket is None
    assert EdgeSettings.from_env({"ALLOW_ANONYMOUS": "true"}).push_socket is None
