import { createHash, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import type { StoredTokenKey, TokenKeyStore, TokenPublicKey } from "./port.ts";

/** A fresh Ed25519 key for access tokens. */
export function newTokenKey(now: number): StoredTokenKey {
  const { privateKey } = generateKeyPairSync("ed25519");
  return { kid: tokenKeyId(privateKey), privateKey, createdAt: now };
}

/** The key's `kid`: its RFC 7638 JWK thumbprint (SHA-256, base64url), the same on every replica. */
export function tokenKeyId(key: KeyObject): string {
  const { x } = createPublicKey(key).export({ format: "jwk" });
  return createHash("sha256")
    .update(JSON.stringify({ crv: "Ed25519", kty: "OKP", x }))
    .digest("base64url");
}

/** The public JWK of a private key, with its `kid`. */
export function publicJwkOf(key: StoredTokenKey): TokenPublicKey {
  const { x } = createPublicKey(key.privateKey).export({ format: "jwk" });
  return { kty: "OKP", crv: "Ed25519", x: x as string, kid: key.kid };
}

/** Keys that live only as long as the process (no database, or a key given by the caller). */
export function memoryTokenKeys(initial?: KeyObject, now: () => number = Date.now): TokenKeyStore {
  const keys: StoredTokenKey[] = [];
  if (initial) {
    if (initial.asymmetricKeyType !== "ed25519") throw new TypeError("privateKey must be an Ed25519 key");
    keys.push({ kid: tokenKeyId(initial), privateKey: initial, createdAt: now() });
  }
  return {
    async load() {
      if (keys.length === 0) keys.push(newTokenKey(now()));
      return [...keys];
    },
    async add() {
      const key = newTokenKey(Math.max(now(), (keys.at(-1)?.createdAt ?? 0) + 1));
      keys.push(key);
      return key;
    },
  };
}

/** A key with what verification needs, derived once. */
export interface RingKey extends StoredTokenKey {
  publicKey: KeyObject;
  jwk: TokenPublicKey;
}

/**
 * The keys a gateway process signs and verifies access tokens with, held in memory and read
 * synchronously on the hot path. The newest key signs. The ring reloads from the store when it
 * is older than `refreshMs` before a token is signed (so a rotation made anywhere reaches every
 * replica's new tokens within that time), and at once when a token names a `kid` it does not
 * know (a key another replica has just started using) — at most `missesPerSecond` times a
 * second, so made-up `kid`s cannot turn into a query each.
 */
export class TokenKeyRing {
  readonly #store: TokenKeyStore;
  readonly #now: () => number;
  readonly #refreshMs: number;
  readonly #missesPerSecond: number;
  #keys = new Map<string, RingKey>();
  #signing: RingKey | null = null;
  #loadedAt = Number.NEGATIVE_INFINITY;
  #loading: Promise<void> | null = null;
  #missWindow = { second: Number.NEGATIVE_INFINITY, count: 0 };

  constructor(
    store: TokenKeyStore,
    options: { now: () => number; refreshMs?: number; missesPerSecond?: number },
  ) {
    this.#store = store;
    this.#now = options.now;
    this.#refreshMs = options.refreshMs ?? 10_000;
    this.#missesPerSecond = options.missesPerSecond ?? 10;
    if (!(this.#refreshMs >= 0)) throw new TypeError("refreshMs must be a non-negative number");
  }

  /** A ring over fixed keys, loaded at once (no store to reload from: `reload` keeps them). */
  static of(keys: StoredTokenKey[], now: () => number): TokenKeyRing {
    const ring = new TokenKeyRing(
      { load: async () => keys, add: () => Promise.reject(new Error("fixed keys")) },
      {
        now,
        refreshMs: Number.POSITIVE_INFINITY,
        missesPerSecond: 0,
      },
    );
    ring.#install(keys);
    return ring;
  }

  #install(stored: StoredTokenKey[]): void {
    const keys = new Map<string, RingKey>();
    for (const key of stored) {
      const known = this.#keys.get(key.kid);
      keys.set(
        key.kid,
        known ?? { ...key, publicKey: createPublicKey(key.privateKey), jwk: publicJwkOf(key) },
      );
    }
    const newest = [...keys.values()]
      .sort((a, b) => a.createdAt - b.createdAt || (a.kid < b.kid ? -1 : 1))
      .at(-1);
    if (!newest) throw new Error("the token key store returned no key");
    this.#keys = keys;
    this.#signing = newest;
    this.#loadedAt = this.#now();
  }

  /** Reads every key from the store (once at a time). */
  reload(): Promise<void> {
    this.#loading ??= (async () => {
      try {
        this.#install(await this.#store.load());
      } finally {
        this.#loading = null;
      }
    })();
    return this.#loading;
  }

  /** Reloads if the ring is older than `refreshMs` (a promise then, nothing otherwise). */
  fresh(): Promise<void> | undefined {
    if (this.#signing && this.#now() - this.#loadedAt < this.#refreshMs) return undefined;
    return this.reload();
  }

  /** Reloads for an unknown `kid`, within the budget of misses a second; whether it is known now. */
  async learn(kid: string): Promise<boolean> {
    if (this.#keys.has(kid)) return true;
    const second = Math.floor(this.#now() / 1000);
    if (second !== this.#missWindow.second) this.#missWindow = { second, count: 0 };
    if (this.#missWindow.count >= this.#missesPerSecond) return false;
    this.#missWindow.count += 1;
    await this.reload();
    return this.#keys.has(kid);
  }

  /** The key new tokens are signed with (load the ring first). */
  get signing(): RingKey {
    if (!this.#signing) throw new Error("the token key ring is not loaded");
    return this.#signing;
  }

  /** The key with this `kid`, if known. */
  get(kid: string): RingKey | undefined {
    return this.#keys.get(kid);
  }

  /** Every known public key, oldest first (the JWKS). */
  get jwks(): TokenPublicKey[] {
    return [...this.#keys.values()].sort((a, b) => a.createdAt - b.createdAt).map((k) => k.jwk);
  }
}
