// Type declarations for ./sequence.js (import "accord-sync-client/sequence").

/** The characters of position keys, in order ('.' is the smallest). */
export const ALPHABET: string;
/** The protocol's key limit. */
export const MAX_KEY_LENGTH: number;

/** A string m with a < m < b that is not a prefix of b; `a` null or "": the start, `b` null: the end. */
export function midpoint(a: string | null | undefined, b: string | null | undefined): string;

/** A random tag of base-62 digits. */
export function randomTag(length?: number): string;

/** Makes position keys for one writer. */
export class PositionSource {
  constructor(site?: string);
  readonly site: string;
  /** A fresh key strictly between `a` and `b` (null: the start / the end). */
  between(a: string | null, b: string | null): string;
}
