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
import { generateKeyPairSync } from "node:crypto";
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

async function main(): Promise<boolean> {
  const dir = await mkdtemp(join(tmpdir(), "kparty-load-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));

  log("chain, consortium, 16 participants…");
  const world = await startWorld(dir, HOLDERS + 1, cleanups);
  const { issuer } = world;
  const holders = world.holders.slice(0, HOLDERS);
  const coordinator = world.holders[HOLDERS] as Participant;
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
  const proofHeader = (target: string) => ({
    dpop: createDpopProof({ key: proofKey, htm: "POST", htu: target }),
  });
  const synced = async () => (await ask<{ block: number }>(child, "synced")).block;
  const waitSynced = async (block: number) => {
    while ((await synced()) < block) await sleep(2);
    return performance.now();
  };

  log("credentials and access tokens…");
  const issued = await issuer.handle.agent.kpartyIssueCredentials({
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
  const presentation = async (k: number) => {
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
  };
  const coordinatorToken = (await gw.token(await presentation(HOLDERS))).access_token;
  await gw.register({ id: MODEL, description: "load test", shape: [101] }, coordinatorToken);
  const tokens: string[] = [];
  for (let k = 0; k < HOLDERS; k++) tokens.push((await gw.token(await presentation(k))).access_token);

  const revoke = (k: number) =>
    issuer.handle.agent.kpartyRevokeCredential({
      credentialId: (issued[k] as IssuedCredential).credentialId,
    });
  await revoke(PRE_REVOKED);
  const suspension = await issuer.handle.agent.kpartySuspendCredential({
    credentialId: (issued[PRE_SUSPENDED] as IssuedCredential).credentialId,
  });
  await waitSynced(suspension.blockNumber);

  // DPoP-bound tokens (the gateway's default): every request with a fresh proof, made as it is sent
  const read = (k: number) => () =>
    send(`${url}/models/${MODEL}`, {
      headers: gw.authHeaders("GET", `${url}/models/${MODEL}`, tokens[k] as string),
    });
  const tokenBodies: { k: number; body: string }[] = [];
  const tokenRequest = (body: string) => () =>
    send(`${url}/auth/token`, {
      method: "POST",
      headers: { "content-type": "application/json", ...proofHeader(`${url}/auth/token`) },
      body,
    });

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
  const capacity = done / ((performance.now() - capacityStart) / 1000);
  const target = Math.round(capacity * 2);
  const poolSize = Math.min(SIZES.poolMax, Math.ceil(target * SIZES.seconds * TOKEN_SHARE));
  log(`capacity ${round(capacity)} requests/s; offering ${target}/s for ${SIZES.seconds} s`);
  log(`signing ${poolSize} fresh presentations for the token share…`);
  for (let i = 0; i < poolSize; i++) {
    const k = i % HOLDERS;
    tokenBodies.push({ k, body: JSON.stringify({ presentation: await presentation(k) }) });
  }

  log("open loop…");
  const outcomes: Outcome[] = [];
  const inFlight = new Set<Promise<void>>();
  const revocations: { k: number; block: number; receiptAt: number; seenAt: number }[] = [];
  let rssMax = 0;
  const lags: { maxMs: number }[] = [];
  let sampling = true;
  await ask(child, "lag");
  const sampler = (async () => {
    while (sampling) {
      rssMax = Math.max(rssMax, (await ask<{ bytes: number }>(child, "rss")).bytes);
      const { maxMs } = await ask<{ maxMs: number }>(child, "lag");
      lags.push({ maxMs });
      await sleep(250);
    }
  })();
  const started = performance.now();
  const end = started + SIZES.seconds * 1000;
  const revokers = DURING.map((k, i) =>
    (async () => {
      await sleep(((i + 1) * SIZES.seconds * 1000) / (DURING.length + 1));
      const change = await revoke(k);
      const receiptAt = performance.now();
      const seenAt = await waitSynced(change.blockNumber);
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
      const p = (entry ? tokenRequest(entry.body)() : read(k)()).then((r) => {
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
  sampling = false;
  await sampler;

  log("checking every grant against the chain…");
  const client = createChainClient({ provider: world.provider, deployment: world.deployment });
  const onChain = await Promise.all(
    issued.slice(0, HOLDERS).map((c) =>
      getCredentialState(client, {
        anchorKey: c.anchor.root ?? c.credentialId,
        issuer: issuer.account,
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
  const granted = outcomes.filter((o) => o.status === 200);
  const wrong = granted.filter((o) => {
    if (o.credential === PRE_REVOKED || o.credential === PRE_SUSPENDED) return true;
    const r = revocations.find((x) => x.k === o.credential);
    return r !== undefined && o.sentAt > r.seenAt;
  });
  const inWindow = granted.filter((o) => {
    const r = revocations.find((x) => x.k === o.credential);
    return r !== undefined && o.sentAt > r.receiptAt && o.sentAt <= r.seenAt;
  });
  const shed429 = outcomes.filter((o) => o.status === 429).length;
  const shed503 = outcomes.filter((o) => o.status === 503).length;
  const admitted = outcomes.filter((o) => o.status !== 0 && o.status !== 429 && o.status !== 503);
  const errors5xx = outcomes.filter((o) => o.status >= 500 && o.status !== 503).length;
  const noAnswer = outcomes.filter((o) => o.status === 0).length;
  const health = await send(`${url}/healthz`, {});
  const codes: Record<string, number> = {};
  for (const o of outcomes) {
    const key = `${o.status}${o.code ? ` ${o.code}` : ""}`;
    codes[key] = (codes[key] ?? 0) + 1;
  }

  const result = {
    quick,
    duration_s: round(duration, 2),
    capacity_rps: round(capacity),
    offered_rps: round(outcomes.length / duration),
    admitted_rps: round(admitted.length / duration),
    shed_429: shed429,
    shed_503: shed503,
    errors_5xx: errors5xx,
    no_answer: noAnswer,
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
    rss_mb_max: round(rssMax / 1024 / 1024),
    gateway_loop_delay_max_ms: round(Math.max(0, ...lags.map((l) => l.maxMs))),
    requests: outcomes.length,
    token_requests: outcomes.filter((o) => o.kind === "token").length,
    granted: granted.length,
    wrong_grants: wrong.length,
    granted_between_receipt_and_applied: inWindow.length,
    revocation_applied_ms: revocations.map((r) => round(r.seenAt - r.receiptAt)),
    gateway_alive_after: health.status === 200,
    statuses: codes,
  };
  const rows: [string, string][] = [
    ["capacity (closed loop, 32 clients)", `${result.capacity_rps} requests/s`],
    ["offered (open loop)", `${result.offered_rps} requests/s for ${result.duration_s} s`],
    [
      "admitted",
      `${result.admitted_rps} requests/s, p50 ${result.p50_admitted_ms} ms, p99 ${result.p99_admitted_ms} ms`,
    ],
    ["shed", `${shed429} × 429, ${shed503} × 503`],
    ["5xx other than 503 / no answer", `${errors5xx} / ${noAnswer}`],
    ["granted / wrong grants", `${granted.length} / ${wrong.length}`],
    ["revocations applied after receipt", `${result.revocation_applied_ms.join(", ")} ms`],
    ["gateway RSS max", `${result.rss_mb_max} MB`],
    ["gateway event-loop delay max", `${result.gateway_loop_delay_max_ms} ms`],
    ["gateway answers /healthz after", `${result.gateway_alive_after}`],
    [
      "statuses",
      Object.entries(codes)
        .map(([k, v]) => `${k}: ${v}`)
        .join(", "),
    ],
  ];
  const width = Math.max(...rows.map((r) => r[0].length));
  process.stdout.write(`\nkparty load${quick ? " (quick)" : ""}\n\n`);
  for (const [k, v] of rows) process.stdout.write(`  ${k.padEnd(width)}  ${v}\n`);
  await writeResultFile(quick ? "load --quick" : "load", result);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  return wrong.length === 0 && errors5xx === 0 && noAnswer === 0 && result.gateway_alive_after;
}

await runScript("load", main, cleanups);
