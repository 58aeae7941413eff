"""Accord edge: the WebSocket gateway clients connect to."""

# accord.common first, so that ACCORD_PURE_PYTHON=1 applies to an edge module imported before
# anything else (its hot modules would otherwise load compiled).
import accord.common  # noqa: F401
