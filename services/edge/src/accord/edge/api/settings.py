"""The server API's settings (read with the edge's, once, at start-up)."""

from __future__ import annotations

from dataclasses import dataclass

from accord.common import config
from accord.common.config import Env
from accord.edge.api.keys import ApiKey, read_keys


@dataclass(frozen=True)
class ApiSettings:
    keys_file: str | None = None
    keys: tuple[ApiKey, ...] = ()
    """The keys of ``keys_file`` at start-up (a file that does not parse stops start-up)."""
    keys_reload_interval: float = 1.0
    rate_limit: float = 50.0
    """Requests per second per credential (a JWT's ``sub``, an API key's name)."""
    rate_burst: int = 100

    @classmethod
    def from_env(cls, env: Env) -> ApiSettings:
        keys_file = config.get_optional(env, "API_KEYS_FILE")
        return cls(
            keys_file=keys_file,
            keys=read_keys(keys_file) if keys_file is not None else (),
            keys_reload_interval=config.get_float(
                env, "API_KEYS_RELOAD_INTERVAL", 1.0, minimum=0.0, maximum=3600.0
            ),
            rate_limit=config.get_float(env, "API_RATE_LIMIT", 50.0, minimum=0.1, maximum=1e6),
            rate_burst=config.get_int(env, "API_RATE_BURST", 100, minimum=1, maximum=1_000_000),
        )
