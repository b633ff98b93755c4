import { generateKeyPairSync } from "node:crypto";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { parseEther } from "ethers";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKPartyAgent } from "../agent/index.ts";
import {
  type AuditAnchor,
  createChainClient,
  createProvider,
  type Deployment,
  deployKParty,
  getLatestAuditAnchor,
  keyWalletClient,
  kpartyInterfaces,
  listAuditAnchors,
} from "../src/chain/index.ts";
import { auditHash } from "../src/gateway/audit.ts";
import { type AuditAnchorer, createAuditAnchorer } from "../src/gateway/audit-anchor.ts";
import { type AuditReport, verifyAuditLog } from "../src/gateway/audit-verify.ts";
import { buildGateway, openGatewayDatabase } from "../src/gateway/index.ts";
import { FileModelStore } from "../src/models/index.ts";
import { type AuditPublicKey, createEmbeddedState, signAuditHash } from "../src/state/index.ts";
import { startTestChain, type TestChain } from "./fixtures/chain.ts";
import { kparty, startKparty } from "./fixtures/cli.ts";
import { DOMAIN, MODEL_ID, MODEL_WEIGHTS, TOKEN_KEY_SECRET } from "./fixtures/kparty.ts";

/**
 * Issue 35, deliverable 2: a real chain and a real gateway whose audit records are signed and
 * whose head is anchored on chain (AuditAnchors); then the database is tampered with, as an
 * attacker with write access to it but not the gateway's key would, and `verifyAuditLog` /
 * `kparty audit verify` must say exactly what happened. Anchoring rounds are run explicitly
 * (`tick`), never by waiting.
 */

let chain: TestChain;
let deployment: Deployment;
let dir: string;
let app: FastifyInstance;
let db: DatabaseSync;
let closeVerifier: () => Promise<void>;
let anchorer: AuditAnchorer;
let key: AuditPublicKey;
const operatorLines: string[] = [];
let anchors: AuditAnchor[];

async function deny(n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const res = await app.inject({ method: "POST", url: "/auth/token", payload: {} });
    expect(res.statusCode).toBe(400);
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "kparty-audit-anchor-"));
  chain = await startTestChain();
  const deployer = chain.accounts[0] as NonNullable<TestChain["accounts"][0]>;
  deployment = await deployKParty({
    deployer,
    founders: [{ account: await deployer.getAddress(), did: "did:ethr:0x7a69:founder", name: "Org A" }],
    quorum: 1,
  });
  const models = new FileModelStore(join(dir, "models"));
  await models.register({ id: MODEL_ID, description: "m", shape: [785, 10], weights: MODEL_WEIGHTS });
  const verifier = await createKPartyAgent({
    role: "verifier",
    chain: { provider: chain.provider, deployment },
  });
  closeVerifier = () => verifier.close();
  db = openGatewayDatabase(join(dir, "gateway.sqlite"));
  app = await buildGateway({
    agent: verifier.agent,
    chain: createChainClient({ provider: chain.provider, deployment }),
    models,
    db,
    domain: DOMAIN,
    tokenKeySecret: TOKEN_KEY_SECRET,
    tokenBinding: "bearer",
    operatorLog: { write: (line: string) => operatorLines.push(line) },
    // the timer never fires here: rounds run by tick(), or by the record count
    auditAnchor: { everyRecords: 1_000, intervalSeconds: 3_600 },
  });
  anchorer = app.kpartyAuditAnchorer as AuditAnchorer;
  key = (await createEmbeddedState(db).auditReader().publicKeys())[0] as AuditPublicKey;
}, 120_000);

afterAll(async () => {
  await app?.close();
  db?.close();
  await closeVerifier?.();
  await chain?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("a gateway's audit head, anchored on chain", () => {
  it("signs every record; an unfunded anchoring account fails the round, noted, while decisions go on", async () => {
    expect(anchorer).not.toBeNull();
    await deny(5);
    const rows = db.prepare("SELECT seq, kid, sig FROM audit ORDER BY seq").all() as {
      seq: number;
      kid: string;
      sig: string;
    }[];
    expect(rows.map((r) => [r.seq, r.kid])).toEqual([1, 2, 3, 4, 5].map((seq) => [seq, key.kid]));
    expect(rows.every((r) => /^[A-Za-z0-9_-]{86}$/.test(r.sig))).toBe(true);
    expect(key.log).toBe(`0x${Buffer.from(key.kid, "base64url").toString("hex")}`);
    // published for auditors beside the access-token key
    expect((await app.inject({ method: "GET", url: "/.well-known/kparty" })).json().audit).toEqual(key);

    expect(await anchorer.tick()).toEqual({ failed: { code: "insufficient_funds" } });
    expect(anchorer.status).toEqual({ anchoredSeq: null, failures: 1, lastError: "insufficient_funds" });
    expect(operatorLines).toEqual([
      `kparty gateway: audit head anchoring failed (insufficient_funds) from ${key.anchorer}; 5 record(s) not anchored; retrying in 3600 s\n`,
    ]);
    await deny(1); // the gateway keeps deciding (and recording) meanwhile
  });

  it("anchors the head once funded, one transaction per round; a round with nothing new sends none", async () => {
    const funder = chain.accounts[0] as NonNullable<TestChain["accounts"][0]>;
    await (await funder.sendTransaction({ to: key.anchorer, value: parseEther("1") })).wait();
    const first = await anchorer.tick();
    expect(first).toMatchObject({ anchored: { seq: 6 } });
    expect(await anchorer.tick()).toEqual({ upToDate: { seq: 6 } });
    expect(anchorer.status).toEqual({ anchoredSeq: 6, failures: 0, lastError: null });
    await deny(2);
    const second = await anchorer.tick();
    expect(second).toMatchObject({ anchored: { seq: 8 } });
    await deny(2); // 9 and 10: not anchored
    const client = createChainClient({ provider: chain.provider, deployment });
    const head8 = db.prepare("SELECT hash FROM audit WHERE seq = 8").get() as { hash: string };
    expect(await getLatestAuditAnchor(client, { anchorer: key.anchorer, log: key.log })).toMatchObject({
      seq: 8,
      head: `0x${head8.hash}`,
    });
    anchors = (await listAuditAnchors(client, { anchorer: key.anchorer, log: key.log })).get(key.log) ?? [];
    expect(anchors.map((a) => a.seq)).toEqual([6, 8]);
    const firstTx = (first as { anchored: { txHash: string } }).anchored.txHash;
    expect(anchors[0]?.txHash).toBe(firstTx);
    // the transaction's one event, decoded: AuditHeadAnchored(anchorer, log, seq, head)
    const receipt = await chain.provider.getTransactionReceipt(firstTx);
    const head6 = db.prepare("SELECT hash FROM audit WHERE seq = 6").get() as { hash: string };
    const events = (receipt?.logs ?? []).map((l) => kpartyInterfaces().auditAnchors.parseLog(l));
    expect(events.map((e) => [e?.name, ...(e?.args.toArray() ?? [])])).toEqual([
      ["AuditHeadAnchored", key.anchorer, key.log, 6n, `0x${head6.hash}`],
    ]);
    expect(receipt?.from).toBe(key.anchorer);
  });
});

describe("a node that cannot be reached", () => {
  it("fails the round with registry_unavailable, noted without the node's URL or its credentials", async () => {
    const secretUrl = "http://user:hunter2@127.0.0.1:9/v3/0123456789abcdef";
    const dead = createProvider(secretUrl, 31337, { timeoutMs: 300 });
    const lines: string[] = [];
    const stranded = createAuditAnchorer({
      wallet: keyWalletClient({ privateKey: "0x".padEnd(66, "1"), provider: dead, deployment }),
      keys: key,
      reader: createEmbeddedState(db).auditReader(),
      lock: null,
      now: Date.now,
      note: (text) => lines.push(text),
      timer: false,
    });
    try {
      expect(await stranded.tick()).toEqual({ failed: { code: "registry_unavailable" } });
      expect(lines).toEqual([
        `audit head anchoring failed (registry_unavailable) from ${key.anchorer}; 10 record(s) not anchored; retrying in 60 s`,
      ]);
      expect(lines.join("")).not.toContain("hunter2");
      expect(lines.join("")).not.toContain("0123456789abcdef");
    } finally {
      await stranded.stop();
      dead.destroy();
    }
  });
});

/** A copy of the gateway's database, tampered with by `tamper`, verified against the chain's anchors. */
async function verifyTampered(tamper: (db: DatabaseSync) => void): Promise<AuditReport> {
  const file = join(dir, `copy-${Math.random().toString(36).slice(2)}.sqlite`);
  db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  copyFileSync(join(dir, "gateway.sqlite"), file);
  const copy = openGatewayDatabase(file);
  try {
    tamper(copy);
    const reader = createEmbeddedState(copy).auditReader();
    return await verifyAuditLog({ reader, key: (await reader.publicKeys())[0] ?? null, anchors });
  } finally {
    copy.close();
  }
}

type Row = Record<string, string | number | null>;

/** What an attacker without the key can do: renumber from `fromSeq` and recompute every hash after. */
function rehashFrom(copy: DatabaseSync, fromSeq: number): void {
  const rows = copy.prepare("SELECT * FROM audit WHERE seq >= ? ORDER BY seq").all(fromSeq - 1) as Row[];
  copy.prepare("DELETE FROM audit WHERE seq >= ?").run(fromSeq);
  let prev = fromSeq > 1 ? (rows.shift()?.hash as string) : "0".repeat(64);
  let seq = fromSeq;
  const insert = copy.prepare(
    "INSERT INTO audit (seq, at, client, route, holder, credential_id, action, model, outcome, code, prev_hash, hash, kid, sig) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
  );
  for (const r of rows) {
    const base = {
      seq,
      at: r.at as string,
      client: r.client as string,
      route: r.route as string,
      holder: r.holder as string | null,
      credentialId: r.credential_id as string | null,
      action: r.action as string | null,
      model: r.model as string | null,
      outcome: r.outcome as "granted" | "denied",
      code: r.code as string | null,
      prevHash: prev,
    };
    const hash = auditHash(base);
    insert.run(
      seq,
      base.at,
      base.client,
      base.route,
      base.holder,
      base.credentialId,
      base.action,
      base.model,
      base.outcome,
      base.code,
      prev,
      hash,
      r.kid ?? null,
      r.sig ?? null,
    );
    prev = hash;
    seq += 1;
  }
}

describe("kparty audit verify against the anchored heads", () => {
  const tx = (i: number) => anchors[i]?.txHash as string;

  it("an intact log: valid, anchored through #8, #9–#10 not anchored yet", async () => {
    const report = await verifyTampered(() => {});
    expect(report).toMatchObject({
      valid: true,
      records: 10,
      unsigned: null,
      anchorsChecked: true,
      anchoredThrough: { seq: 8, txHash: tx(1) },
      unanchored: { fromSeq: 9, toSeq: 10 },
      problems: [],
    });
  });

  it("deleting the newest records past an anchored head: truncated", async () => {
    const report = await verifyTampered((c) => c.prepare("DELETE FROM audit WHERE seq >= 7").run());
    expect([report.valid, report.records, report.unanchored, report.problems]).toEqual([
      false,
      6,
      null,
      [{ kind: "truncated", seq: 7, toSeq: 8, txHash: tx(1) }],
    ]);
  });

  it("deleting only the unanchored tail is NOT detected (the documented window)", async () => {
    const report = await verifyTampered((c) => c.prepare("DELETE FROM audit WHERE seq >= 9").run());
    expect([report.valid, report.records, report.unanchored, report.problems]).toEqual([true, 8, null, []]);
  });

  it("deleting one record: missing", async () => {
    const report = await verifyTampered((c) => c.prepare("DELETE FROM audit WHERE seq = 3").run());
    expect(report.problems).toEqual([{ kind: "missing", seq: 3 }]);
    expect(report.valid).toBe(false);
  });

  it("deleting one record and re-hashing the rest: bad signatures from there, re-hashed at both anchors", async () => {
    const report = await verifyTampered((c) => {
      c.prepare("DELETE FROM audit WHERE seq = 3").run();
      rehashFrom(c, 3);
    });
    expect([report.records, report.problems]).toEqual([
      9,
      [
        { kind: "bad_signature", seq: 3, toSeq: 9 },
        { kind: "rehashed", seq: 6, txHash: tx(0) },
        { kind: "rehashed", seq: 8, txHash: tx(1) },
      ],
    ]);
  });

  it("editing a field: edited; editing it and re-hashing: bad signatures and re-hashed", async () => {
    const edited = await verifyTampered((c) =>
      c.prepare("UPDATE audit SET outcome = 'granted' WHERE seq = 2").run(),
    );
    expect(edited.problems).toEqual([{ kind: "edited", seq: 2 }]);
    const rehashed = await verifyTampered((c) => {
      c.prepare("UPDATE audit SET outcome = 'granted' WHERE seq = 2").run();
      rehashFrom(c, 2);
    });
    expect(rehashed.problems).toEqual([
      { kind: "bad_signature", seq: 2, toSeq: 10 },
      { kind: "rehashed", seq: 6, txHash: tx(0) },
      { kind: "rehashed", seq: 8, txHash: tx(1) },
    ]);
  });

  it("a forged signature (another key's) and a stripped one are caught", async () => {
    const { privateKey } = generateKeyPairSync("ed25519");
    const report = await verifyTampered((c) => {
      const { hash } = c.prepare("SELECT hash FROM audit WHERE seq = 4").get() as { hash: string };
      c.prepare("UPDATE audit SET sig = ? WHERE seq = 4").run(signAuditHash(privateKey, hash));
      c.prepare("UPDATE audit SET sig = NULL, kid = NULL WHERE seq = 7").run();
    });
    expect(report.problems).toEqual([
      { kind: "bad_signature", seq: 4 },
      { kind: "unsigned", seq: 7 },
    ]);
  });

  it("the CLI: exit 0 and the report on an intact copy, exit 9 on a truncated one, through the real binary", async () => {
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    const file = join(dir, "cli-copy.sqlite");
    copyFileSync(join(dir, "gateway.sqlite"), file);
    const deploymentFile = join(dir, "deployment.json");
    writeFileSync(deploymentFile, JSON.stringify({ ...deployment, rpcUrl: chain.url }));
    const env = { KPARTY_RPC_URL: chain.url, KPARTY_CHAIN_ID: "31337", KPARTY_DEPLOYMENT: deploymentFile };
    const intact = await kparty(["audit", "verify", "--db", file, "--anchorer", key.anchorer, "--json"], {
      cwd: dir,
      env,
    });
    expect([intact.code, intact.stderr]).toEqual([0, ""]);
    expect(JSON.parse(intact.stdout)).toMatchObject({
      file,
      valid: true,
      records: 10,
      anchoredThrough: { seq: 8, txHash: tx(1) },
      unanchored: { fromSeq: 9, toSeq: 10 },
      problems: [],
    });
    const copy = openGatewayDatabase(file);
    copy.prepare("DELETE FROM audit WHERE seq >= 8").run();
    copy.close();
    const cut = await kparty(["audit", "verify", "--db", file], { cwd: dir, env });
    expect(cut.code).toBe(9);
    expect(cut.stdout).toBe(`audit log BROKEN at record #8: truncated\nanchored through #8 (tx ${tx(1)})\n`);
    // anchors that cannot be read: the command fails (exit 6) rather than report an unchecked chain
    const unreachable = await kparty(["audit", "verify", "--db", file, "--json"], {
      cwd: dir,
      env: { ...env, KPARTY_RPC_URL: "http://127.0.0.1:9" },
    });
    expect(unreachable.code).toBe(6);
    expect(JSON.parse(unreachable.stdout)).toMatchObject({
      error: { code: "registry_unavailable", exitCode: 6 },
    });
    const otherAnchorer = await kparty(
      ["audit", "verify", "--db", file, "--anchorer", chain.accounts[1]?.address as string, "--json"],
      { cwd: dir, env },
    );
    expect(otherAnchorer.code).toBe(9);
    expect(JSON.parse(otherAnchorer.stdout)).toMatchObject({
      anchoredThrough: { seq: 0 },
      unanchored: { fromSeq: 1, toSeq: 7 },
      problems: [{ kind: "key_replaced", seq: 0 }],
    });
  }, 60_000);
});

describe("kparty gateway serve --audit-anchor-every", () => {
  it("prints its anchoring account, and anchors the head once that many records are unanchored", async () => {
    const deploymentFile = join(dir, "serve-deployment.json");
    writeFileSync(deploymentFile, JSON.stringify({ ...deployment, rpcUrl: chain.url }));
    const served = await startKparty<{ url: string; auditAnchorer: string | null }>(
      [
        "gateway",
        "serve",
        "--data-dir",
        join(dir, "served"),
        "--port",
        "0",
        "--audit-anchor-every",
        "2",
        "--audit-anchor-interval",
        "3600",
      ],
      {
        cwd: dir,
        env: {
          KPARTY_RPC_URL: chain.url,
          KPARTY_CHAIN_ID: "31337",
          KPARTY_DEPLOYMENT: deploymentFile,
          KPARTY_PASSPHRASE: TOKEN_KEY_SECRET,
        },
      },
    );
    try {
      const anchorer = served.ready.auditAnchorer as string;
      const published = (await (await fetch(`${served.ready.url}/.well-known/kparty`)).json()) as {
        audit: { anchorer: string; log: string };
      };
      expect(published.audit.anchorer).toBe(anchorer);
      expect(anchorer).not.toBe(key.anchorer); // a data dir of its own: a key of its own
      const funder = chain.accounts[0] as NonNullable<TestChain["accounts"][0]>;
      await (await funder.sendTransaction({ to: anchorer, value: parseEther("1") })).wait();
      for (let i = 0; i < 2; i++) {
        const res = await fetch(`${served.ready.url}/auth/token`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: "{}",
        });
        expect(res.status).toBe(400);
      }
      // the round started with the second record's append runs in the background: wait for its
      // transaction (a condition, bounded; nothing is asserted about how long it took)
      const client = createChainClient({ provider: chain.provider, deployment });
      const log = published.audit.log;
      let latest = await getLatestAuditAnchor(client, { anchorer, log });
      for (let i = 0; i < 200 && latest === null; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        latest = await getLatestAuditAnchor(client, { anchorer, log });
      }
      expect(latest?.seq).toBe(2);
    } finally {
      await served.stop();
    }
  }, 120_000);
});
