"""Hypothesis profiles for the sync property tests.

``SYNC_HYPOTHESIS_PROFILE`` picks one: ``sync-ci`` (1,000 examples per property,
what ``make test`` and CI run), ``sync-dev`` (200, quick local runs) or
``sync-deep`` (10,000). Unset: ``sync-ci`` when ``CI`` is set, else ``sync-dev``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}

settings.register_profile("sync-dev", max_examples=200, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("sync-ci", max_examples=1000, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("sync-deep", max_examples=10_000, **_COMMON)  # type: ignore[arg-type]

_DEFAULT = "sync-ci" if os.environ.get("CI") else "sync-dev"
PROFILE = settings.get_profile(os.environ.get("SYNC_HYPOTHESIS_PROFILE", _DEFAULT))
