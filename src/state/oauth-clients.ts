import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { KPartyError } from "../errors/index.ts";
import type { Awaitable, OAuthClient, OAuthClientRow, OAuthClientStore } from "./port.ts";

/** The rows a backend keeps for {@link oauthClientStore}. */
export interface OAuthClientRows {
  /** Inserts `row`; false when its name is taken (nothing inserted). */
  insert(row: OAuthClientRow): Awaitable<boolean>;
  all(): Awaitable<OAuthClientRow[]>;
  byId(id: string): Awaitable<OAuthClientRow | undefined>;
  /** Deletes the row with this id or name; the deleted row, if any. */
  delete(idOrName: string): Awaitable<OAuthClientRow | undefined>;
}

const NAME = /^[\w .@-]{1,64}$/;
const ID = /^[0-9a-f]{12}$/;
const SECRET = /^[A-Za-z0-9_-]{43}$/;

const digest = (secret: string) => createHash("sha256").update(secret).digest("hex");
/** A hash no secret has, compared against for an unknown id (the same work as a known one). */
const NO_CLIENT = digest("no such client");

const publicOf = ({ id, name, canRevoke, createdAt }: OAuthClientRow): OAuthClient => ({
  id,
  name,
  canRevoke,
  createdAt,
});

/**
 * The introspection clients over a backend's rows: a `client_id` of 12 hex digits, a secret of
 * 256 random bits (base64url, 43 characters) returned once by `add` and stored only as its
 * SHA-256 (a secret that random needs no slow hash), compared in constant time. Ids and secrets
 * are URL-safe, so they go into HTTP Basic as they are (RFC 6749 §2.3.1 form-encodes them).
 */
export function oauthClientStore(rows: OAuthClientRows, now: () => number = Date.now): OAuthClientStore {
  return {
    async add(name, options = {}) {
      // a name never looks like an id: `remove` takes either
      if (typeof name !== "string" || !NAME.test(name) || ID.test(name)) {
        throw new KPartyError(
          "invalid_argument",
          "a client name is 1-64 letters, digits, spaces or . _ @ - (and not 12 hex digits, the form of an id)",
        );
      }
      const secret = randomBytes(32).toString("base64url");
      const row: OAuthClientRow = {
        id: randomBytes(6).toString("hex"),
        name,
        canRevoke: options.canRevoke === true,
        createdAt: new Date(now()).toISOString(),
        secretHash: digest(secret),
      };
      if (!(await rows.insert(row))) {
        throw new KPartyError("conflict", `a client named ${name} exists already`, {
          details: { hint: "remove it first, or choose another name" },
        });
      }
      return { client: publicOf(row), secret };
    },
    async list() {
      return (await rows.all()).map(publicOf);
    },
    async remove(idOrName) {
      const row = await rows.delete(idOrName);
      if (!row) throw new KPartyError("not_found", `no gateway client ${idOrName}`);
      return publicOf(row);
    },
    async authenticate(id, secret) {
      if (!ID.test(id) || !SECRET.test(secret)) return null;
      const row = await rows.byId(id);
      const ok = timingSafeEqual(
        Buffer.from(digest(secret), "hex"),
        Buffer.from(row?.secretHash ?? NO_CLIENT, "hex"),
      );
      return ok && row ? publicOf(row) : null;
    },
  };
}
