import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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

describe("kparty gateway keys rotate, embedded", () => {
  it("adds a key to the data dir's gateway.sqlite and prints the kids, never a private key", async () => {
    const first = await kparty(["--data-dir", "gw", "gateway", "keys", "rotate", "--json"], { cwd });
    expect([first.code, first.stderr]).toEqual([0, ""]);
    const out = JSON.parse(first.stdout) as { kid: string; kids: string[]; state: string };
    expect(out.kids).toHaveLength(2); // the first key, then the rotated one
    expect(out.kids[1]).toBe(out.kid);
    expect(out.state).toBe(join(cwd, "gw", "gateway.sqlite"));
    expect(first.stdout).not.toContain("PRIVATE KEY");
    const second = JSON.parse(
      (await kparty(["--data-dir", "gw", "gateway", "keys", "rotate", "--json"], { cwd })).stdout,
    );
    expect(second.kids).toEqual([...out.kids, second.kid]);
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

  it("rotates keys in the database without printing the password", async () => {
    const url = await server.database();
    const password = new URL(url).password;
    const byFlag = await kparty(["gateway", "keys", "rotate", "--database", url, "--json"], { cwd });
    expect(byFlag.code).toBe(0);
    const first = JSON.parse(byFlag.stdout) as { kid: string; kids: string[]; state: string };
    expect(first.kids).toHaveLength(2);
    expect(first.state).toBe(`postgres://${new URL(url).host}${new URL(url).pathname}`);
    const byEnv = await kparty(["gateway", "keys", "rotate", "--json"], {
      cwd,
      env: { KPARTY_DATABASE_URL: url },
    });
    const second = JSON.parse(byEnv.stdout) as { kid: string; kids: string[] };
    expect(second.kids).toEqual([...first.kids, second.kid]);
    for (const text of [byFlag.stdout, byFlag.stderr, byEnv.stdout, byEnv.stderr])
      expect(text).not.toContain(password);
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
    expect(JSON.parse(intact.stdout)).toMatchObject({ valid: true, records: 2, head: records[1]?.hash });
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
      records: 1,
      broken: { seq: 2, reason: "content does not match its hash" },
    });
  });
});
