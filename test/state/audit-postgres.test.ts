import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseEther } from "ethers";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createChainClient,
  type Deployment,
  deployKParty,
  keyWalletClient,
  listAuditAnchors,
} from "../../src/chain/index.ts";
import { type AnchorOutcome, createAuditAnchorer } from "../../src/gateway/audit-anchor.ts";
import { verifyAuditLog } from "../../src/gateway/audit-verify.ts";
import { type AuditKeys, type GatewayState, openPostgresState } from "../../src/state/index.ts";
import { startTestChain, type TestChain } from "../fixtures/chain.ts";
import { kparty } from "../fixtures/cli.ts";
import { startTestPostgres, type TestPostgres } from "../fixtures/postgres.ts";

/**
 * The audit chain of replicas on one PostgreSQL database: one audit key for the deployment,
 * records from both replicas signed with it, exactly one replica anchoring a given head, and
 * `kparty audit verify --database` reporting a truncation against the anchors.
 */
const postgres = await startTestPostgres();
if ("unavailable" in postgres) console.warn(`PostgreSQL audit tests skipped: ${postgres.unavailable}`);

const SECRET = "audit keys test passphrase";
const KDF = { N: 2 ** 15, r: 8, p: 1 };
const NOW = () => 1_800_000_000_000;

describe.skipIf("unavailable" in postgres)("audit on PostgreSQL replicas", () => {
  let chain: TestChain;
  let deployment: Deployment;
  let url: string;
  let replicas: GatewayState[] = [];
  let keys: AuditKeys;
  const dir = mkdtempSync(join(tmpdir(), "kparty-audit-pg-"));

  beforeAll(async () => {
    chain = await startTestChain();
    const deployer = chain.accounts[0] as NonNullable<TestChain["accounts"][0]>;
    deployment = await deployKParty({
      deployer,
      founders: [{ account: await deployer.getAddress(), did: "did:ethr:0x7a69:founder", name: "Org A" }],
      quorum: 1,
    });
    url = await (postgres as TestPostgres).database();
    replicas = [await openPostgresState({ url }), await openPostgresState({ url })];
  }, 120_000);

  afterAll(async () => {
    for (const r of replicas) await r.close();
    await chain?.stop();
    if (!("unavailable" in postgres)) await postgres.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("replicas starting together agree on one audit key; another passphrase is refused", async () => {
    const [a, b] = await Promise.all(replicas.map((r) => r.auditKeys({ secret: SECRET, kdf: KDF }).load()));
    keys = a as AuditKeys;
    expect([b?.kid, b?.anchorer, b?.anchorKey]).toEqual([keys.kid, keys.anchorer, keys.anchorKey]);
    expect(await replicas[0]?.auditReader().publicKeys()).toEqual([
      { kid: keys.kid, x: keys.x, anchorer: keys.anchorer, log: keys.log },
    ]);
    await expect(
      (replicas[1] as GatewayState).auditKeys({ secret: "another passphrase", kdf: KDF }).load(),
    ).rejects.toMatchObject({ code: "wrong_passphrase" });
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const { rows } = await client.query("SELECT sealed FROM kparty_audit_keys");
    await client.end();
    expect(rows[0].sealed).not.toContain(keys.anchorKey.slice(2));
  });

  it("both replicas' records are signed; concurrent rounds: exactly one anchors the head", async () => {
    const signer = { kid: keys.kid, key: keys.signingKey };
    const [logA, logB] = replicas.map((r) => r.audit({ now: NOW, signer }));
    for (const [i, log] of [logA, logB, logA, logB, logA].entries())
      await log?.append({
        client: `198.51.100.${i}`,
        route: "/auth/token",
        outcome: "denied",
        code: "malformed",
      });
    const funder = chain.accounts[0] as NonNullable<TestChain["accounts"][0]>;
    await (await funder.sendTransaction({ to: keys.anchorer, value: parseEther("1") })).wait();
    const anchorers = replicas.map((r) =>
      createAuditAnchorer({
        wallet: keyWalletClient({ privateKey: keys.anchorKey, provider: chain.provider, deployment }),
        keys,
        reader: r.auditReader(),
        lock: r.modelLock(),
        now: NOW,
        note: (text) => {
          throw new Error(`unexpected operator line: ${text}`);
        },
        timer: false,
      }),
    );
    const outcomes = await Promise.all(anchorers.map((a) => a.tick()));
    const kinds = outcomes.map((o: AnchorOutcome) => Object.keys(o)[0]).sort();
    expect(kinds).toEqual(["anchored", "upToDate"]);
    expect(outcomes.find((o) => "upToDate" in o)).toEqual({ upToDate: { seq: 5 } });
    const client = createChainClient({ provider: chain.provider, deployment });
    const anchors = (await listAuditAnchors(client, { anchorer: keys.anchorer, log: keys.log })).get(
      keys.log,
    );
    expect(anchors?.map((a) => a.seq)).toEqual([5]);
    await logB?.append({ client: "198.51.100.9", route: "/auth/token", outcome: "granted" });
    await logA?.append({ client: "198.51.100.9", route: "/auth/token", outcome: "granted" });
    const report = await verifyAuditLog({
      reader: (replicas[0] as GatewayState).auditReader(),
      key: { kid: keys.kid, x: keys.x, anchorer: keys.anchorer, log: keys.log },
      anchors: anchors ?? [],
    });
    expect(report).toMatchObject({
      valid: true,
      records: 7,
      unsigned: null,
      anchoredThrough: { seq: 5, txHash: anchors?.[0]?.txHash },
      unanchored: { fromSeq: 6, toSeq: 7 },
      problems: [],
    });
  });

  it("kparty audit verify --database: exit 0, then exit 9 with the truncation once the newest records are deleted", async () => {
    const deploymentFile = join(dir, "deployment.json");
    writeFileSync(deploymentFile, JSON.stringify({ ...deployment, rpcUrl: chain.url }));
    const env = { KPARTY_RPC_URL: chain.url, KPARTY_CHAIN_ID: "31337", KPARTY_DEPLOYMENT: deploymentFile };
    const intact = await kparty(["audit", "verify", "--database", url, "--json"], { cwd: dir, env });
    expect([intact.code, intact.stderr]).toEqual([0, ""]);
    expect(JSON.parse(intact.stdout)).toMatchObject({
      valid: true,
      records: 7,
      anchoredThrough: { seq: 5 },
      unanchored: { fromSeq: 6, toSeq: 7 },
    });
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query("DELETE FROM kparty_audit WHERE seq >= 4");
    // the head row still names record 7: caught even without the anchors
    const offline = await verifyAuditLog({
      reader: (replicas[0] as GatewayState).auditReader(),
      key: { kid: keys.kid, x: keys.x, anchorer: keys.anchorer, log: keys.log },
      anchors: null,
    });
    expect([offline.valid, offline.problems]).toEqual([false, [{ kind: "head_row", seq: 7 }]]);
    await client.query(
      "UPDATE kparty_audit_head SET seq = 3, hash = (SELECT hash FROM kparty_audit WHERE seq = 3)",
    );
    await client.end();
    const cut = await kparty(["audit", "verify", "--database", url, "--json"], { cwd: dir, env });
    expect(cut.code).toBe(9);
    const report = JSON.parse(cut.stdout);
    expect([report.valid, report.records, report.unanchored, report.problems]).toEqual([
      false,
      3,
      null,
      [{ kind: "truncated", seq: 4, toSeq: 5, txHash: report.anchoredThrough.txHash }],
    ]);
    expect(cut.stdout).not.toContain(new URL(url).password);
  }, 60_000);
});
