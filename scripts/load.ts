/**
 * `npm run load [-- --quick]`: twice the gateway's measured capacity for 60 s (--quick: 8 s),
 * on 127.0.0.1, bounded in time and requests. Starts `hardhat node` and a gateway process,
 * issues credentials to 16 participants, then:
 * 1. measures capacity: a closed loop of 32 clients for a few seconds on the request mix;
 * 2. offers twice that rate as an open loop (requests go out on schedule whatever the answers):
 *    98% authorized model reads with the 16 access tokens, 2% new tokens from fresh
 *    presentations. Four credentials carry a quota (5 requests/s) and get 429s; one was revoked
 *    and one suspended before the run (their live tokens must never be granted); two more are
 *    revoked during the run;
 * 3. checks afterwards, against the chain, that nothing was granted wrongly: no grant for a
 *    credential revoked or suspended before the run, and no grant of a request sent after the
 *    gateway had applied the block of a revocation made during the run.
 * Prints its figures, and as its last line one JSON object (`-- --out <file>` also writes it to
 * a file, see scripts/result-file.ts). Exits 1 on a wrong grant, a 5xx
 * other than a 503 shed, a request that got no answer, or a gateway that did not survive.
 */
import type { ChildProcess } from "node:child_process";
import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { IssuedCredential } from "../agent/index.ts";
import { createChainClient, getCredentialState } from "../src/chain/index.ts";
import type { Participant } from "../src/devnet/index.ts";
import { createDpopProof, createGatewayClient } from "../src/gateway/index.ts";
import {
  ask,
  type Cleanups,
  createHttpClient,
  type HarnessWorld,
  percentile,
  round,
  runScript,
  startGatewayChild,
  startWorld,
} from "./harness.ts";
import { writeResultFile } from "./result-file.ts";

const quick = process.argv.includes("--quick");
const SIZES = quick
  ? { capacitySeconds: 2, seconds: 8, poolMax: 60 }
  : { capacitySeconds: 5, seconds: 60, poolMax: 2_500 };
const HOLDERS = 16;
const QUOTA = { first: 8, count: 4, requestsPerMinute: 300 };
const PRE_REVOKED = 15;
const PRE_SUSPENDED = 14;
const DURING = [12, 13]; // revoked during the run, at 1/3 and 2/3 of it
const TOKEN_SHARE = 0.02;
const TIMEOUT_MS = 10_000;
const MODEL = "load-model";
const DOMAIN = "gateway.load.kparty";
const log = (text: string) => process.stderr.write(`${text}\n`);
const cleanups: Cleanups = [];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Outcome {
  kind: "read" | "token";
  credential: number;
  sentAt: number;
  ms: number;
  /** HTTP status, or 0 when no answer came (timeout, reset). */
  status: number;
  code: string | null;
}

/**
 * Requests go over a pool of keep-alive connections, like a fleet of clients each holding one.
 * The pool is opened before the run (a connection per request would overflow the listen
 * backlog under load into multi-second SYN retries, which measure the kernel, not the
 * gateway), and it is larger than the gateway's in-flight bound so that the queue forms at
 * the gateway, which can shed it, rather than in this process.
 */
const CONNECTIONS = 1024;
const send = createHttpClient({ connections: CONNECTIONS, timeoutMs: TIMEOUT_MS });

type Response = Awaited<ReturnType<typeof send>>;
type Revocation = { k: number; block: number; receiptAt: number; seenAt: number };

/** The running world, the gateway child and what the phases need to talk to it. */
interface Setup {
  world: HarnessWorld;
  holders: Participant[];
  coordinator: Participant;
  child: ChildProcess;
  url: string;
  gw: ReturnType<typeof createGatewayClient>;
  proofKey: KeyObject;
  /** Resolves, with the time, once the gateway has applied the given block. */
  waitSynced: (block: number) => Promise<number>;
}

/** Starts the chain, the consortium, 16 participants and a coordinator, and the gateway process. */
async function startAll(dir: string): Promise<Setup> {
  log("chain, consortium, 16 participants…");
  const world = await startWorld(dir, HOLDERS + 1, cleanups);
  const { child, url } = await startGatewayChild({
    world,
    dir,
    domain: DOMAIN,
    cleanups,
    // one client address sends everything: lift the per-address limits, keep per-credential
    // quotas, and shed with the gateway's default bounds
    config: { unlimited: true, maxInFlight: 256, maxEventLoopDelayMs: 200, challengeTtlSeconds: 600 },
  });
  const proofKey = generateKeyPairSync("ed25519").privateKey;
  const gw = createGatewayClient(url, { dpopKey: proofKey });
  const synced = async () => (await ask<{ block: number }>(child, "synced")).block;
  const waitSynced = async (block: number) => {
    while ((await synced()) < block) await sleep(2);
    return performance.now();
  };
  const holders = world.holders.slice(0, HOLDERS);
  const coordinator = world.holders[HOLDERS] as Participant;
  return { world, holders, coordinator, child, url, gw, proofKey, waitSynced };
}

/** Issues the 16 participants' credentials (four with a quota) and the coordinator's, last, in one batch. */
function issueCredentials({ world, holders, coordinator }: Setup): Promise<IssuedCredential[]> {
  const { issuer } = world;
  return issuer.handle.agent.kpartyIssueCredentials({
    issuer: issuer.did,
    credentials: [
      ...holders.map((h, i) => ({
        subject: h.did,
        role: "participant" as const,
        models: [MODEL],
        actions: ["model:read" as const],
        ...(i >= QUOTA.first && i < QUOTA.first + QUOTA.count
          ? { quota: { requestsPerMinute: QUOTA.requestsPerMinute } }
          : {}),
      })),
      {
        subject: coordinator.did,
        role: "coordinator" as const,
        models: [MODEL],
        actions: ["model:read" as const, "round:aggregate" as const],
      },
    ],
  });
}

/** A fresh presentation of credential k (k = HOLDERS: the coordinator's) on a new challenge. */
async function presentation({ holders, coordinator, gw }: Setup, issued: IssuedCredential[], k: number) {
  const holder = k === HOLDERS ? coordinator : (holders[k] as Participant);
  const credential = issued[k] as IssuedCredential;
  const { challenge } = await gw.challenge();
  return holder.handle.agent.kpartyCreatePresentation({
    holder: holder.did,
    credentials: [credential.jwt],
    challenge,
    domain: DOMAIN,
    anchorProof: credential.anchor.proof,
  });
}

/** Revokes credential k on chain. */
function revoke({ world }: Setup, issued: IssuedCredential[], k: number) {
  return world.issuer.handle.agent.kpartyRevokeCredential({
    credentialId: (issued[k] as IssuedCredential).credentialId,
  });
}

/**
 * Registers the model with the coordinator's token, gets the 16 access tokens, then revokes one
 * credential and suspends another and waits until the gateway has applied both.
 */
async function prepareTokens(setup: Setup, issued: IssuedCredential[]): Promise<string[]> {
  const { gw } = setup;
  const coordinatorToken = (await gw.token(await presentation(setup, issued, HOLDERS))).access_token;
  await gw.register({ id: MODEL, description: "load test", shape: [101] }, coordinatorToken);
  const tokens: string[] = [];
  for (let k = 0; k < HOLDERS; k++)
    tokens.push((await gw.token(await presentation(setup, issued, k))).access_token);
  await revoke(setup, issued, PRE_REVOKED);
  const suspension = await setup.world.issuer.handle.agent.kpartySuspendCredential({
    credentialId: (issued[PRE_SUSPENDED] as IssuedCredential).credentialId,
  });
  await setup.waitSynced(suspension.blockNumber);
  return tokens;
}

/** Opens the connection pool, then runs a closed loop of 32 clients; returns requests/s. */
async function measureCapacity(url: string, read: (k: number) => () => Promise<Response>): Promise<number> {
  log(`opening ${CONNECTIONS} connections…`);
  await Promise.all(Array.from({ length: CONNECTIONS }, () => send(`${url}/.well-known/kparty`, {})));
  log(`capacity: 32 clients for ${SIZES.capacitySeconds} s…`);
  let done = 0;
  const capacityEnd = performance.now() + SIZES.capacitySeconds * 1000;
  const capacityStart = performance.now();
  await Promise.all(
    Array.from({ length: 32 }, async (_, c) => {
      for (let i = c; performance.now() < capacityEnd; i += 32) {
        await read(i % HOLDERS)();
        done++;
      }
    }),
  );
  return done / ((performance.now() - capacityStart) / 1000);
}

/** What the open loop observed: every request's outcome, the revocations made during it, gateway samples. */
interface RunRecord {
  outcomes: Outcome[];
  revocations: Revocation[];
  rssMax: number;
  lags: { maxMs: number }[];
  duration: number;
}

/** Samples the gateway's RSS and event-loop delay every 250 ms; returns `stop`, which resolves to the samples. */
function sampleGateway(child: ChildProcess) {
  const samples = { rssMax: 0, lags: [] as { maxMs: number }[] };
  let sampling = true;
  const done = (async () => {
    while (sampling) {
      samples.rssMax = Math.max(samples.rssMax, (await ask<{ bytes: number }>(child, "rss")).bytes);
      const { maxMs } = await ask<{ maxMs: number }>(child, "lag");
      samples.lags.push({ maxMs });
      await sleep(250);
    }
  })();
  const stop = async () => {
    sampling = false;
    await done;
    return samples;
  };
  return stop;
}

/**
 * The open loop: `target` requests/s for the run's length, a token request from the pool every
 * 1/TOKEN_SHARE requests, reads otherwise; the DURING credentials are revoked on schedule.
 */
async function runOpenLoop(
  setup: Setup,
  issued: IssuedCredential[],
  target: number,
  requests: { read: (k: number) => () => Promise<Response>; tokenBodies: { k: number; body: string }[] },
): Promise<RunRecord> {
  const { read, tokenBodies } = requests;
  log("open loop…");
  const outcomes: Outcome[] = [];
  const inFlight = new Set<Promise<void>>();
  const revocations: Revocation[] = [];
  await ask(setup.child, "lag");
  const stopSampling = sampleGateway(setup.child);
  const started = performance.now();
  const end = started + SIZES.seconds * 1000;
  const revokers = DURING.map((k, i) =>
    (async () => {
      await sleep(((i + 1) * SIZES.seconds * 1000) / (DURING.length + 1));
      const change = await revoke(setup, issued, k);
      const receiptAt = performance.now();
      const seenAt = await setup.waitSynced(change.blockNumber);
      revocations.push({ k, block: change.blockNumber, receiptAt, seenAt });
    })(),
  );
  let sent = 0;
  let pool = 0;
  while (performance.now() < end) {
    const due = Math.floor(((performance.now() - started) / 1000) * target);
    for (; sent < due; sent++) {
      const useToken = pool < tokenBodies.length && sent % Math.round(1 / TOKEN_SHARE) === 0;
      const entry = useToken ? (tokenBodies[pool++] as { k: number; body: string }) : null;
      const k = entry ? entry.k : sent % HOLDERS;
      const sentAt = performance.now();
      const p = (entry ? tokenRequest(setup, entry.body)() : read(k)()).then((r) => {
        outcomes.push({
          kind: entry ? "token" : "read",
          credential: k,
          sentAt,
          ms: performance.now() - sentAt,
          status: r.status,
          code: r.code,
        });
      });
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    }
    await sleep(5);
  }
  const duration = (performance.now() - started) / 1000;
  await Promise.all([...inFlight, ...revokers]);
  const { rssMax, lags } = await stopSampling();
  return { outcomes, revocations, rssMax, lags, duration };
}

/** A request for a new access token with the given presentation body and a fresh DPoP proof. */
function tokenRequest({ url, proofKey }: Setup, body: string) {
  return () =>
    send(`${url}/auth/token`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        dpop: createDpopProof({ key: proofKey, htm: "POST", htu: `${url}/auth/token` }),
      },
      body,
    });
}

/**
 * Checks the chain has exactly the expected revocations and the suspension (throws if not), and
 * sorts the grants: wrong ones, and those in a revocation's window between receipt and applied.
 */
async function checkGrants(setup: Setup, issued: IssuedCredential[], run: RunRecord) {
  log("checking every grant against the chain…");
  const { world } = setup;
  const client = createChainClient({ provider: world.provider, deployment: world.deployment });
  const onChain = await Promise.all(
    issued.slice(0, HOLDERS).map((c) =>
      getCredentialState(client, {
        anchorKey: c.anchor.root ?? c.credentialId,
        issuer: world.issuer.account,
        revocationIndex: c.statusIndex,
        suspensionIndex: c.statusIndex,
      }),
    ),
  );
  const revokedOnChain = onChain.flatMap((s, k) => (s.revoked ? [k] : []));
  const expectedRevoked = [PRE_REVOKED, ...DURING].sort((a, b) => a - b);
  if (JSON.stringify(revokedOnChain) !== JSON.stringify(expectedRevoked)) {
    throw new Error(`revoked on chain: ${revokedOnChain}, expected ${expectedRevoked}`);
  }
  if (!onChain[PRE_SUSPENDED]?.suspended) throw new Error("the suspension is not on chain");
  const granted = run.outcomes.filter((o) => o.status === 200);
  const wrong = granted.filter((o) => {
    if (o.credential === PRE_REVOKED || o.credential === PRE_SUSPENDED) return true;
    const r = run.revocations.find((x) => x.k === o.credential);
    return r !== undefined && o.sentAt > r.seenAt;
  });
  const inWindow = granted.filter((o) => {
    const r = run.revocations.find((x) => x.k === o.credential);
    return r !== undefined && o.sentAt > r.receiptAt && o.sentAt <= r.seenAt;
  });
  return { granted: granted.length, wrong: wrong.length, inWindow: inWindow.length };
}

/** The run's figures as the JSON object printed last. */
function summarize(
  run: RunRecord,
  capacity: number,
  grants: { granted: number; wrong: number; inWindow: number },
  alive: boolean,
) {
  const { outcomes, duration } = run;
  const admitted = outcomes.filter((o) => o.status !== 0 && o.status !== 429 && o.status !== 503);
  const codes: Record<string, number> = {};
  for (const o of outcomes) {
    const key = `${o.status}${o.code ? ` ${o.code}` : ""}`;
    codes[key] = (codes[key] ?? 0) + 1;
  }
  return {
    quick,
    duration_s: round(duration, 2),
    capacity_rps: round(capacity),
    offered_rps: round(outcomes.length / duration),
    admitted_rps: round(admitted.length / duration),
    shed_429: outcomes.filter((o) => o.status === 429).length,
    shed_503: outcomes.filter((o) => o.status === 503).length,
    errors_5xx: outcomes.filter((o) => o.status >= 500 && o.status !== 503).length,
    no_answer: outcomes.filter((o) => o.status === 0).length,
    p99_admitted_ms: round(
      percentile(
        admitted.map((o) => o.ms),
        99,
      ),
      2,
    ),
    p50_admitted_ms: round(
      percentile(
        admitted.map((o) => o.ms),
        50,
      ),
      2,
    ),
    rss_mb_max: round(run.rssMax / 1024 / 1024),
    gateway_loop_delay_max_ms: round(Math.max(0, ...run.lags.map((l) => l.maxMs))),
    requests: outcomes.length,
    token_requests: outcomes.filter((o) => o.kind === "token").length,
    granted: grants.granted,
    wrong_grants: grants.wrong,
    granted_between_receipt_and_applied: grants.inWindow,
    revocation_applied_ms: run.revocations.map((r) => round(r.seenAt - r.receiptAt)),
    gateway_alive_after: alive,
    statuses: codes,
  };
}

/** Prints the figures as a table, then the JSON object as the last line. */
async function printReport(result: ReturnType<typeof summarize>): Promise<void> {
  const rows: [string, string][] = [
    ["capacity (closed loop, 32 clients)", `${result.capacity_rps} requests/s`],
    ["offered (open loop)", `${result.offered_rps} requests/s for ${result.duration_s} s`],
    [
      "admitted",
      `${result.admitted_rps} requests/s, p50 ${result.p50_admitted_ms} ms, p99 ${result.p99_admitted_ms} ms`,
    ],
    ["shed", `${result.shed_429} × 429, ${result.shed_503} × 503`],
    ["5xx other than 503 / no answer", `${result.errors_5xx} / ${result.no_answer}`],
    ["granted / wrong grants", `${result.granted} / ${result.wrong_grants}`],
    ["revocations applied after receipt", `${result.revocation_applied_ms.join(", ")} ms`],
    ["gateway RSS max", `${result.rss_mb_max} MB`],
    ["gateway event-loop delay max", `${result.gateway_loop_delay_max_ms} ms`],
    ["gateway answers /healthz after", `${result.gateway_alive_after}`],
    [
      "statuses",
      Object.entries(result.statuses)
        .map(([k, v]) => `${k}: ${v}`)
        .join(", "),
    ],
  ];
  const width = Math.max(...rows.map((r) => r[0].length));
  process.stdout.write(`\nkparty load${quick ? " (quick)" : ""}\n\n`);
  for (const [k, v] of rows) process.stdout.write(`  ${k.padEnd(width)}  ${v}\n`);
  await writeResultFile(quick ? "load --quick" : "load", result);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

/** Sets up, measures capacity, offers twice that, checks every grant and reports; true when nothing went wrong. */
async function main(): Promise<boolean> {
  const dir = await mkdtemp(join(tmpdir(), "kparty-load-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const setup = await startAll(dir);
  const { url, gw } = setup;

  log("credentials and access tokens…");
  const issued = await issueCredentials(setup);
  const tokens = await prepareTokens(setup, issued);
  // DPoP-bound tokens (the gateway's default): every request with a fresh proof, made as it is sent
  const read = (k: number) => () =>
    send(`${url}/models/${MODEL}`, {
      headers: gw.authHeaders("GET", `${url}/models/${MODEL}`, tokens[k] as string),
    });

  const capacity = await measureCapacity(url, read);
  const target = Math.round(capacity * 2);
  const poolSize = Math.min(SIZES.poolMax, Math.ceil(target * SIZES.seconds * TOKEN_SHARE));
  log(`capacity ${round(capacity)} requests/s; offering ${target}/s for ${SIZES.seconds} s`);
  log(`signing ${poolSize} fresh presentations for the token share…`);
  const tokenBodies: { k: number; body: string }[] = [];
  for (let i = 0; i < poolSize; i++) {
    const k = i % HOLDERS;
    tokenBodies.push({ k, body: JSON.stringify({ presentation: await presentation(setup, issued, k) }) });
  }

  const run = await runOpenLoop(setup, issued, target, { read, tokenBodies });
  const grants = await checkGrants(setup, issued, run);
  const health = await send(`${url}/healthz`, {});
  const result = summarize(run, capacity, grants, health.status === 200);
  await printReport(result);
  return (
    grants.wrong === 0 && result.errors_5xx === 0 && result.no_answer === 0 && result.gateway_alive_after
  );
}

await runScript("load", main, cleanups);
