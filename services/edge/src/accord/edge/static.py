"""Demo pages and the JavaScript SDK, served by the edge.

- ``/`` lists the demos; ``/demo/<name>`` is one demo page (``static/<name>.html``).
- ``/static/`` holds the demos' scripts and stylesheet.
- ``/sdk/accord.js`` is the JavaScript SDK. Its source lives in ``clients/js/src``;
  ``static/sdk`` is a byte-for-byte copy (``clients/js/publish.sh`` refreshes it and
  ``tests/browser/test_sdk_files.py`` fails when the two differ), so the SDK ships
  inside the edge's wheel and Docker image, which do not contain ``clients/``.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

STATIC = Path(__file__).parent / "static"
SDK = STATIC / "sdk"
DEMOS = ("todo", "chat", "editor")
NO_CACHE = {"Cache-Control": "no-cache"}


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers=NO_CACHE)


async def demo(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in DEMOS:
        raise web.HTTPNotFound()
    return web.FileResponse(STATIC / f"{name}.html", headers=NO_CACHE)


@web.middleware
async def revalidate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Revalidate scripts on every load (cheap with ETags): never an old SDK with new pages."""
    response = await handler(request)
    if request.path.startswith(("/sdk/", "/static/")):
        response.headers.setdefault("Cache-Control", "no-cache")
    return response


def add_static_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/demo/{name}", demo)
    app.router.add_static("/static/", STATIC, show_index=False)
    app.router.add_static("/sdk/", SDK, show_index=False)
    app.middlewares.append(revalidate)
