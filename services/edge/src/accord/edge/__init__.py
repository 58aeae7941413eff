"""Accord edge: the WebSocket gateway clients connect to."""
