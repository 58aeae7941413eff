"""Sync's webhook endpoints: the shared ``WEBHOOKS_FILE`` model (``accord.common.webhooks``).

Sync routes and delivers the ``changes`` events; ``presence`` events are the
presence service's to deliver, so endpoints that want only those cost sync
nothing.
"""

from __future__ import annotations

from accord.common.webhooks import (
    CHANGES,
    EVENTS,
    PRESENCE,
    Endpoint,
    EndpointDefaults,
    WebhookConfig,
    WebhookRouter,
    WebhookSettings,
    load_config,
    parse_config,
    parse_secret,
)

__all__ = [
    "CHANGES",
    "EVENTS",
    "PRESENCE",
    "Endpoint",
    "EndpointDefaults",
    "WebhookConfig",
    "WebhookRouter",
    "WebhookSettings",
    "load_config",
    "parse_config",
    "parse_secret",
]
