"""Accord presence: who is online in each room, TTL expiry, ephemeral broadcast."""
