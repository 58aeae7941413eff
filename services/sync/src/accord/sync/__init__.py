"""Accord sync: merges changes, gives each a gapless per-room seq, stores and streams them."""

# accord.common first, so that ACCORD_PURE_PYTHON=1 applies to a sync module imported before
# anything else (its hot modules would otherwise load compiled).
import accord.common  # noqa: F401
