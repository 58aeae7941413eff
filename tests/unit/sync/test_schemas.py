"""Record schemas: the file (JSON or YAML, checked at start), which rules apply, the
error's JSON path, reloading, and the engine refusing that change only, storing nothing."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from accord.api.sync.v1 import sync_pb2 as pb
from accord.common.config import ConfigError
from accord.sync import wire
from accord.sync.engine import Engine
from accord.sync.extensions import Screen
from accord.sync.hlc import HybridClock
from accord.sync.model import Limits, PushOutcome
from accord.sync.schemas import SchemaWatcher, load_schemas
from accord.sync.settings import Settings
from accord.sync.store_sqlite import SqliteStore

LIMITS = Limits()
TODO = {
    "type": "object",
    "required": ["title"],
    "properties": {
        "title": {"type": "string", "maxLength": 10},
        "votes": {"type": "integer", "maximum": 3},
        "tags": {"type": "array", "maxItems": 2},
        "lines": {"type": "array", "items": {"properties": {"value": {"type": "string"}}}},
    },
}
RULES = {"rules": [{"rooms": ["team-*", "demo"], "collection": "todos", "schema": TODO}]}


def write(path: Path, document: Any) -> str:
    path.write_text(json.dumps(document) if path.suffix == ".json" else document)
    return str(path)


def test_a_json_file_applies_by_room_glob_and_collection(tmp_path: Path) -> None:
    schemas = load_schemas(write(tmp_path / "s.json", RULES))
    assert len(schemas.applying("team-7", "todos")) == 1
    assert schemas.applying("demo", "todos") and not schemas.applying("other", "todos")
    assert not schemas.applying("team-7", "notes")
    error = schemas.check("team-7", "todos", "t1", {"title": 5})
    assert error is not None
    assert (error.code, error.json_path) == ("BAD_REQUEST", "$.title")
    assert "todos/t1" in error.message and "$.title" in error.message
    assert schemas.check("team-7", "todos", "t1", {"title": "ok"}) is None
    assert schemas.check("team-7", "todos", "t1", None) is None  # deleted: always fine
    assert schemas.check("other", "todos", "t1", {"title": 5}) is None


def test_a_yaml_file_is_read_too(tmp_path: Path) -> None:
    text = """
rules:
  - rooms: ["*"]
    collection: notes
    schema:
      type: object
      properties:
        body: {type: string}
"""
    schemas = load_schemas(write(tmp_path / "s.yaml", text))
    error = schemas.check("any", "notes", "n", {"body": []})
    assert error is not None and error.json_path == "$.body"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", "Expecting property name"),
        ([], 'must be an object with a "rules" list'),
        ({"rules": [], "extra": 1}, "unknown keys"),
        ({"rules": [{"rooms": [], "collection": "c", "schema": {}}]}, "rules[0].rooms"),
        ({"rules": [{"rooms": ["*"], "collection": "", "schema": {}}]}, "rules[0].collection"),
        (
            {"rules": [{"rooms": ["*"], "collection": "c", "schema": {"type": "nope"}}]},
            "rules[0].schema is not a valid draft 2020-12 schema at $.type",
        ),
    ],
)
def test_a_bad_file_is_one_config_error_line(tmp_path: Path, document: Any, message: str) -> None:
    path = tmp_path / "s.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    with pytest.raises(ConfigError) as caught:
        load_schemas(str(path))
    text = str(caught.value)
    assert text.startswith(f"SCHEMAS_FILE={str(path)!r}: ") and "\n" not in text
    assert message in text


def test_a_missing_file_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        SchemaWatcher(str(tmp_path / "absent.json"))
    assert Settings.from_env({"SCHEMAS_FILE": " /x.json "}).schemas_file == "/x.json"


def test_a_changed_file_is_reloaded_and_a_bad_one_keeps_the_last_good(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.json"
    watcher = SchemaWatcher(write(path, RULES))
    assert not watcher.reload()  # unchanged
    loose = {"rules": [{"rooms": ["*"], "collection": "todos", "schema": {"type": "object"}}]}
    write(path, loose)
    os.utime(path, ns=(1, 1))
    assert watcher.reload()
    assert watcher.current.check("team-1", "todos", "t", {"title": 5}) is None
    path.write_text("{broken")
    os.utime(path, ns=(2, 2))
    with caplog.at_level(logging.WARNING, "accord.sync.schemas"):
        assert not watcher.reload()
    assert watcher.current.rules[0].collection == "todos"
    assert [r.getMessage() for r in caplog.records if "kept" in r.getMessage()] != []


def change(client_seq: int, key: str, op: pb.Op) -> pb.Change:
    return pb.Change(client_seq=client_seq, collection="todos", key=key, op=op)


def set_op(**fields: Any) -> pb.Op:
    return pb.Op(set=pb.SetOp(fields_json=json.dumps(fields)))


async def push(engine: Engine, *changes: pb.Change) -> PushOutcome:
    request = pb.PushRequest(room="team-1", user_id="u", client_id="c", changes=changes)
    return await engine.push(wire.push_batch(request, LIMITS))


@pytest.fixture
async def engine(tmp_path: Path) -> Any:
    watcher = SchemaWatcher(write(tmp_path / "s.json", RULES))
    async with SqliteStore.open(":memory:") as store:
        yield Engine(
            store, HybridClock(60_000_000), LIMITS, screen=Screen([], 1.0, LIMITS, watcher)
        )


async def test_every_op_kind_is_checked_and_a_violation_stores_nothing(engine: Engine) -> None:
    created = await push(engine, change(1, "t", set_op(title="milk", votes=3)))
    assert created.results[0].seq == 1
    cases = [
        (set_op(title="x" * 11), "$.title"),
        (pb.Op(incr=pb.IncrOp(field="votes", by=1)), "$.votes"),
        (pb.Op(add=pb.AddOp(field="tags", values_json='["a","b","c"]')), "$.tags"),
        (pb.Op(insert=pb.InsertOp(field="lines", values_json="[1]")), "$.lines[0].value"),
    ]
    for seq, (op, path) in enumerate(cases, start=2):
        outcome = await push(engine, change(seq, "t", op))
        error = outcome.results[0].error
        assert error is not None and error.json_path == path, (op, error)
        assert outcome.head == 1 and outcome.committed == ()
    # A record without its required title cannot be created by an incr …
    fresh = await push(engine, change(10, "u", pb.Op(incr=pb.IncrOp(field="votes", by=1))))
    assert fresh.results[0].error is not None and fresh.results[0].error.json_path == "$"
    # … and the valid ones of a push commit beside a refused one.
    mixed = await push(
        engine,
        change(11, "t", pb.Op(incr=pb.IncrOp(field="votes", by=-1))),
        change(12, "t", set_op(title=7)),
        change(13, "t", pb.Op(delete=pb.DeleteOp())),
    )
    assert [r.seq for r in mixed.results] == [2, 0, 3]
    assert await engine.head("team-1") == 3
