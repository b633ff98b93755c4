/**
 * Throwaway driver (issue 29): POST /auth/token at c64 on an embedded and a PostgreSQL gateway
 * process over one world, alternating, `RUNS` times; prints req/s, the ratio, CPU ms per grant
 * (gateway; PostgreSQL's processes) and the statements per grant (pg_stat_statements) of the
 * last run. `npx tsx scripts/pgperf-driver.ts` (RUNS, WARMUP, N from the environment). Not a
 * test and not the bench: the machine's load makes each figure noisy; compare ratios.
 */
import { generateKeyPairSync } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import type { IssuedCredential } from "../agent/index.ts";
import type { Participant } from "../src/devnet/index.ts";
import { startLocalPostgres } from "../src/devnet/postgres.ts";
import { createDpopProof, createGatewayClient } from "../src/gateway/index.ts";
import {
  ask,
  type Cleanups,
  createLeanClient,
  requestBytes,
  runScript,
  startGatewayChild,
  startWorld,
} from "./harness.ts";

/** CPU ms of the processes whose parent is `ppid` (the postmaster's backends) plus itself. */
function childrenCpuMs(ppid: number): number {
  let ticks = 0;
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(d) === ppid || Number(f[1]) === ppid) ticks += Number(f[11]) + Number(f[12]);
    } catch {}
  }
  return ticks * 10;
}
function machine() {
  const t = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "")
    .trim()
    .split(/\s+/)
    .slice(1, 9)
    .map(Number);
  return { total: t.reduce((a, b) => a + b, 0), idle: (t[3] ?? 0) + (t[4] ?? 0) };
}

const RUNS = Number(process.env.RUNS ?? 3);
const WARMUP = Number(process.env.WARMUP ?? 1500);
const N = Number(process.env.N ?? 2000);
const DOMAIN = "gateway.bench.kparty";
const log = (t: string) => process.stderr.write(`${t}\n`);
const cleanups: Cleanups = [];

async function load(tasks: (() => Promise<number>)[], concurrency: number) {
  let next = 0;
  let failures = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < tasks.length) {
        const task = tasks[next++] as () => Promise<number>;
        if ((await task()) !== 200) failures++;
      }
    }),
  );
  return { perSecond: tasks.length / ((performance.now() - started) / 1000), failures };
}

async function main() {
  const dir = await mkdtemp(join(tmpdir(), "kparty-pgperf-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const postgres = await startLocalPostgres();
  if ("unavailable" in postgres) throw new Error(postgres.unavailable);
  cleanups.push(() => postgres.stop());
  const dbUrl = await postgres.database();
  {
    const c = new pg.Client({ connectionString: dbUrl });
    await c.connect();
    await c.query("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'");
    await c.end();
    await postgres.stop({ keepData: true });
    await postgres.start();
  }
  const admin = new pg.Client({ connectionString: dbUrl });
  await admin.connect();
  cleanups.push(() => admin.end());
  await admin.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
  const dataDir = (await admin.query("SHOW data_directory")).rows[0].data_directory as string;
  const postmaster = Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
  log("world…");
  const world = await startWorld(dir, 8, cleanups);
  const { issuer, holders } = world;
  const batch = await issuer.handle.agent.kpartyIssueCredentials({
    issuer: issuer.did,
    credentials: holders.map((h) => ({
      subject: h.did,
      role: "participant" as const,
      models: ["m"],
      actions: ["model:read" as const],
    })),
  });
  const common = { unlimited: true, verifyThreads: 0, tokenBinding: "bearer", challengeTtlSeconds: 3600 };
  const gateways = {
    embedded: await startGatewayChild({
      world,
      dir: join(dir, "e"),
      domain: DOMAIN,
      cleanups,
      config: common,
    }),
    postgres: await startGatewayChild({
      world,
      dir: join(dir, "p"),
      domain: DOMAIN,
      cleanups,
      config: { ...common, databaseUrl: dbUrl, tokenKeySecret: "bench passphrase" },
    }),
  };
  const proofKey = generateKeyPairSync("ed25519").privateKey;
  const setups = Object.fromEntries(
    Object.entries(gateways).map(([name, { url }]) => {
      const gw = createGatewayClient(url);
      const lean = createLeanClient(url, { connections: 256, timeoutMs: 30_000 });
      cleanups.push(async () => lean.close());
      return [name, { url, gw, lean }];
    }),
  ) as Record<
    "embedded" | "postgres",
    { url: string; gw: ReturnType<typeof createGatewayClient>; lean: ReturnType<typeof createLeanClient> }
  >;
  let k = 0;
  const tasks = async (name: "embedded" | "postgres", n: number) => {
    const { url, gw, lean } = setups[name];
    const out: (() => Promise<number>)[] = [];
    for (let i = 0; i < n; i++, k++) {
      const holder = holders[k % holders.length] as Participant;
      const cred = batch[k % holders.length] as IssuedCredential;
      const presentation = await holder.handle.agent.kpartyCreatePresentation({
        holder: holder.did,
        credentials: [cred.jwt],
        challenge: (await gw.challenge()).challenge,
        domain: DOMAIN,
        anchorProof: cred.anchor.proof,
      });
      const body = JSON.stringify({ presentation });
      out.push(async () => {
        const dpop = createDpopProof({ key: proofKey, htm: "POST", htu: `${url}/auth/token` });
        const bytes = requestBytes(`${url}/auth/token`, {
          method: "POST",
          headers: { "content-type": "application/json", dpop },
          body,
        });
        return (await lean.send(bytes)).status;
      });
    }
    return out;
  };
  log("presentations…");
  const prepared = {
    embedded: [] as (() => Promise<number>)[][],
    postgres: [] as (() => Promise<number>)[][],
  };
  for (const name of ["embedded", "postgres"] as const) {
    prepared[name].push(await tasks(name, holders.length + WARMUP));
    for (let r = 0; r < RUNS; r++) prepared[name].push(await tasks(name, N));
  }
  for (const name of ["embedded", "postgres"] as const) {
    const warm = prepared[name][0] as (() => Promise<number>)[];
    for (let i = 0; i < holders.length; i++) await (warm[i] as () => Promise<number>)();
    await load(warm.slice(holders.length), 64);
  }
  const results: { embedded: number; postgres: number; ratio: number }[] = [];
  for (let r = 1; r <= RUNS; r++) {
    type Cpu = { ms: number };
    const cpu0 = await ask<Cpu>(gateways.embedded.child, "cpu");
    const m0 = machine();
    const e = await load(prepared.embedded[r] as (() => Promise<number>)[], 64);
    const cpu1 = await ask<Cpu>(gateways.embedded.child, "cpu");
    const m1 = machine();
    const pcpu0 = await ask<Cpu>(gateways.postgres.child, "cpu");
    const pg0 = childrenCpuMs(postmaster);
    await admin.query("SELECT pg_stat_statements_reset()");
    const before = (
      await admin.query(
        "SELECT xact_commit::int AS c FROM pg_stat_database WHERE datname = current_database()",
      )
    ).rows[0].c;
    const p = await load(prepared.postgres[r] as (() => Promise<number>)[], 64);
    const pcpu1 = await ask<Cpu>(gateways.postgres.child, "cpu");
    const pg1 = childrenCpuMs(postmaster);
    const m2 = machine();
    log(
      `cpu ms/grant: embedded gw ${((cpu1.ms - cpu0.ms) / N).toFixed(2)}, idle ${((100 * (m1.idle - m0.idle)) / (m1.total - m0.total)).toFixed(0)}%; postgres gw ${((pcpu1.ms - pcpu0.ms) / N).toFixed(2)} server ${((pg1 - pg0) / N).toFixed(2)}, idle ${((100 * (m2.idle - m1.idle)) / (m2.total - m1.total)).toFixed(0)}%`,
    );
    const after = (
      await admin.query(
        "SELECT xact_commit::int AS c FROM pg_stat_database WHERE datname = current_database()",
      )
    ).rows[0].c;
    const row = {
      embedded: Math.round(e.perSecond),
      postgres: Math.round(p.perSecond),
      ratio: Math.round((p.perSecond / e.perSecond) * 1000) / 1000,
    };
    results.push(row);
    log(`run ${r}: ${JSON.stringify(row)} failures ${e.failures}/${p.failures}`);
    if (r === RUNS) {
      const { rows } = await admin.query(
        "SELECT calls::int, round(total_exec_time::numeric, 1) AS ms, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS q FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY calls DESC LIMIT 25",
      );
      let total = 0;
      for (const s of rows) {
        if (String(s.q).includes("pg_stat")) continue;
        total += s.calls;
        log(`${(s.calls / N).toFixed(3)}/grant ${s.ms} ms  ${s.q}`);
      }
      log(
        `statements per grant ${(total / N).toFixed(3)}; transactions per grant ${((after - before) / N).toFixed(3)}`,
      );
    }
  }
  const ratios = results.map((r) => r.ratio);
  process.stdout.write(`${JSON.stringify({ results, ratios })}\n`);
  return true;
}

await runScript("pgperf-driver", main, cleanups);
