"""Hypothesis profiles for the sync property tests: SYNC_HYPOTHESIS_PROFILE=sync-ci for more."""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "sync-dev", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "sync-ci", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
