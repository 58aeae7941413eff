"""Demo pages and the JavaScript SDK, served by the edge.

- ``/`` lists the demos; ``/demo/<name>`` is one demo page (``static/<name>.html``).
- ``/static/`` holds the demos' scripts and stylesheet.
- ``/sdk/accord.js`` is the JavaScript SDK, whose one source is ``clients/js/src``.
  A built edge (wheel, Docker image) carries it as ``static/sdk``, put there at build
  time by ``services/edge/hatch_build.py``; an editable install from a checkout has no
  ``static/sdk`` and serves ``clients/js/src`` itself, so an SDK edit shows at once.
"""

from __future__ import annotations

from pathlib import Path

from accord.common.config import ConfigError
from aiohttp import web
from aiohttp.typedefs import Handler

STATIC = Path(__file__).parent / "static"
PACKAGED_SDK = STATIC / "sdk"
CHECKOUT_SDK = Path(__file__).parents[5] / "clients" / "js" / "src"
DEMOS = ("todo", "chat", "editor")
NO_CACHE = {"Cache-Control": "no-cache"}


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers=NO_CACHE)


async def demo(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in DEMOS:
        raise web.HTTPNotFound()
    return web.FileResponse(STATIC / f"{name}.html", headers=NO_CACHE)


class SdkMissing(ConfigError):
    """Neither the packaged SDK nor the checkout's is there: the edge cannot serve ``/sdk/``."""


def sdk_directory(packaged: Path = PACKAGED_SDK, checkout: Path = CHECKOUT_SDK) -> Path:
    """Where ``/sdk/`` is served from: the packaged copy when present, else the checkout's."""
    for directory in (packaged, checkout):
        if (directory / "accord.js").is_file():
            return directory
    raise SdkMissing(
        f"the JavaScript SDK is missing: neither {packaged} nor {checkout} holds accord.js "
        "(install the edge from a wheel, or editable from a repository checkout)"
    )


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
    app.router.add_static("/sdk/", sdk_directory(), show_index=False)
    app.middlewares.append(revalidate)
