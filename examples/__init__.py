"""Example Accord extensions (``SYNC_EXTENSIONS=examples.moderation:factory`` …); see
docs/extensions.md. Tests load them as a deployment would."""
