// Type declarations for accord.js, the SDK's entry point (docs/sdk-js.md).
// The SDK is plain JavaScript; these are checked against clients/js/test/types/usage.ts
// with `tsc --noEmit` (tests/sdk/js/test_types.py).

export { ALPHABET, MAX_KEY_LENGTH, PositionSource, midpoint } from "./sequence.js";

export const VERSION: string;

/** A JSON value as the protocol carries it. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
/** A record's fields. Encrypted fields that cannot be read show an `Undecryptable`. */
export type Fields = { [field: string]: unknown };
/** A list field's element as reads show it. */
export interface ListItem<T = unknown> {
  id: string;
  value: T;
}
/** Values an add-wins set holds (compared exactly by every client). */
export type SetElement = string | number | boolean | null;

export type Listener<Args extends unknown[]> = (...args: Args) => void;

/** `on(event, listener)` returns the function that removes the listener. */
export class Emitter<Events extends { [event: string]: unknown[] }> {
  on<E extends keyof Events & string>(event: E, listener: Listener<Events[E]>): () => void;
  emit<E extends keyof Events & string>(event: E, ...args: Events[E]): void;
}

export type State = "connecting" | "synced" | "pending" | "offline";

export interface Status {
  state: State;
  pending: number;
  /** "synced", "pending 2", "offline, pending 1", … */
  text: string;
}

export interface ClientStatus extends Status {
  /** Set once a fixed token was refused: retrying would not help. */
  error: ErrorEvent | null;
}

/** A protocol error (docs/protocol.md), or a local one (UNDECRYPTABLE, ENCRYPTION). */
export interface ErrorEvent {
  code: string;
  message?: string;
  room?: string;
  [detail: string]: unknown;
}

export interface Welcome {
  session_id: string;
  user_id: string;
  [field: string]: unknown;
}

export type TokenSource = string | (() => string | Promise<string>);

/** Where a client keeps its replicas and offline queue (store.js). */
export interface Store {
  claimClientId(): Promise<string>;
  loadRoom(clientId: string, room: string): Promise<SavedRoom>;
  saveRoom(clientId: string, room: string, state: { seq: number; records: unknown[] }): void;
  putPending(clientId: string, room: string, change: PendingChange): void;
  deletePending(clientId: string, room: string, clientSeqs: number[]): void;
  close(): void;
}

export interface SavedRoom {
  seq: number;
  records: unknown[];
  pending: PendingChange[];
  lastClientSeq: number;
}

export interface PendingChange {
  client_seq: number;
  collection: string;
  key: string;
  ts: number;
  op: Op;
}

/** An op as the protocol carries it (`{kind: …}`, docs/protocol.md). */
export type Op =
  | { kind: "set"; fields: Fields }
  | { kind: "delete" }
  | { kind: "incr"; field: string; by: number }
  | { kind: "add"; field: string; values: SetElement[] }
  | { kind: "remove"; field: string; values: SetElement[]; seen?: number }
  | { kind: "insert"; field: string; after: string | null; values: unknown[] }
  | { kind: "remove_items"; field: string; ids: string[] };

export interface ConnectOptions {
  /** The edge's WebSocket endpoint; default: /ws on the page's host. */
  url?: string;
  /** A JWT, or a (possibly async) function called on every (re)connect. */
  token?: TokenSource;
  /** Shown to peers as `peer.user`. */
  user?: { [field: string]: Json };
  /** "indexeddb" (default), "memory", or a store object. */
  storage?: "indexeddb" | "memory" | Store;
  /** The IndexedDB database name (default "accord"). */
  dbName?: string;
  /** Reconnect delays in ms (exponential, with jitter). */
  backoff?: { initial?: number; max?: number };
  /** The replica id (`client_id` in the protocol); default: claimed from storage. */
  clientId?: string;
  /** A WebSocket constructor (default: globalThis.WebSocket). */
  WebSocket?: unknown;
}

/** End-to-end encrypted fields of a room (docs/encryption.md). */
export interface EncryptionOptions {
  keys: { [keyId: string]: Uint8Array | CryptoKey } | Map<string, Uint8Array | CryptoKey>;
  current: string;
  fields: { [collection: string]: string[] };
}

export interface JoinOptions {
  /** Join the room's presence with this state. */
  presence?: { [field: string]: Json };
  /** Also get `user` events (user_online / user_offline). */
  users?: boolean;
  encryption?: EncryptionOptions;
}

export type ClientEvents = {
  status: [ClientStatus];
  error: [ErrorEvent];
  connected: [Welcome];
  disconnected: [{ code: number; reason: string }];
};

/** One connection to an edge, shared by any number of rooms. */
export class Client extends Emitter<ClientEvents> {
  readonly url: string;
  readonly clientId: string;
  get sessionId(): string | null;
  get userId(): string | null;
  get status(): ClientStatus;
  /** Join a room: its saved replica and queue load at once; it syncs whenever online. */
  join(name: string, options?: JoinOptions): Promise<Room>;
  /** Close the connection for good (local state stays in storage). */
  close(): void;
}

/** Open local storage, claim a client id and start connecting. */
export function connect(options?: ConnectOptions): Promise<Client>;

export interface Peer {
  session_id: string;
  user_id: string;
  state: { [field: string]: Json };
  user?: { [field: string]: Json };
  [field: string]: unknown;
}

/** One page of a room's presence; `nextCursor` when there is more. */
export interface PresencePage {
  peers: Peer[];
  count: number;
  users: number;
  nextCursor: string | null;
}

export interface PresencePageOptions {
  cursor?: string | null;
  limit?: number;
  countsOnly?: boolean;
}

export interface RecordChange {
  collection: string;
  key: string;
  /** undefined: the record was deleted. */
  value: Fields | undefined;
}

export interface BroadcastEvent {
  from: string;
  data: Json;
  channel: string | null;
  peer: Peer | undefined;
}

export interface UserEvent {
  event: "user_online" | "user_offline";
  peer: Peer;
  reason?: string;
}

export type RoomEvents = {
  change: [RecordChange];
  presence: [Peer[]];
  broadcast: [BroadcastEvent];
  user: [UserEvent];
  status: [Status];
  error: [ErrorEvent];
};

/** A joined room. Reads are synchronous and show local writes at once. */
export class Room extends Emitter<RoomEvents> {
  readonly name: string;
  readonly client: Client;
  /** Sessions present (may exceed the peers listed in big rooms). */
  readonly presenceCount: number;
  /** Distinct users present. */
  readonly presenceUsers: number;

  /** The record's fields, or undefined. */
  get(collection: string, key: string): Fields | undefined;
  /** The visible records of a collection by key, in key order (Python: `room.records`). */
  records(collection: string): { [key: string]: Fields };
  /** @deprecated Use `records(collection)`; `list` returns [{key, value}] in key order. */
  list(collection: string): { key: string; value: Fields }[];

  /** The last server seq applied. */
  get seq(): number;
  /** Changes queued, not yet confirmed by the server. */
  get pendingCount(): number;
  get status(): Status;
  /** Resolves once the room has caught up with the server and has nothing queued. */
  synced(): Promise<void>;

  get encryption(): EncryptionOptions | null;
  /** Replace the keys or the encrypted fields (e.g. to rotate); null: none. */
  setEncryption(options: EncryptionOptions | null): Promise<void>;

  // Writes return the change's client_seq.
  set(collection: string, key: string, fields: Fields): number;
  delete(collection: string, key: string): number;
  incr(collection: string, key: string, field: string, by?: number): number;
  add(collection: string, key: string, field: string, values: SetElement[]): number;
  remove(collection: string, key: string, field: string, values: SetElement[]): number;
  /** Insert after the element `after` (null or absent: at the start); returns the new ids. */
  insert(collection: string, key: string, field: string, values: unknown[], options?: { after?: string | null }): string[];
  /** @deprecated The old argument order: use `insert(collection, key, field, values, {after})`. */
  insert(collection: string, key: string, field: string, after: string | null, values: unknown[]): string[];
  /** Remove list elements by id (removed ids stay valid as `after` anchors). */
  removeItems(collection: string, key: string, field: string, ids: string[]): number;
  /** Queue any op (the hook for op kinds without a helper). */
  write(collection: string, key: string, op: Op): number;

  /** This session's presence state in the room (kept across reconnects). */
  setPresence(state: { [field: string]: Json }): void;
  /** The peers present (this session included once it has joined presence). */
  get peerList(): Peer[];
  /** One page of the room's presence (Python: `room.list_presence`). */
  listPresence(options?: PresencePageOptions): Promise<PresencePage>;
  /** @deprecated The old name of `listPresence`. */
  presencePage(options?: PresencePageOptions): Promise<PresencePage>;
  /** Ephemeral data to every other subscriber; false when offline (nothing is queued). */
  broadcast(data: Json, options?: { channel?: string }): boolean;
  /** Unsubscribe (the saved replica and queue stay in storage). */
  leave(): Promise<void>;
}

// -- the pure replica logic (replica.js) ----------------------------------------

/** JSON text with object keys sorted (the server's canonical_json). */
export function canonicalJson(value: unknown): string;
/** The id of the `index`-th value of the insert with this client_seq by this client. */
export function elementId(clientSeq: number, index: number, clientId: string): string;

/** Where removed list elements were (a hint for placing local inserts). */
export class Tombstones {
  constructor(parent?: Tombstones | null);
  note(field: string, id: string, left: string | null): void;
  lookup(field: string, id: string): string | null | undefined;
}

/** A server patch (docs/merge.md). */
export interface Patch {
  deleted?: boolean;
  unset?: string[];
  set?: Fields;
  incr?: { [field: string]: number };
  remove?: { [field: string]: SetElement[] };
  add?: { [field: string]: SetElement[] };
  list?: { [field: string]: ({ delete: string } | { after: string | null; insert: ListItem[] })[] };
}

/** Apply a server patch to one record (undefined: absent); returns a new object. */
export function applyPatch(record: Fields | undefined, patch: Patch, tombstones?: Tombstones): Fields | undefined;
/** Apply a local op optimistically. */
export function applyOp(record: Fields | undefined, op: Op, options?: { ids?: string[]; tombstones?: Tombstones }): Fields | undefined;

/** One room's replica: confirmed state with the pending changes on top. */
export class Replica {
  constructor(options?: { onChange?: (collection: string, key: string, value: Fields | undefined) => void; clientId?: string | null });
  seq: number;
  pending: PendingChange[];
  get(collection: string, key: string): Fields | undefined;
  entries(collection: string): [string, Fields][];
  collections(): string[];
}

// -- storage (store.js) ---------------------------------------------------------

// Each store class has the methods of `Store` (declaration merging: the interface of the
// same name adds them to the class).

/** Keeps nothing beyond the page: for tests, or where IndexedDB is unavailable. */
export interface MemoryStore extends Store {}
export class MemoryStore implements Store {
  constructor();
}

export interface IndexedDBStore extends Store {}
export class IndexedDBStore implements Store {
  static open(name?: string): Promise<IndexedDBStore>;
}

// -- encryption (encryption.js, fieldcipher.js) ---------------------------------

/** Bad encryption options, or WebCrypto missing (pages must be a secure context). */
export class EncryptionError extends Error {}
/** An op the server would have to read the value for (incr, sets, lists) on an encrypted field. */
export class EncryptedFieldError extends TypeError {}

export type UndecryptableReason = "unknown_key" | "auth_failed" | "malformed" | "not_encrypted" | "not_ready";

/** What a read shows instead of an encrypted field's value that cannot be trusted. */
export class Undecryptable extends Error {
  constructor(
    reason: UndecryptableReason,
    message: string,
    where: { room: string; collection: string; key: string; field: string },
    keyId?: string | null,
  );
  readonly reason: UndecryptableReason;
  readonly room: string;
  readonly collection: string;
  readonly key: string;
  readonly field: string;
  readonly keyId: string | null;
}

/** A fresh random 256-bit key (raw bytes: keep them, give them to `keys`). */
export function generateKey(): Uint8Array;

/** A room's field encryption (what `join({encryption})` makes). */
export class FieldCipher {
  static create(room: string, options: EncryptionOptions, report?: (error: Undecryptable) => void): Promise<FieldCipher>;
  readonly room: string;
  readonly options: EncryptionOptions;
  encrypts(collection: string, field: string): boolean;
}
