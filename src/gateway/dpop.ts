import {
  createHash,
  createHmac,
  createPublicKey,
  type JsonWebKey,
  type KeyObject,
  randomBytes,
  randomUUID,
  sign,
  timingSafeEqual,
  verify,
} from "node:crypto";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { KPartyError } from "../errors/index.ts";
import type { DpopReplayStore } from "../state/port.ts";
import { atMostEvery } from "../util/at-most-every.ts";
import { resolveClockSkew } from "./verify/window.ts";

/**
 * DPoP (OAuth 2.0 Demonstrating Proof of Possession, RFC 9449): proofs, their verification,
 * the replay cache and server nonces. Written from the RFC on node:crypto.
 */

/** The proof algorithms kparty accepts: ES256K (did:ethr's curve), ES256 and EdDSA (Ed25519). */
export const DPOP_ALGORITHMS = ["ES256K", "ES256", "EdDSA"] as const;
export type DpopAlgorithm = (typeof DPOP_ALGORITHMS)[number];

/** The public JWK members of each algorithm's key (RFC 7638 thumbprints hash exactly these). */
const KEY_SHAPES: Record<DpopAlgorithm, { kty: string; crv: string; members: string[] }> = {
  ES256K: { kty: "EC", crv: "secp256k1", members: ["crv", "kty", "x", "y"] },
  ES256: { kty: "EC", crv: "P-256", members: ["crv", "kty", "x", "y"] },
  EdDSA: { kty: "OKP", crv: "Ed25519", members: ["crv", "kty", "x"] },
};

/** JWK members that only a private key has: a proof carrying one is refused. */
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/** The JWS algorithm of a proof key (`TypeError` for a key of another kind). */
export function dpopAlgorithmOf(key: KeyObject): DpopAlgorithm {
  if (key.asymmetricKeyType === "ed25519") return "EdDSA";
  if (key.asymmetricKeyType === "ec") {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === "prime256v1") return "ES256";
    if (curve === "secp256k1") return "ES256K";
  }
  throw new TypeError("a DPoP key must be Ed25519, P-256 or secp256k1");
}

/**
 * The JWK SHA-256 thumbprint of a public key (RFC 7638): base64url of the SHA-256 of the
 * required members in lexicographic order, without whitespace — what `cnf.jkt` holds.
 * @example
 * ```ts
 * const jkt = jwkThumbprint({ kty: "OKP", crv: "Ed25519", x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" });
 * ```
 */
export function jwkThumbprint(jwk: JsonWebKey): string {
  const members =
    jwk.kty === "OKP" ? ["crv", "kty", "x"] : jwk.kty === "EC" ? ["crv", "kty", "x", "y"] : null;
  if (!members) throw new TypeError(`no thumbprint for a JWK of kty ${String(jwk.kty)}`);
  const canonical = `{${members
    .map((m) => {
      const value = jwk[m as keyof JsonWebKey];
      if (typeof value !== "string") throw new TypeError(`the JWK lacks ${m}`);
      return `${JSON.stringify(m)}:${JSON.stringify(value)}`;
    })
    .join(",")}}`;
  return createHash("sha256").update(canonical).digest("base64url");
}

/**
 * `ath`: base64url of the SHA-256 of the access token's ASCII bytes (RFC 9449 §4.2).
 * @example
 * ```ts
 * const claims = { ath: accessTokenHash(accessToken) }; // in a proof sent with that token
 * ```
 */
export function accessTokenHash(token: string): string {
  return createHash("sha256").update(token, "ascii").digest("base64url");
}

/**
 * The `htu` a request is judged against (RFC 9449 §4.2–4.3): scheme, host (lower case, default
 * port removed) and path of `url`, without query and fragment. `TypeError` for a non-http(s) URL.
 */
export function normalizeHtu(url: string | URL): string {
  const u = new URL(url);
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new TypeError("htu must be an http(s) URL");
  return `${u.protocol}//${u.host}${u.pathname}`;
}

/**
 * The public JWK of a proof key (the proof's `jwk` header): only the members RFC 7638 hashes.
 * @example
 * ```ts
 * const jkt = jwkThumbprint(dpopPublicJwk(generateKeyPairSync("ed25519").privateKey));
 * ```
 */
export function dpopPublicJwk(key: KeyObject): JsonWebKey {
  const alg = dpopAlgorithmOf(key);
  const full = createPublicKey(key).export({ format: "jwk" });
  const shape = KEY_SHAPES[alg];
  return Object.fromEntries(shape.members.map((m) => [m, full[m as keyof JsonWebKey]])) as JsonWebKey;
}

export interface DpopProofInput {
  /** The proof key's private half: Ed25519 (EdDSA), P-256 (ES256) or secp256k1 (ES256K). */
  key: KeyObject;
  /** The HTTP method of the request. */
  htm: string;
  /** The request's URL (query and fragment are dropped). */
  htu: string;
  /** The access token the request carries (sets `ath`); absent at the token endpoint. */
  accessToken?: string;
  /** The server's latest `DPoP-Nonce`, when it asks for one. */
  nonce?: string;
  /** Clock in milliseconds (default `Date.now`). */
  now?: () => number;
}

/**
 * Creates a DPoP proof (RFC 9449 §4): a JWT with `typ: dpop+jwt`, the key's public JWK in
 * the header, and `jti`, `htm`, `htu`, `iat` (and `ath`, `nonce`) in the payload. Each proof
 * is for one request: the gateway refuses a `jti` it has seen.
 * @example
 * ```ts
 * const key = generateKeyPairSync("ed25519").privateKey;
 * const proof = createDpopProof({ key, htm: "GET", htu: "https://gw.example/models", accessToken });
 * await fetch("https://gw.example/models", { headers: { authorization: `DPoP ${accessToken}`, dpop: proof } });
 * ```
 */
export function createDpopProof(input: DpopProofInput): string {
  const alg = dpopAlgorithmOf(input.key);
  const header = { typ: "dpop+jwt", alg, jwk: dpopPublicJwk(input.key) };
  const payload = {
    jti: randomUUID(),
    htm: input.htm.toUpperCase(),
    htu: normalizeHtu(input.htu),
    iat: Math.floor((input.now ?? Date.now)() / 1000),
    ...(input.accessToken !== undefined ? { ath: accessTokenHash(input.accessToken) } : {}),
    ...(input.nonce !== undefined ? { nonce: input.nonce } : {}),
  };
  const signingInput = `${b64(JSON.stringify(header))}.${b64(JSON.stringify(payload))}`;
  const signature = sign(
    alg === "EdDSA" ? null : "sha256",
    Buffer.from(signingInput),
    alg === "EdDSA" ? input.key : { key: input.key, dsaEncoding: "ieee-p1363" },
  );
  return `${signingInput}.${signature.toString("base64url")}`;
}

const b64 = (text: string) => Buffer.from(text).toString("base64url");

export type { DpopReplayStore } from "../state/port.ts";

/**
 * The replay cache in the gateway's embedded database (table `dpop_jti`, see
 * `openGatewayDatabase`): one upsert that inserts the key or takes over an entry past its
 * expiry, so two concurrent uses of a `jti` cannot both be new; entries past their expiry are
 * pruned at most once a second. Like challenge writes, the
 * insert skips its own fsync: the audit record of the request it admits is synced after it.
 * @example
 * ```ts
 * const replay = new SqliteDpopReplayStore(openGatewayDatabase("gw.sqlite"), { now: Date.now });
 * ```
 */
export class SqliteDpopReplayStore implements DpopReplayStore {
  readonly #db: DatabaseSync;
  readonly #now: () => number;
  readonly #insert: StatementSync;
  readonly #prune: StatementSync;
  readonly #pruneDue = atMostEvery(1_000);

  constructor(db: DatabaseSync, options: { now: () => number }) {
    this.#db = db;
    this.#now = options.now;
    this.#insert = db.prepare(
      "INSERT INTO dpop_jti (key, expires_at) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE dpop_jti.expires_at < ?",
    );
    this.#prune = db.prepare("DELETE FROM dpop_jti WHERE expires_at < ?");
  }

  use(key: string, expiresAtMs: number): boolean {
    const now = this.#now();
    this.#db.exec("PRAGMA synchronous = NORMAL");
    try {
      if (this.#pruneDue(now)) {
        this.#prune.run(now);
      }
      return this.#insert.run(key, expiresAtMs, now).changes === 1;
    } finally {
      this.#db.exec("PRAGMA synchronous = FULL");
    }
  }
}

/**
 * A replay cache in memory, pruned by time: for one process (e.g. `createKPartyProtection`).
 * @example
 * ```ts
 * const dpop = createDpopVerifier({ now: Date.now, replay: new MemoryDpopReplayStore({ now: Date.now }) });
 * ```
 */
export class MemoryDpopReplayStore implements DpopReplayStore {
  readonly #seen = new Map<string, number>();
  readonly #now: () => number;
  readonly #pruneDue = atMostEvery(1_000);

  constructor(options: { now: () => number }) {
    this.#now = options.now;
  }

  use(key: string, expiresAtMs: number): boolean {
    const now = this.#now();
    if (this.#pruneDue(now)) {
      for (const [k, at] of this.#seen) if (at < now) this.#seen.delete(k);
    }
    const at = this.#seen.get(key);
    if (at !== undefined && at >= now) return false;
    this.#seen.set(key, expiresAtMs);
    return true;
  }
}

/**
 * Server nonces (RFC 9449 §8): time-bounded and rotated. A nonce names its period
 * (`lifetimeSeconds` long) and carries an HMAC of it under `secret`; a nonce of the current or
 * the previous period is accepted, so each lives between one and two periods. Replicas that
 * share `secret` accept each other's nonces; without one, a random secret per process.
 * @example
 * ```ts
 * const nonces = createDpopNonces({ now: Date.now, lifetimeSeconds: 60, secret: sharedSecret });
 * reply.header("dpop-nonce", nonces.current());
 * ```
 */
export function createDpopNonces(options: { now: () => number; lifetimeSeconds?: number; secret?: Buffer }) {
  const lifetimeMs = (options.lifetimeSeconds ?? 60) * 1000;
  if (!Number.isFinite(lifetimeMs) || lifetimeMs <= 0)
    throw new TypeError("dpop nonce lifetime must be positive");
  const secret = options.secret ?? randomBytes(32);
  if (secret.length < 16) throw new TypeError("the DPoP nonce secret must have at least 16 bytes");
  const mac = (period: number) =>
    createHmac("sha256", secret).update(`dpop-nonce:${period}`).digest().subarray(0, 16);
  const nonceOf = (period: number) => `${period.toString(36)}.${mac(period).toString("base64url")}`;
  const period = () => Math.floor(options.now() / lifetimeMs);
  return {
    /** The nonce to send now (`DPoP-Nonce`). */
    current: () => nonceOf(period()),
    /** Whether `nonce` is one of the current or the previous period. */
    valid(nonce: unknown): boolean {
      if (typeof nonce !== "string" || nonce.length > 64) return false;
      const [p, tag] = nonce.split(".");
      const n = p !== undefined && /^[0-9a-z]{1,12}$/.test(p) ? Number.parseInt(p, 36) : Number.NaN;
      const now = period();
      if (!(n === now || n === now - 1) || tag === undefined) return false;
      const given = Buffer.from(tag, "base64url");
      const expected = mac(n);
      return given.length === expected.length && timingSafeEqual(given, expected);
    },
  };
}

export type DpopNonces = ReturnType<typeof createDpopNonces>;

export interface DpopVerifierOptions {
  now: () => number;
  /** The one clock skew (default `DEFAULT_CLOCK_SKEW_SECONDS`): a proof's `iat` must be within it of now. */
  clockSkewSeconds?: number;
  /** Where accepted `jti`s are kept. */
  replay: DpopReplayStore;
  /** When set, every proof must carry a valid server nonce (`use_dpop_nonce` otherwise). */
  nonces?: DpopNonces;
}

export interface DpopRequest {
  /** The request's HTTP method. */
  method: string;
  /** The URL the proof's `htu` must name (normalized by {@link normalizeHtu}). */
  url: string;
  /** The access token the request carries: `ath` must be its hash. Absent at the token endpoint. */
  accessToken?: string;
  /** Where the request was refused, for the status of the refusal: `token` (400) or `resource` (401). */
  endpoint: "token" | "resource";
}

/** What a valid proof established: its key's thumbprint (to equal `cnf.jkt`). */
export interface VerifiedDpopProof {
  jkt: string;
  jti: string;
}

const MAX_PROOF_LENGTH = 4096;

/**
 * Verifies DPoP proofs (RFC 9449 §4.3): one JWS, `typ: dpop+jwt`, `alg` among
 * {@link DPOP_ALGORITHMS}, a public `jwk` header that verifies the signature, `htm` and `htu` of
 * this request, `iat` within the clock skew of now, `ath` of the access token on resource
 * requests, the server nonce when nonces are required, and a `jti` not seen before (kept in the
 * replay store until the proof could no longer be accepted). Refusals are `invalid_dpop_proof`
 * or `use_dpop_nonce` (with `details.nonce`), with `details.endpoint` for their status.
 * @example
 * ```ts
 * const dpop = createDpopVerifier({ now: Date.now, replay: new MemoryDpopReplayStore({ now: Date.now }) });
 * const { jkt } = await dpop.verify(request.headers.dpop, { method: "GET", url, accessToken, endpoint: "resource" });
 * ```
 */
export function createDpopVerifier(options: DpopVerifierOptions) {
  const skew = resolveClockSkew(options.clockSkewSeconds);
  const { replay, nonces, now } = options;
  if (!replay || typeof now !== "function") throw new TypeError("now and replay are required");
  // imported public keys and their thumbprints by their JWK: a client signs all its proofs with one key
  const keys = new Map<string, { key: KeyObject; jkt: string }>();

  return {
    /** Whether nonces are required (then `nonce()` gives the current one). */
    requiresNonce: nonces !== undefined,
    /** The current server nonce, if nonces are required. */
    nonce: () => nonces?.current(),

    async verify(proof: unknown, request: DpopRequest): Promise<VerifiedDpopProof> {
      const invalid = refusal(request.endpoint);
      const parsed = parseProof(proof, invalid);
      const known = importedKey(keys, parsed.jwk, parsed.alg, invalid);
      const { jti, iat } = checkClaims(parsed.payload, request, Math.floor(now() / 1000), skew, invalid);
      const signature = Buffer.from(parsed.s, "base64url");
      // the claims first (cheap), then the signature, on libuv's thread pool, off the event loop (like the presentations' ES256K checks)
      const ok =
        (parsed.alg === "EdDSA" || signature.length === 64) &&
        (await verifyOffLoop(parsed.alg, Buffer.from(`${parsed.h}.${parsed.p}`), known.key, signature));
      if (!ok) invalid("the DPoP proof's signature does not verify with its jwk");
      const nonce = parsed.payload.nonce;
      if (nonces && !nonces.valid(nonce)) {
        throw new KPartyError(
          "use_dpop_nonce",
          nonce === undefined ? "the gateway requires a DPoP nonce" : "the DPoP nonce is stale or invalid",
          { details: { endpoint: request.endpoint, nonce: nonces.current() } },
        );
      }
      const { jkt } = known;
      // kept while the proof could be accepted: until iat + skew (and at least a second)
      const fresh = await replay.use(`${jkt}:${jti}`, (iat + skew + 1) * 1000);
      if (!fresh) invalid("the DPoP proof has been used before (jti replayed)");
      return { jkt, jti };
    },
  };
}

type Invalid = (message: string) => never;

/** Throws `invalid_dpop_proof` with `message`, naming the endpoint (for its status). */
const refusal =
  (endpoint: DpopRequest["endpoint"]): Invalid =>
  (message) => {
    throw new KPartyError("invalid_dpop_proof", message, { details: { endpoint } });
  };

/** The proof's parts, its header checked: one compact JWS, `typ`, an accepted `alg`, no `crit`, a public `jwk`. */
function parseProof(proof: unknown, invalid: Invalid) {
  if (proof === undefined) invalid("a DPoP proof is required (DPoP header)");
  if (typeof proof !== "string" || proof.length > MAX_PROOF_LENGTH) invalid("there must be one DPoP proof");
  const parts = (proof as string).split(".");
  if (parts.length !== 3 || !parts.every((p) => /^[A-Za-z0-9_-]+$/.test(p)))
    invalid("the DPoP proof is not a compact JWS");
  const [h, p, s] = parts as [string, string, string];
  const header = parseSegment(h) ?? invalid("the DPoP proof's header is not JSON");
  const payload = parseSegment(p) ?? invalid("the DPoP proof's payload is not JSON");
  if (header.typ !== "dpop+jwt") invalid('the DPoP proof\'s typ must be "dpop+jwt"');
  const alg = header.alg;
  if (typeof alg !== "string" || !(DPOP_ALGORITHMS as readonly string[]).includes(alg))
    invalid(`the DPoP proof's alg must be one of ${DPOP_ALGORITHMS.join(", ")}`);
  if (header.crit !== undefined) invalid("the DPoP proof has critical header parameters");
  const jwk = header.jwk;
  if (typeof jwk !== "object" || jwk === null || Array.isArray(jwk))
    invalid("the DPoP proof has no jwk header");
  return { h, p, s, payload, alg: alg as DpopAlgorithm, jwk: jwk as Record<string, unknown> };
}

/** The proof's public key and its thumbprint, imported once per key (a client signs all its proofs with one). */
function importedKey(
  keys: Map<string, { key: KeyObject; jkt: string }>,
  j: Record<string, unknown>,
  alg: DpopAlgorithm,
  invalid: Invalid,
): { key: KeyObject; jkt: string } {
  const shape = KEY_SHAPES[alg];
  if (PRIVATE_MEMBERS.some((m) => m in j)) invalid("the DPoP proof's jwk holds a private key");
  if (j.kty !== shape.kty || j.crv !== shape.crv || !shape.members.every((m) => typeof j[m] === "string"))
    invalid(`the DPoP proof's jwk is not a ${shape.crv} key for ${String(alg)}`);
  const cacheKey = shape.members.map((m) => j[m]).join(".");
  let known = keys.get(cacheKey);
  if (!known) {
    let key: KeyObject | undefined;
    try {
      key = createPublicKey({ format: "jwk", key: j as JsonWebKey });
    } catch {
      invalid("the DPoP proof's jwk is not a valid public key");
    }
    known = { key: key as KeyObject, jkt: jwkThumbprint(j as JsonWebKey) };
    if (keys.size >= 10_000) keys.clear();
    keys.set(cacheKey, known);
  }
  return known;
}

/** The proof's claims against this request at time `t` (seconds): `jti`, `htm`, `htu`, `iat`, `ath`. */
function checkClaims(
  payload: Record<string, unknown>,
  request: DpopRequest,
  t: number,
  skew: number,
  invalid: Invalid,
): { jti: string; iat: number } {
  const { jti, htm, htu, iat, ath } = payload;
  if (typeof jti !== "string" || jti.length < 8 || jti.length > 256)
    invalid("the DPoP proof needs a jti (8 to 256 characters)");
  if (htm !== request.method.toUpperCase())
    invalid(`the DPoP proof is for another method (htm must be ${request.method.toUpperCase()})`);
  let proofHtu: string | null = null;
  try {
    proofHtu = typeof htu === "string" ? normalizeHtu(htu) : null;
  } catch {
    proofHtu = null;
  }
  const expectedHtu = normalizeHtu(request.url);
  if (proofHtu !== expectedHtu) invalid(`the DPoP proof is for another URL (htu must be ${expectedHtu})`);
  if (!Number.isSafeInteger(iat) || Math.abs(t - (iat as number)) > skew)
    invalid(`the DPoP proof's iat must be within ${skew} s of the gateway's clock`);
  if (request.accessToken !== undefined && ath !== accessTokenHash(request.accessToken))
    invalid("the DPoP proof's ath is not the access token's hash");
  return { jti: jti as string, iat: iat as number };
}

export type DpopVerifier = ReturnType<typeof createDpopVerifier>;

/** A JWS signature check on libuv's thread pool (node:crypto's callback form). */
function verifyOffLoop(
  alg: DpopAlgorithm,
  data: Buffer,
  key: KeyObject,
  signature: Buffer,
): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (error: Error | null, ok: boolean) => resolve(!error && ok);
    if (alg === "EdDSA") verify(null, data, key, signature, done);
    else verify("sha256", data, { key, dsaEncoding: "ieee-p1363" }, signature, done);
  });
}

function parseSegment(segment: string): Record<string, unknown> | null {
  try {
    const value = JSON.parse(Buffer.from(segment, "base64url").toString("utf8")) as unknown;
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}
