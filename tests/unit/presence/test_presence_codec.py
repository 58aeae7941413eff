"""The JSON shapes of peers and events in Redis round-trip exactly."""

from __future__ import annotations

import json

import pytest
from accord.presence.codec import CodecError, decode_event, decode_peer, encode_event, encode_peer
from accord.presence.model import Event, EventKind, LeaveReason, Peer

PEER = Peer("s/1", "u1", "c1", '{"name": "Zoë"}', '{"x":1}')


def test_peer_round_trips_with_json_text_kept_verbatim() -> None:
    text = encode_peer(PEER)
    assert json.loads(text)["user"] == '{"name": "Zoë"}'
    assert decode_peer(text) == PEER


@pytest.mark.parametrize(
    "event",
    [
        Event("r", EventKind.JOIN, PEER),
        Event("r", EventKind.UPDATE, PEER),
        Event("r", EventKind.LEAVE, PEER, LeaveReason.TIMEOUT),
        Event("r", EventKind.BROADCAST, from_session_id="s1", data_json='{"ping":true}'),
    ],
)
def test_events_round_trip(event: Event) -> None:
    assert decode_event(encode_event(event)) == event


def test_event_as_lua_builds_it_decodes() -> None:
    # cjson escapes '/' and orders keys freely; both must decode the same.
    peer = '{"state":"{}","user":"{}","client_id":"c","user_id":"u","session_id":"s\\/1"}'
    text = '{"room":"r","kind":"leave","peer":' + peer + ',"reason":"disconnect"}'
    assert decode_event(text) == Event(
        "r", EventKind.LEAVE, Peer("s/1", "u", "c", "{}", "{}"), LeaveReason.DISCONNECT
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        '{"room":"r"}',
        '{"room":"r","kind":"dance"}',
        '{"room":"r","kind":"join","peer":{}}',
    ],
)
def test_malformed_events_raise_codec_error(text: str) -> None:
    with pytest.raises(CodecError):
        decode_event(text)
