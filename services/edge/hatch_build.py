"""Build hook: put the JavaScript SDK (``clients/js/src/*.js``) into the edge's wheel and sdist.

The SDK has one source, ``clients/js/src``; the edge serves it at ``/sdk/``. A wheel
gets it as ``accord/edge/static/sdk/*.js`` and an sdist as
``src/accord/edge/static/sdk/*.js``, so that a wheel built from the sdist (which has
no ``clients/`` tree) finds it in the package. An editable install gets nothing:
``accord.edge.static`` serves the checkout's ``clients/js/src`` directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PACKAGED = Path("src", "accord", "edge", "static", "sdk")
SOURCE = Path("..", "..", "clients", "js", "src")


class SdkBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":
            return
        root = Path(self.root)
        source = sorted((root / SOURCE).resolve().glob("*.js"))
        if not source:
            if (root / PACKAGED / "accord.js").is_file():
                return  # built from an sdist: the SDK is already in the package
            raise FileNotFoundError(
                f"the JavaScript SDK is missing: no {root / SOURCE}/*.js "
                "(build the edge from the repository checkout, or from its sdist)"
            )
        target = PACKAGED.relative_to("src") if self.target_name == "wheel" else PACKAGED
        for path in source:
            build_data["force_include"][str(path)] = (target / path.name).as_posix()
