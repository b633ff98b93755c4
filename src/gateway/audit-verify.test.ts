import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, expect, it } from "vitest";
import { createEmbeddedState } from "../state/embedded/index.ts";
import { AuditLog, chainedRecords, GENESIS_HEAD } from "./audit.ts";
import { verifyAuditLog } from "./audit-verify.ts";
import { openGatewayDatabase } from "./state.ts";

const KDF = { N: 2 ** 15, r: 8, p: 1 };
const SECRET = "audit verify unit test passphrase";
const entry = (n: number) => ({ client: `192.0.2.${n}`, route: "/auth/token", outcome: "denied" as const });

describe("verifyAuditLog on the embedded state (no chain: anchors not read)", () => {
  it("records from before signing are reported as unsigned, not as problems; a stripped signature after them is", async () => {
    const db = openGatewayDatabase(":memory:");
    const state = createEmbeddedState(db);
    const before = new AuditLog(db, { now: () => 1_000 });
    await before.append(entry(1));
    await before.append(entry(2));
    await before.close();
    const keys = await state.auditKeys({ secret: SECRET, kdf: KDF }).load();
    const after = state.audit({ now: () => 2_000, signer: { kid: keys.kid, key: keys.signingKey } });
    for (const n of [3, 4, 5]) await after.append(entry(n));
    await after.close();
    const reader = state.auditReader();
    const key = (await reader.publicKeys())[0] ?? null;
    expect(key?.kid).toBe(keys.kid);
    expect(await verifyAuditLog({ reader, key, anchors: null, pageSize: 2 })).toEqual({
      valid: true,
      records: 5,
      head: {
        seq: 5,
        hash: (db.prepare("SELECT hash FROM audit WHERE seq = 5").get() as { hash: string }).hash,
      },
      key,
      unsigned: { fromSeq: 1, toSeq: 2 },
      anchorsChecked: false,
      anchoredThrough: { seq: 0 },
      unanchored: { fromSeq: 1, toSeq: 5 },
      problems: [],
    });
    db.prepare("UPDATE audit SET sig = NULL, kid = NULL WHERE seq >= 4").run();
    const stripped = await verifyAuditLog({ reader, key, anchors: null });
    expect([stripped.valid, stripped.problems]).toEqual([false, [{ kind: "unsigned", seq: 4, toSeq: 5 }]]);
    db.prepare("UPDATE audit SET kid = 'another-key', sig = 'AAAA' WHERE seq = 4").run();
    expect((await verifyAuditLog({ reader, key, anchors: null })).problems).toEqual([
      { kind: "unknown_key", seq: 4 },
      { kind: "unsigned", seq: 5 },
    ]);
    db.close();
  });

  it("the audit keys: stored once, encrypted; another passphrase is wrong_passphrase", async () => {
    const db = openGatewayDatabase(":memory:");
    const state = createEmbeddedState(db);
    const keys = await state.auditKeys({ secret: SECRET, kdf: KDF }).load();
    const again = await createEmbeddedState(db).auditKeys({ secret: SECRET, kdf: KDF }).load();
    expect([again.kid, again.anchorer, again.anchorKey]).toEqual([keys.kid, keys.anchorer, keys.anchorKey]);
    const row = db.prepare("SELECT * FROM audit_keys").get() as Record<string, string>;
    expect(row.sealed).not.toContain(keys.anchorKey.slice(2));
    expect(JSON.parse(row.sealed as string)).toMatchObject({ N: 2 ** 15, r: 8, p: 1 });
    await expect(
      createEmbeddedState(db).auditKeys({ secret: "not the passphrase", kdf: KDF }).load(),
    ).rejects.toMatchObject({ code: "wrong_passphrase" });
    db.close();
  });

  it("a gateway file from before signing (no kid, sig columns) gains them, its records kept and reported unsigned", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kparty-audit-legacy-"));
    const file = join(dir, "gateway.sqlite");
    const old = new DatabaseSync(file);
    old.exec(`CREATE TABLE audit (seq INTEGER PRIMARY KEY, at TEXT NOT NULL, client TEXT NOT NULL, route TEXT NOT NULL,
      holder TEXT, credential_id TEXT, action TEXT, model TEXT, outcome TEXT NOT NULL, code TEXT,
      prev_hash TEXT NOT NULL, hash TEXT NOT NULL)`);
    const [r] = chainedRecords([{ entry: entry(1), at: 1_000 }], GENESIS_HEAD);
    old
      .prepare("INSERT INTO audit VALUES (?, ?, ?, ?, NULL, NULL, NULL, NULL, ?, NULL, ?, ?)")
      .run(
        1,
        r?.at ?? "",
        r?.client ?? "",
        r?.route ?? "",
        r?.outcome ?? "",
        r?.prevHash ?? "",
        r?.hash ?? "",
      );
    old.close();
    const db = openGatewayDatabase(file);
    const columns = (
      db.prepare("SELECT name FROM pragma_table_info('audit')").all() as { name: string }[]
    ).map((c) => c.name);
    expect(columns.slice(-2)).toEqual(["kid", "sig"]);
    const state = createEmbeddedState(db);
    const keys = await state.auditKeys({ secret: SECRET, kdf: KDF }).load();
    const log2 = state.audit({ now: () => 2_000, signer: { kid: keys.kid, key: keys.signingKey } });
    await log2.append(entry(2));
    await log2.close();
    const reader = state.auditReader();
    const report = await verifyAuditLog({
      reader,
      key: (await reader.publicKeys())[0] ?? null,
      anchors: null,
    });
    expect([report.valid, report.records, report.unsigned, report.problems]).toEqual([
      true,
      2,
      { fromSeq: 1, toSeq: 1 },
      [],
    ]);
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
});
