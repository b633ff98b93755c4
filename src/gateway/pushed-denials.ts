import type { CredentialState, RegistryEvent } from "../chain/index.ts";

/** What a pushed denial is checked against: a credential's issuer and its two status indexes. */
export interface DeniableKey {
  issuer: string;
  revocationIndex: number;
  suspensionIndex: number;
}

/** The bits of one word of an issuer's revocation (`r`) or suspension (`s`) list, and the last block that set one. */
interface PendingWord {
  bits: bigint;
  block: number;
}

/** What an event restricts: bits of an issuer's revocation or suspension list, or its membership. */
export type Restriction =
  | { kind: "r" | "s"; issuer: string; word: bigint; bits: bigint }
  | { kind: "m"; issuer: string };

/**
 * The restriction a registry event makes — a revocation, a suspension, status bits set, a
 * member's removal — or null for one that may grant (a reinstatement, bits cleared, an
 * admission, an anchor) or changes no credential state.
 */
export function restrictionOf(e: RegistryEvent): Restriction | null {
  const a = e.args;
  const bit = (index: unknown) => ({
    word: BigInt(index as bigint) >> 8n,
    bits: 1n << (BigInt(index as bigint) & 255n),
  });
  switch (e.name) {
    case "CredentialRevoked":
      return { kind: "r", issuer: String(a.issuer).toLowerCase(), ...bit(a.index) };
    case "CredentialSuspended":
      return { kind: "s", issuer: String(a.issuer).toLowerCase(), ...bit(a.index) };
    case "StatusWordChanged":
      // bits cleared (a batch reinstatement) may grant: those wait for the poll
      if (a.set !== true) return null;
      return {
        kind: a.revocation === true ? "r" : "s",
        issuer: String(a.issuer).toLowerCase(),
        word: BigInt(a.word as bigint),
        bits: BigInt(a.bits as bigint),
      };
    case "MemberRemoved":
      return { kind: "m", issuer: String(a.account).toLowerCase() };
    default:
      return null;
  }
}

/** Whether bit `index` is set in `r` (a restriction of the `kind` list of `issuer`, lower case). */
function sets(r: Restriction, kind: "r" | "s", issuer: string, index: number): boolean {
  if (r.kind !== kind || r.issuer !== issuer || BigInt(index) >> 8n !== r.word) return false;
  return ((r.bits >> (BigInt(index) & 255n)) & 1n) === 1n;
}

/**
 * `state` (of the credential `key`) with `r` applied: what the chain says once `r`'s event is
 * in. The same object when `r` does not touch `key`.
 */
export function restrictState(r: Restriction, key: DeniableKey, state: CredentialState): CredentialState {
  const issuer = key.issuer.toLowerCase();
  if (r.kind === "m")
    return r.issuer === issuer && state.issuerIsMember ? { ...state, issuerIsMember: false } : state;
  if (sets(r, "r", issuer, key.revocationIndex) && !state.revoked) return { ...state, revoked: true };
  if (sets(r, "s", issuer, key.suspensionIndex) && !state.suspended) return { ...state, suspended: true };
  return state;
}

/**
 * Restrictions the node has pushed (`eth_subscribe` logs) that the event watcher's poll has not
 * read and checked yet: a revocation, a suspension (single or batch: bits set) or a member's
 * removal. Applied to every state the status cache answers with until the watcher has delivered
 * the block they came in (`syncedBlock` at or past it); then the poll's own events and reads
 * take over, and a restriction from a block that was abandoned (or never existed) lapses. The
 * pending bits of one status word lapse together, at the last block that set one of them.
 *
 * Only ever denies: it sets `revoked`, `suspended`, or clears `issuerIsMember`, each a state the
 * verdict can only refuse on. Events that may grant (a reinstatement, an admission, bits
 * cleared, an anchor) are not recorded: they count only once the poll has checked them.
 * Bounded: past `maxEntries` pending words and removals, the oldest is dropped (its event still
 * arrives through the poll, as without a push).
 *
 * @example
 * ```ts
 * const denials = new PushedDenials();
 * watcher.onHint?.((e) => denials.record(e, watcher.syncedBlock));
 * const state = denials.apply(key, await read(key), watcher.syncedBlock);
 * ```
 */
export class PushedDenials {
  readonly #maxEntries: number;
  /** `issuer|r|word` or `issuer|s|word` → the pending bits (oldest first). */
  readonly #words = new Map<string, PendingWord>();
  /** Issuer → the block of its pushed removal. */
  readonly #removed = new Map<string, number>();
  /** The `syncedBlock` the maps were last pruned at. */
  #prunedAt = Number.NEGATIVE_INFINITY;

  constructor(maxEntries = 10_000) {
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1)
      throw new TypeError("maxEntries must be an integer of at least 1");
    this.#maxEntries = maxEntries;
  }

  /** Pending words and removals. */
  get size(): number {
    return this.#words.size + this.#removed.size;
  }

  /**
   * Records the restriction of a pushed event from a block the watcher has not delivered yet.
   * Returns the issuer it restricts (lower case), or null when nothing was recorded.
   */
  record(e: RegistryEvent, syncedBlock: number): string | null {
    if (!Number.isSafeInteger(e.blockNumber) || e.blockNumber <= syncedBlock) return null;
    const r = restrictionOf(e);
    if (!r) return null;
    this.#prunedAt = Number.NaN; // the next apply prunes, even at a syncedBlock it pruned at before
    if (r.kind === "m") {
      const had = this.#removed.get(r.issuer) ?? 0;
      this.#removed.delete(r.issuer); // re-inserted last, as a word is
      this.#removed.set(r.issuer, Math.max(e.blockNumber, had));
    } else {
      const k = `${r.issuer}|${r.kind}|${r.word}`;
      const had = this.#words.get(k);
      this.#words.delete(k); // re-inserted last: the maps stay roughly oldest first
      this.#words.set(k, {
        bits: (had?.bits ?? 0n) | r.bits,
        block: Math.max(e.blockNumber, had?.block ?? 0),
      });
    }
    while (this.size > this.#maxEntries) {
      const oldest = this.#words.keys().next();
      if (!oldest.done) this.#words.delete(oldest.value);
      else this.#removed.delete(this.#removed.keys().next().value as string);
    }
    return r.issuer;
  }

  /** `state` with the pending restrictions of `key` applied (the same object when there are none). */
  apply(key: DeniableKey, state: CredentialState, syncedBlock: number): CredentialState {
    if (this.size === 0) return state;
    this.#prune(syncedBlock);
    const issuer = key.issuer.toLowerCase();
    const pending = (kind: "r" | "s", index: number) => {
      const word = this.#words.get(`${issuer}|${kind}|${BigInt(index) >> 8n}`);
      return word !== undefined && ((word.bits >> (BigInt(index) & 255n)) & 1n) === 1n;
    };
    const revoked = pending("r", key.revocationIndex);
    const suspended = pending("s", key.suspensionIndex);
    const removed = this.#removed.has(issuer);
    if (!revoked && !suspended && !removed) return state;
    return {
      ...state,
      revoked: state.revoked || revoked,
      suspended: state.suspended || suspended,
      issuerIsMember: state.issuerIsMember && !removed,
    };
  }

  /** Drops what the watcher has delivered since the last pruning. */
  #prune(syncedBlock: number): void {
    if (syncedBlock === this.#prunedAt) return;
    this.#prunedAt = syncedBlock;
    for (const [k, w] of this.#words) if (w.block <= syncedBlock) this.#words.delete(k);
    for (const [k, block] of this.#removed) if (block <= syncedBlock) this.#removed.delete(k);
  }
}
