"""The server API: ``/api/v1`` on the edge, for application backends (docs/server-api.md)."""
