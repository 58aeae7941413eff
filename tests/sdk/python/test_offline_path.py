"""offline_path: ``~`` is expanded, and a path that cannot hold the store is refused clearly."""

from __future__ import annotations

from pathlib import Path

import accord.client
import pytest
from accord.client import OfflineStoreError, SqliteStore


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    return home


async def test_tilde_is_the_home_directory_not_a_directory_named_tilde(
    home: Path, tmp_path: Path
) -> None:
    store = SqliteStore("~/.cache/todo/accord.db")
    assert store.path == home / ".cache" / "todo" / "accord.db"
    await store.open()
    try:
        client_id, _ = await store.identity("laptop-ada", "x")
    finally:
        await store.close()
    assert client_id == "laptop-ada"
    assert (home / ".cache" / "todo" / "accord.db").is_file()
    assert not (tmp_path / "~").exists()


async def test_the_client_expands_tilde_and_keeps_its_queue_there(home: Path) -> None:
    client = accord.client.connect("ws://127.0.0.1:9/ws", offline_path="~/todo.db")
    await client.start(wait=False)  # nothing listens on port 9: it works offline
    try:
        room = await client.join("todo-demo")
        await room.set("todos", "t-1", title="milk")
    finally:
        await client.close()
    reopened = SqliteStore(home / "todo.db")
    await reopened.open()
    try:
        state = await reopened.load_room("todo-demo")
    finally:
        await reopened.close()
    assert [change.key for change in state.pending] == ["t-1"]


def test_a_directory_is_refused_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(OfflineStoreError, match=r"is a directory; give a file in it") as raised:
        SqliteStore(tmp_path)
    assert raised.value.path == tmp_path
    assert isinstance(raised.value, ValueError)  # also a ValueError, like other bad arguments


def test_a_file_where_a_directory_is_needed_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("not a directory")
    with pytest.raises(OfflineStoreError, match=r"cache is a file, not a directory"):
        SqliteStore(tmp_path / "cache" / "todo" / "accord.db")
    with pytest.raises(OfflineStoreError, match="not a directory"):
        accord.client.connect("ws://127.0.0.1:9/ws", offline_path=tmp_path / "cache" / "x.db")


def test_an_empty_path_and_an_unknown_user_are_refused() -> None:
    with pytest.raises(OfflineStoreError, match="is empty"):
        accord.client.connect("ws://127.0.0.1:9/ws", offline_path="")
    with pytest.raises(OfflineStoreError, match="cannot expand ~"):
        SqliteStore("~no-such-user-accord-test/accord.db")


async def test_a_directory_that_cannot_be_created_is_refused_on_open() -> None:
    # /proc refuses new directories even to root.
    store = SqliteStore("/proc/accord-test/todo/accord.db")
    with pytest.raises(OfflineStoreError, match="cannot create /proc/accord-test/todo"):
        await store.open()


async def test_a_file_that_is_not_sqlite_is_refused_and_kept(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes, " * 500)
    store = SqliteStore(notes)
    with pytest.raises(OfflineStoreError, match="not usable as an SQLite file"):
        await store.open()
    assert notes.read_text() == "my notes, " * 500
