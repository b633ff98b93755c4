import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { openPostgresState } from "../../src/state/index.ts";
import { kparty } from "../fixtures/cli.ts";
import { startTestPostgres, type TestPostgres } from "../fixtures/postgres.ts";

/** `kparty gateway keys rotate` and `kparty audit verify|tail` on both backends, through the real binary. */
const postgres = await startTestPostgres();
if ("unavailable" in postgres) console.warn(`PostgreSQL CLI tests skipped: ${postgres.unavailable}`);

const cwd = mkdtempSync(join(tmpdir(), "kparty-state-cli-"));
afterAll(async () => {
  if (!("unavailable" in postgres)) await postgres.stop();
  rmSync(cwd, { recursive: true, force: true });
});

const PASSPHRASE = "state cli test passphrase";

describe("kparty gateway keys rotate, embedded", () => {
  it("adds a key, encrypted, to the data dir's gateway.sqlite and prints the kids, never a private key or the passphrase", async () => {
    const env = { KPARTY_PASSPHRASE: PASSPHRASE };
    const first = await kparty(["--data-dir", "gw", "gateway", "keys", "rotate", "--json"], { cwd, env });
    expect([first.code, first.stderr]).toEqual([0, ""]);
    const out = JSON.parse(first.stdout) as { kid: string; kids: string[]; state: string };
    expect(out.kids).toEqual([out.kid]); // the first key of the data dir
    expect(out.state).toBe(join(cwd, "gw", "gateway.sqlite"));
    const second = await kparty(["--data-dir", "gw", "gateway", "keys", "rotate", "--json"], { cwd, env });
    const rotated = JSON.parse(second.stdout) as { kid: string; kids: string[] };
    expect(rotated.kids).toEqual([out.kid, rotated.kid]);
    for (const text of [first.stdout, first.stderr, second.stdout, second.stderr]) {
      expect(text).not.toContain("PRIVATE KEY");
      expect(text).not.toContain(PASSPHRASE);
    }
    const db = new DatabaseSync(join(cwd, "gw", "gateway.sqlite"));
    const rows = db.prepare("SELECT kid, x, nonce, sealed FROM token_keys ORDER BY created_at").all();
    db.close();
    expect(rows.map((r) => r.kid)).toEqual(rotated.kids);
    expect(rows.every((r) => /^[0-9a-f]{128}$/.test(r.sealed as string))).toBe(true); // 48 + 16 bytes sealed
  });

  it("refuses another passphrase (exit 4) and none (exit 3), adding no key", async () => {
    const wrong = await kparty(["--data-dir", "gw", "gateway", "keys", "rotate"], {
      cwd,
      env: { KPARTY_PASSPHRASE: "not the passphrase of these keys" },
    });
    expect([wrong.code, wrong.stdout, wrong.stderr]).toEqual([
      4,
      "",
      `kparty: wrong_passphrase: the passphrase does not unlock the access-token keys in ${join(cwd, "gw", "gateway.sqlite")} (hint: every gateway replica of a deployment must use the same passphrase (KPARTY_PASSPHRASE))\n`,
    ]);
    const none = await kparty(["--data-dir", "gw", "gateway", "keys", "rotate"], { cwd });
    expect([none.code, none.stdout, none.stderr]).toEqual([
      3,
      "",
      "kparty: config_invalid: kparty gateway keys rotate stores the access-token keys encrypted under a passphrase, and none was given (hint: set KPARTY_PASSPHRASE (the same for every gateway replica of a deployment), or run in a terminal to be asked)\n",
    ]);
    const db = new DatabaseSync(join(cwd, "gw", "gateway.sqlite"));
    expect(db.prepare("SELECT count(*) AS n FROM token_keys").get()).toEqual({ n: 2 });
    db.close();
  });

  it("refuses a --database that is not a postgres:// URL", async () => {
    const res = await kparty(["gateway", "keys", "rotate", "--database", "mysql://db/kparty"], { cwd });
    expect(res.code).toBe(2);
    expect(res.stderr).toBe(
      "kparty: invalid_argument: --database / KPARTY_DATABASE_URL must be a postgres:// URL\n",
    );
  });
});

describe.skipIf("unavailable" in postgres)("kparty on PostgreSQL (--database, KPARTY_DATABASE_URL)", () => {
  const server = postgres as TestPostgres;

  it("rotates keys in the database without printing the password or the passphrase", async () => {
    const url = await server.database();
    const password = new URL(url).password;
    const env = { KPARTY_PASSPHRASE: PASSPHRASE };
    const byFlag = await kparty(["gateway", "keys", "rotate", "--database", url, "--json"], { cwd, env });
    expect(byFlag.code).toBe(0);
    const first = JSON.parse(byFlag.stdout) as { kid: string; kids: string[]; state: string };
    expect(first.kids).toEqual([first.kid]);
    expect(first.state).toBe(`postgres://${new URL(url).host}${new URL(url).pathname}`);
    const byEnv = await kparty(["gateway", "keys", "rotate", "--json"], {
      cwd,
      env: { ...env, KPARTY_DATABASE_URL: url },
    });
    const second = JSON.parse(byEnv.stdout) as { kid: string; kids: string[] };
    expect(second.kids).toEqual([...first.kids, second.kid]);
    for (const text of [byFlag.stdout, byFlag.stderr, byEnv.stdout, byEnv.stderr]) {
      expect(text).not.toContain(password);
      expect(text).not.toContain(PASSPHRASE);
    }
  });

  it("gateway serve on PostgreSQL without a passphrase refuses to start: config_invalid (exit 3)", async () => {
    const url = await server.database();
    const res = await kparty(["gateway", "serve", "--database", url, "--port", "0"], { cwd });
    expect([res.code, res.stdout, res.stderr]).toEqual([
      3,
      "",
      "kparty: config_invalid: a gateway on PostgreSQL stores the access-token keys encrypted under a passphrase, and none was given (hint: set KPARTY_PASSPHRASE (the same for every gateway replica of a deployment), or run in a terminal to be asked)\n",
    ]);
  });

  it("verifies the deployment's audit chain in the database, and exits 9 once a record is edited", async () => {
    const url = await server.database();
    const state = await openPostgresState({ url });
    const audit = state.audit({ now: () => 1_800_000_000_000 });
    const records = await Promise.all([
      audit.append({ client: "198.51.100.1", route: "/auth/token", outcome: "granted" }),
      audit.append({ client: "198.51.100.2", route: "/auth/token", outcome: "denied", code: "revoked" }),
    ]);
    await state.close();
    const intact = await kparty(["audit", "verify", "--database", url, "--json"], { cwd });
    expect(intact.code).toBe(0);
    expect(JSON.parse(intact.stdout)).toMatchObject({
      valid: true,
      records: 2,
      head: { seq: 2, hash: records[1]?.hash },
      unsigned: { fromSeq: 1, toSeq: 2 }, // appended without a signer: no gateway with a passphrase ran
      anchorsChecked: false,
    });
    const tail = await kparty(["audit", "tail", "--json"], { cwd, env: { KPARTY_DATABASE_URL: url } });
    expect(JSON.parse(tail.stdout).records).toEqual(records);

    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query("UPDATE kparty_audit SET code = 'none' WHERE seq = 2");
    await client.end();
    const broken = await kparty(["audit", "verify", "--database", url, "--json"], { cwd });
    expect(broken.code).toBe(9);
    expect(JSON.parse(broken.stdout)).toMatchObject({
      valid: false,
      records: 2,
      problems: [{ kind: "edited", seq: 2 }],
    });
  });
});
