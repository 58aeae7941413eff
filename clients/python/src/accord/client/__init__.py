"""Python SDK for Accord (accord.client): a local replica of shared rooms, synced over WebSocket
(or its HTTP fallback).

async with accord.client.connect(url, token=token, client_id="laptop-1") as client:
    room = await client.join("todo-demo", presence={"status": "online"})
    await room.set("todos", "t-1", title="milk", done=False)
    print(room.records("todos"))
"""

from accord.client.backoff import Backoff
from accord.client.client import Client, TokenProvider, connect
from accord.client.encryption import (
    EncryptedFieldError,
    Encryption,
    EncryptionError,
    Undecryptable,
    generate_key,
)
from accord.client.errors import (
    AccordError,
    BadRequest,
    ClientClosed,
    ClientError,
    ConnectionLost,
    Disconnected,
    Forbidden,
    Internal,
    NotSubscribed,
    OfflineStoreError,
    RateLimited,
    RejectedChange,
    SequenceGap,
    SlowConsumer,
    TokenExpired,
    TooLarge,
    Unauthenticated,
    Unavailable,
    Unsupported,
    error_from_message,
)
from accord.client.patch import LOCAL_OPS, PATCH_HANDLERS, Record, apply_patch
from accord.client.replica import PendingChange, RecordChange, Replica
from accord.client.room import Broadcast, Peer, PresencePage, Room
from accord.client.server import Gone, ServerClient
from accord.client.sse import StreamBuffered
from accord.client.status import State, Status
from accord.client.store import MemoryStore, OfflineStore, SqliteStore
from accord.client.transports import Fallback

__all__ = [
    "LOCAL_OPS",
    "PATCH_HANDLERS",
    "AccordError",
    "Backoff",
    "BadRequest",
    "Broadcast",
    "Client",
    "ClientClosed",
    "ClientError",
    "ConnectionLost",
    "Disconnected",
    "EncryptedFieldError",
    "Encryption",
    "EncryptionError",
    "Fallback",
    "Forbidden",
    "Gone",
    "Internal",
    "MemoryStore",
    "NotSubscribed",
    "OfflineStore",
    "OfflineStoreError",
    "Peer",
    "PendingChange",
    "PresencePage",
    "RateLimited",
    "Record",
    "RecordChange",
    "RejectedChange",
    "Replica",
    "Room",
    "SequenceGap",
    "ServerClient",
    "SlowConsumer",
    "SqliteStore",
    "State",
    "Status",
    "StreamBuffered",
    "TokenExpired",
    "TokenProvider",
    "TooLarge",
    "Unauthenticated",
    "Unavailable",
    "Undecryptable",
    "Unsupported",
    "apply_patch",
    "connect",
    "error_from_message",
    "generate_key",
]
