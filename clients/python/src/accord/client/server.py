"""A client of the server API (``/api/v1`` on the edge) for application backends.

    async with ServerClient("http://localhost:8080", token=api_key) as accord:
        results = await accord.push("todo-demo", [set_op("todos", "t-1", title="milk")],
                                    client_id="billing-svc")
        async for record in accord.records("todo-demo", collection="todos"):
            ...

Every call is retried, with exponential backoff, on 503, 429 (after its
``Retry-After``) and connection failures, sending the same body again: a
retried push carries the same ``client_seq``s, so the server answers
``duplicate`` for what it had stored and never applies a change twice.

Changes given without a ``client_seq`` are numbered by the client: the
current time in microseconds (never less than the last number + 1), so the
numbers go on increasing across restarts of the backend, as ``client_seq``
must per ``client_id`` and room.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
from accord.client.backoff import Backoff
from accord.client.errors import AccordError, RateLimited, error_from_message

__all__ = ["Gone", "ServerClient", "change"]

RETRY_STATUSES = {429, 503}


class Gone(AccordError):
    """410: the log no longer holds what was asked (changes ``since``, or a records page at
    its seq): read the records afresh."""

    code = "GONE"


def change(collection: str, key: str, op: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """One change for ``push`` (``extra``: ``client_seq``, ``ts``)."""
    return {"collection": collection, "key": key, "op": dict(op), **extra}


def _path(*parts: str) -> str:
    return "/".join(quote(part, safe="") for part in parts)


class ServerClient:
    def __init__(
        self,
        base_url: str,
        *,
        token: str,
        attempts: int = 5,
        backoff: Backoff | None = None,
        timeout: float = 10.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._base = base_url.rstrip("/") + "/api/v1"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._attempts = max(1, attempts)
        self._backoff = backoff or Backoff(initial=0.2, maximum=5.0)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._own_session = session is None
        self._last_seq = 0

    async def __aenter__(self) -> ServerClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._own_session = True
        return self._session

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        missing_ok: bool = False,
    ) -> Any:
        """The JSON answer; None for a 404 when ``missing_ok``; raises ``AccordError``."""
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        for attempt in range(self._attempts):
            last = attempt == self._attempts - 1
            try:
                async with self._http().request(
                    method, self._base + path, json=body, params=query, headers=self._headers
                ) as response:
                    text = await response.text()
                    status = response.status
                    retry_after = response.headers.get("Retry-After", "")
            except (TimeoutError, aiohttp.ClientConnectionError):
                if last:
                    raise
                await asyncio.sleep(self._backoff.delay(attempt))
                continue
            try:
                answer = json.loads(text)
            except ValueError:  # not from the edge (a proxy's error page)
                answer = {"code": "UNAVAILABLE" if status >= 500 else "INTERNAL", "message": text}
            if status < 400:
                return answer
            if status == 404 and missing_ok:
                return None
            error = Gone(answer.get("message", "")) if status == 410 else error_from_message(answer)
            if status not in RETRY_STATUSES or last:
                raise error
            wait = self._backoff.delay(attempt)
            if isinstance(error, RateLimited) and retry_after.isdigit():
                wait = max(wait, float(retry_after))
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    def _numbered(self, changes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        numbered = []
        for item in changes:
            item = dict(item)
            if "client_seq" not in item:
                self._last_seq = max(self._last_seq + 1, time.time_ns() // 1000)
                item["client_seq"] = self._last_seq
            numbered.append(item)
        return numbered

    async def push(
        self, room: str, changes: Sequence[Mapping[str, Any]], *, client_id: str
    ) -> list[dict[str, Any]]:
        """Push ``changes`` as ``client_id``; the results, as in a WebSocket ``ack``."""
        body = {"client_id": client_id, "changes": self._numbered(changes)}
        answer = await self._call("POST", f"/rooms/{_path(room)}/changes", body=body)
        results: list[dict[str, Any]] = answer["results"]
        return results

    async def records(
        self, room: str, *, collection: str | None = None, page_size: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        """Every record of the room (of ``collection``), all as of one seq, page by page;
        raises ``Gone`` when a page can no longer be read at that seq."""
        after = None
        while True:
            page = await self._call(
                "GET",
                f"/rooms/{_path(room)}/records",
                params={"collection": collection, "after": after, "limit": page_size},
            )
            for record in page["records"]:
                yield record
            after = page["next"]
            if after is None:
                return

    async def record(self, room: str, collection: str, key: str) -> dict[str, Any] | None:
        """``{"collection","key","value","seq"}``, or None when there is no such record."""
        found: dict[str, Any] | None = await self._call(
            "GET", f"/rooms/{_path(room)}/records/{_path(collection, key)}", missing_ok=True
        )
        return found

    async def changes(self, room: str, *, since: int = 0, limit: int = 100) -> dict[str, Any]:
        """``{"room","head","changes"}``: changes after ``since``, as clients receive them."""
        answer: dict[str, Any] = await self._call(
            "GET", f"/rooms/{_path(room)}/changes", params={"since": since, "limit": limit}
        )
        return answer

    async def presence(
        self, room: str, *, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        """``{"room","peers","count","users","next_cursor"}``."""
        answer: dict[str, Any] = await self._call(
            "GET", f"/rooms/{_path(room)}/presence", params={"limit": limit, "cursor": cursor}
        )
        return answer

    async def broadcast(self, room: str, data: Any, *, channel: str | None = None) -> None:
        """Every subscriber of the room gets a ``broadcast`` with ``"from":"server"``."""
        body: dict[str, Any] = {"data": data}
        if channel is not None:
            body["channel"] = channel
        await self._call("POST", f"/rooms/{_path(room)}/broadcast", body=body)
