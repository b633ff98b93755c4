import { type ChildProcess, fork } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SecretBox } from "@veramo/kms-local";
import { computeAddress, parseEther } from "ethers";
import type { FastifyInstance } from "fastify";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentHandle, createKPartyAgent, type IssuerAgent, openKeyring } from "../agent/index.ts";
import { getCredentialState } from "../src/chain/index.ts";
import { buildIssuerService, IssuerClientStore } from "../src/issuer/index.ts";
import { kparty } from "./fixtures/cli.ts";
import { requestToken } from "./fixtures/http.ts";
import { createWorld, type KPartyWorld, MODEL_ID, PASSPHRASE, TEST_KEYRING_KDF } from "./fixtures/kparty.ts";
import { startTestPostgres, type TestPostgres } from "./fixtures/postgres.ts";

/**
 * A member's issuer agents on PostgreSQL (issue 29, deliverable 2): Org C joins the test
 * consortium with its agent database in a real PostgreSQL, and two agents of Org C (two data
 * dirs with the same keyring, one database — as two issuer processes on two machines) issue at
 * once over a real chain; the gateway verifies what they issued.
 */
const postgres = await startTestPostgres();
if ("unavailable" in postgres) console.warn(`issuer-on-PostgreSQL tests skipped: ${postgres.unavailable}`);

let world: KPartyWorld;
let url: string;
let orgC: { did: string; account: string; dirs: [string, string] };
let agents: [AgentHandle<IssuerAgent>, AgentHandle<IssuerAgent>];

/** Opens an issuer agent of Org C on the database (data dir `dir`). */
function openOrgC(dir: string): Promise<AgentHandle<IssuerAgent>> {
  return createKPartyAgent({
    role: "issuer",
    dataDir: dir,
    passphrase: PASSPHRASE,
    keyringKdf: TEST_KEYRING_KDF,
    database: url,
    chain: { provider: world.chain.provider, deployment: world.deployment },
  });
}

/** Org C: a DID made in the PostgreSQL agent database, funded and admitted by Org A and Org B. */
async function admitOrgC(dir: string): Promise<{ did: string; account: string }> {
  const handle = await openOrgC(dir);
  try {
    const id = await handle.agent.didManagerCreate({ provider: handle.didProvider, alias: "Org C" });
    const account = computeAddress(`0x${id.keys[0]?.publicKeyHex}`);
    const funder = world.chain.accounts[0] as NonNullable<(typeof world.chain.accounts)[0]>;
    await (await funder.sendTransaction({ to: account, value: parseEther("10") })).wait(1);
    const { orgA, orgB } = world;
    const { proposalId: id2 } = await orgA.handle.agent.kpartyProposeMember({
      member: orgA.did,
      account,
      did: id.did,
      name: "Org C",
    });
    await orgB.handle.agent.kpartyApproveProposal({ member: orgB.did, id: id2 });
    await orgA.handle.agent.kpartyExecuteProposal({ member: orgA.did, id: id2 });
    return { did: id.did, account };
  } finally {
    await handle.close();
  }
}

beforeAll(async () => {
  if ("unavailable" in postgres) return;
  world = await createWorld();
  url = await postgres.database();
  const dirs: [string, string] = [join(world.dir, "org-c-1"), join(world.dir, "org-c-2")];
  orgC = { ...(await admitOrgC(dirs[0])), dirs };
  // the second issuer of Org C: its own data dir with the member's keyring, the same database
  await mkdir(dirs[1], { recursive: true, mode: 0o700 });
  await copyFile(join(dirs[0], "keyring.json"), join(dirs[1], "keyring.json"));
  agents = [await openOrgC(dirs[0]), await openOrgC(dirs[1])];
});

afterAll(async () => {
  for (const handle of agents ?? []) await handle.close();
  await world?.close();
  if (!("unavailable" in postgres)) await postgres.stop();
});

async function query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows as T[];
  } finally {
    await client.end();
  }
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Credentials per batch of the issuer processes. */
const BATCH = 4;

interface IssuerProcess {
  child: ChildProcess;
  /** The status indexes of each batch it reported done. */
  reported: number[][];
  /** Resolves once it has reported `n` batches. */
  batches(n: number): Promise<void>;
  /** Its exit code (null when killed). */
  exited: Promise<number | null>;
}

/** scripts/issuer-process.ts for Org C with data dir `dataDir` on the database: batches until stopped. */
function startIssuerProcess(dataDir: string): IssuerProcess {
  const child = fork(fileURLToPath(new URL("../scripts/issuer-process.ts", import.meta.url)), [], {
    execArgv: ["--import", "tsx", "--disable-warning=ExperimentalWarning"],
    env: {
      ...process.env,
      KPARTY_ISSUER_CONFIG: JSON.stringify({
        rpcUrl: world.chain.url,
        deployment: world.deployment,
        dataDir,
        database: url,
        passphrase: PASSPHRASE,
        issuer: orgC.did,
        subject: world.alice.did,
        batchSize: BATCH,
      }),
    },
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  const reported: number[][] = [];
  const waiting: { n: number; resolve: () => void }[] = [];
  child.on("message", (m: { type: string; indexes?: number[] }) => {
    if (m.type !== "batch" || !m.indexes) return;
    reported.push(m.indexes);
    for (const w of waiting.filter((w) => reported.length >= w.n)) w.resolve();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    reported,
    exited,
    batches: (n) =>
      Promise.race([
        new Promise<void>((resolve) => {
          if (reported.length >= n) resolve();
          else waiting.push({ n, resolve });
        }),
        exited.then((code) => Promise.reject(new Error(`issuer process exited with ${code}`))),
      ]),
  };
}

/**
 * Runs `fn` with Org C's issuer service (its second agent) listening on a free loopback port;
 * `issue()` asks it for a participant token for Alice.
 */
async function withService(
  fn: (issue: () => Promise<{ status: number; body: Record<string, any> }>) => Promise<void>,
): Promise<void> {
  const clients = new IssuerClientStore(join(orgC.dirs[1], "issuer-clients.json"));
  const { apiKey } = await clients.add(`portal-${clients.list().length}`);
  const service: FastifyInstance = await buildIssuerService({
    agent: agents[1].agent,
    issuer: orgC.did,
    deployment: world.deployment,
    clients,
  });
  try {
    const base = await service.listen({ host: "127.0.0.1", port: 0 });
    await fn(async () => {
      const res = await fetch(`${base}/credentials/issue`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${apiKey}` },
        body: JSON.stringify({
          credential: {
            "@context": ["https://www.w3.org/2018/credentials/v1"],
            type: ["VerifiableCredential", "KPartyCredential"],
            issuer: { id: orgC.did },
            credentialSubject: {
              id: world.alice.did,
              kParty: { role: "participant", models: [MODEL_ID], actions: ["model:read"] },
            },
          },
        }),
      });
      return { status: res.status, body: (await res.json()) as Record<string, any> };
    });
  } finally {
    await service.close();
  }
}

describe.skipIf("unavailable" in postgres)("issuer agents on PostgreSQL", () => {
  it("two agents of one member issuing 2×20 at once: indexes exactly 0..39, each anchored", async () => {
    const issueBy = (handle: AgentHandle<IssuerAgent>) =>
      handle.agent.kpartyIssueCredential({
        issuer: orgC.did,
        subject: world.alice.did,
        role: "participant",
        models: [MODEL_ID],
        actions: ["model:read"],
      });
    const issued = await Promise.all(
      range(40).map((i) => issueBy(agents[i % 2] as AgentHandle<IssuerAgent>)),
    );
    const indexes = issued.map((c) => c.statusIndex);
    expect(new Set(indexes).size).toBe(40);
    expect([...indexes].sort((a, b) => a - b)).toEqual(range(40));
    const rows = await query<{ status_index: string; anchored_block: string | null }>(
      "SELECT status_index, anchored_block FROM kparty_issued WHERE issuer_account = $1 ORDER BY status_index",
      [orgC.account.toLowerCase()],
    );
    expect(rows.map((r) => Number(r.status_index))).toEqual(range(40));
    expect(rows.filter((r) => r.anchored_block === null)).toEqual([]);
    // either agent finds every record: one store
    const listed = await agents[1].agent.kpartyListIssuedCredentials({ issuer: orgC.did });
    expect(listed.map((r) => r.statusIndex).sort((a, b) => a - b)).toEqual(range(40));
    for (const c of issued) {
      const state = await getCredentialState(world.client, {
        anchorKey: c.credentialId,
        issuer: orgC.account,
        revocationIndex: c.statusIndex,
        suspensionIndex: c.statusIndex,
      });
      expect({ ...state, anchoredBy: state.anchoredBy?.toLowerCase() }).toMatchObject({
        anchoredBy: orgC.account.toLowerCase(),
        issuerIsMember: true,
        revoked: false,
        suspended: false,
      });
    }
  });

  it("issues through the issuer service on PostgreSQL; the gateway grants the holder a token", async () => {
    await withService(async (issue) => {
      const res = await issue();
      expect({ status: res.status, error: res.body.error }).toEqual({ status: 201, error: undefined });
      expect(res.body.kparty.statusIndex).toBe(40);
      const jwt = res.body.verifiableCredential.proof.jwt as string;
      const stored = await agents[0].agent.kpartyGetIssuedCredential({
        credentialId: res.body.kparty.credentialId,
      });
      expect(stored.jwt).toBe(jwt);
      const token = await requestToken(world, world.alice, jwt);
      expect(token.status).toBe(200);
      expect(token.body).toMatchObject({ token_type: "Bearer", scope: "model:read" });
    });
  });

  it("fails closed while PostgreSQL is down (503 state_unavailable, no index taken) and recovers after", async () => {
    await withService(async (issue) => {
      await (postgres as TestPostgres).stop({ keepData: true });
      try {
        const down = await issue();
        expect({ status: down.status, code: down.body.error?.code }).toEqual({
          status: 503,
          code: "state_unavailable",
        });
      } finally {
        await (postgres as TestPostgres).start();
      }
      const up = await issue();
      expect({ status: up.status, index: up.body.kparty?.statusIndex }).toEqual({ status: 201, index: 41 });
    });
  });

  it("keeps private keys only encrypted in PostgreSQL, the keyring in the data dir, no agent.sqlite", async () => {
    const keys = await query<{ alias: string; privateKeyHex: string }>(
      'SELECT alias, "privateKeyHex" FROM "private-key"',
    );
    expect(keys).toHaveLength(1);
    const [key] = keys as [{ alias: string; privateKeyHex: string }];
    const secretKey = await openKeyring(join(orgC.dirs[0], "keyring.json"), PASSPHRASE);
    const plain = await new SecretBox(secretKey).decrypt(key.privateKeyHex);
    expect(computeAddress(`0x${plain}`)).toBe(orgC.account);
    // the plaintext key is in no column of any table of the database
    const tables = await query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    );
    expect(tables.length).toBeGreaterThan(5);
    for (const { table_name } of tables) {
      const rows = await query<Record<string, unknown>>(`SELECT * FROM "${table_name}"`);
      expect(JSON.stringify(rows).toLowerCase()).not.toContain(plain.toLowerCase());
    }
    expect(existsSync(join(orgC.dirs[0], "agent.sqlite"))).toBe(false);
    expect(existsSync(join(orgC.dirs[0], "keyring.json"))).toBe(true);
  });

  it("kparty did list --database (or KPARTY_AGENT_DATABASE_URL) reads the agent from PostgreSQL; a non-postgres URL is refused", async () => {
    const env = { KPARTY_PASSPHRASE: PASSPHRASE };
    const listed = await kparty(["did", "list", "--data-dir", orgC.dirs[0], "--database", url, "--json"], {
      cwd: world.dir,
      env,
    });
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout)).toEqual({
      dids: [{ did: orgC.did, alias: "Org C", account: orgC.account }],
    });
    const byEnv = await kparty(["did", "list", "--data-dir", orgC.dirs[1], "--json"], {
      cwd: world.dir,
      env: { ...env, KPARTY_AGENT_DATABASE_URL: url },
    });
    expect(JSON.parse(byEnv.stdout)).toEqual(JSON.parse(listed.stdout));
    expect(`${listed.stderr}${byEnv.stderr}`).not.toContain(new URL(url).password);
    const refused = await kparty(["did", "list", "--data-dir", orgC.dirs[0], "--database", "mysql://db/x"], {
      cwd: world.dir,
      env,
    });
    expect([refused.code, refused.stdout, refused.stderr]).toEqual([
      2,
      "",
      "kparty: invalid_argument: --database / KPARTY_AGENT_DATABASE_URL must be a postgres:// URL\n",
    ]);
  });

  it("two issuer processes of the member, one killed mid-issuance: indexes gap-free, none reused, all anchored after resume", async () => {
    const before = (await agents[0].agent.kpartyListIssuedCredentials({ issuer: orgC.did })).length;
    const children = orgC.dirs.map((dataDir) => startIssuerProcess(dataDir));
    const [victim, survivor] = children as [IssuerProcess, IssuerProcess];
    // the victim dies somewhere in its third batch (signing, recording or anchoring), the
    // survivor then finishes its third batch and stops
    await victim.batches(2);
    victim.child.kill("SIGKILL");
    await victim.exited;
    await survivor.batches(3);
    survivor.child.disconnect();
    expect(await survivor.exited).toBe(0);

    const resumed = await agents[0].agent.kpartyResumeAnchoring({});
    expect(resumed.credentials).toBe(0);
    expect(resumed.batches).toBeLessThanOrEqual(1); // 0 or 1 by where the SIGKILL lands (random by design)
    const records = await agents[1].agent.kpartyListIssuedCredentials({ issuer: orgC.did });
    const indexes = records.map((r) => r.statusIndex).sort((a, b) => a - b);
    expect(indexes).toEqual(range(records.length));
    // five reported batches, plus the victim's third when the kill landed after recording it
    expect(records.length - before).toBeGreaterThanOrEqual(5 * BATCH);
    expect(records.filter((r) => r.anchoredBlock === null)).toEqual([]);
    for (const { reported } of children) {
      for (const batch of reported) {
        expect(batch).toEqual(range(BATCH).map((i) => (batch[0] as number) + i));
        expect(batch.every((i) => indexes.includes(i))).toBe(true);
      }
    }
  });
});
