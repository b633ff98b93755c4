/**
 * A gateway in its own process, for the benchmark and the fault tests (not the production
 * entry point, which is the CLI's job): configuration as JSON in KPARTY_GATEWAY_CONFIG;
 * reports over IPC when it listens, how many JSON-RPC calls its provider made while serving
 * requests (the event watcher polls through a separate provider), its resident memory, its
 * live heap after a full collection (with the sizes of its caches), its CPU time (all threads, and its main thread's alone), how long the syncs of its audit log took
 * and how many threads libuv's pool has.
 */
import fs, { readFileSync } from "node:fs";
import { open, writeFile } from "node:fs/promises";
import { Session } from "node:inspector";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createKPartyAgent } from "../agent/index.ts";
import { createChainClient, createProvider, type Deployment } from "../src/chain/index.ts";
import { buildGateway, openGatewayDatabase } from "../src/gateway/index.ts";
import { FileModelStore } from "../src/models/index.ts";
import { openPostgresState } from "../src/state/index.ts";

const config = JSON.parse(process.env.KPARTY_GATEWAY_CONFIG ?? "{}") as {
  rpcUrl: string;
  deployment: Deployment;
  modelsDir: string;
  dbFile: string;
  domain: string;
  /**
   * Lift the per-client limits, the default per-credential limit (the load comes from one
   * client) and load shedding (the benchmark measures capacity, not shedding).
   */
  unlimited?: boolean;
  /** Passed to buildGateway when set (after `unlimited`). */
  maxInFlight?: number;
  maxEventLoopDelayMs?: number;
  challengeTtlSeconds?: number;
  verifyThreads?: number;
  /** The token binding (default: the gateway's, dpop). */
  tokenBinding?: "dpop" | "bearer";
  /**
   * The secret the token keys are stored encrypted under (the fault tests restart the process
   * and need its tokens to survive); none for the benchmark: a key in memory.
   */
  tokenKeySecret?: string;
  /** State on this PostgreSQL database instead of the embedded `dbFile` (needs `tokenKeySecret`). */
  databaseUrl?: string;
  /** A ws:// JSON-RPC URL the event watcher takes pushed registry logs from (`eventPushUrl`). */
  eventPushUrl?: string;
};
const provider = createProvider(config.rpcUrl, config.deployment.chainId);
let rpcCalls = 0;
const send = provider._send.bind(provider);
provider._send = async (payload) => {
  rpcCalls += Array.isArray(payload) ? payload.length : 1;
  return send(payload);
};
const verifier = await createKPartyAgent({
  role: "verifier",
  chain: { provider, deployment: config.deployment },
});
const state = config.databaseUrl ? await openPostgresState({ url: config.databaseUrl }) : null;
const db = state ? null : openGatewayDatabase(config.dbFile);
// The audit log syncs its write-ahead log on the event loop (fs.fdatasyncSync) or, while the
// disk is slow, on libuv's thread pool (FileHandle.datasync): each sync is timed from its start
// until the event loop sees it end (what a request waiting for it sees).
let syncMs: number[] = [];
let loopSyncs = 0;
const syncEnded = (started: number, onLoop: boolean) => {
  syncMs.push(performance.now() - started);
  if (onLoop) loopSyncs += 1;
};
{
  const fdatasyncSync = fs.fdatasyncSync;
  fs.fdatasyncSync = (fd) => {
    const started = performance.now();
    try {
      fdatasyncSync(fd);
    } finally {
      syncEnded(started, true);
    }
  };
}
{
  const probe = await open(state ? fileURLToPath(import.meta.url) : config.dbFile, "r");
  const prototype = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
  await probe.close();
  const datasync = prototype.datasync;
  prototype.datasync = async function (this: unknown) {
    const started = performance.now();
    try {
      return await datasync.call(this);
    } finally {
      syncEnded(started, false);
    }
  };
}
const app = await buildGateway({
  agent: verifier.agent,
  chain: createChainClient({ provider, deployment: config.deployment }),
  models: new FileModelStore(config.modelsDir),
  ...(state ? { state } : { db: db as NonNullable<typeof db> }),
  ...(config.eventPushUrl ? { eventPushUrl: config.eventPushUrl } : {}),
  domain: config.domain,
  ...(config.tokenKeySecret ? { tokenKeySecret: config.tokenKeySecret } : {}),
  ...(config.unlimited
    ? {
        challengesPerMinute: 1e9,
        verificationsPerMinute: 1e9,
        defaultRequestsPerMinute: 1e9,
        maxInFlight: 1e9,
        maxEventLoopDelayMs: 1e9,
      }
    : {}),
  ...(config.maxInFlight ? { maxInFlight: config.maxInFlight } : {}),
  ...(config.maxEventLoopDelayMs ? { maxEventLoopDelayMs: config.maxEventLoopDelayMs } : {}),
  ...(config.challengeTtlSeconds ? { challengeTtlSeconds: config.challengeTtlSeconds } : {}),
  ...(config.verifyThreads ? { verifyThreads: config.verifyThreads } : {}),
  ...(config.tokenBinding ? { tokenBinding: config.tokenBinding } : {}),
  // the watcher polls through its own provider, so request-time RPC calls are counted alone
  watcherChain: createChainClient({
    provider: createProvider(config.rpcUrl, config.deployment.chainId),
    deployment: config.deployment,
  }),
});
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
const url = await app.listen({ host: "127.0.0.1", port: 0 });
// KPARTY_BENCH_PROF=dir: a CPU profile of this process's main thread between "profile-start"
// and "profile-stop" (the benchmark profiles its c64 run), written to dir.
const profileDir = process.env.KPARTY_BENCH_PROF;
const profiler = profileDir ? new Session() : null;
profiler?.connect();
const post = (method: string) =>
  new Promise<Record<string, unknown>>((resolve, reject) =>
    profiler?.post(method, (error, result) =>
      error ? reject(error) : resolve((result ?? {}) as Record<string, unknown>),
    ),
  );
async function profile(type: "profile-start" | "profile-stop") {
  if (type === "profile-start") {
    await post("Profiler.enable");
    await post("Profiler.start");
  } else {
    const { profile } = (await post("Profiler.stop")) as { profile: unknown };
    await writeFile(join(profileDir as string, `gateway-${Date.now()}.cpuprofile`), JSON.stringify(profile));
  }
  process.send?.({ type });
}
/** What `read` makes of this process's threads in /proc (Linux), or null where it cannot be read. */
function fromProc<T>(read: (task: string) => T): T | null {
  try {
    return read("/proc/self/task");
  } catch {
    return null;
  }
}
/**
 * CPU time of the main thread (the event loop) alone (in clock ticks of 10 ms): the part of a
 * token's work that one thread has to carry.
 */
const mainThreadCpuMs = () =>
  fromProc((task) => {
    const stat = readFileSync(`${task}/${process.pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  });
/**
 * Time the main thread has spent runnable but waiting for a core (schedstat, in ms): on a
 * machine whose cores are all busy, the event loop's share of the queue.
 */
const mainThreadWaitMs = () =>
  fromProc((task) => {
    const ns = Number(readFileSync(`${task}/${process.pid}/schedstat`, "utf8").split(" ")[1]);
    return Number.isFinite(ns) ? ns / 1e6 : null;
  });
/** Threads in libuv's pool (Linux names them libuv-worker). */
const threadPoolThreads = () =>
  fromProc(
    (task) =>
      fs
        .readdirSync(task)
        .filter((tid) => readFileSync(`${task}/${tid}/comm`, "utf8").trim() === "libuv-worker").length,
  );
process.on("message", (message: { type: string }) => {
  if ((message.type === "profile-start" || message.type === "profile-stop") && profiler)
    void profile(message.type);
  if (message.type === "rpc") process.send?.({ type: "rpc", count: rpcCalls });
  if (message.type === "syncs") {
    process.send?.({ type: "syncs", ms: syncMs, onLoop: loopSyncs });
    syncMs = [];
    loopSyncs = 0;
  }
  if (message.type === "rss") process.send?.({ type: "rss", bytes: process.memoryUsage().rss });
  if (message.type === "heap") {
    // the live heap: after a full collection (gc exposed on demand, not a start-up flag)
    setFlagsFromString("--expose-gc");
    (runInNewContext("gc") as () => void)();
    const bytes = process.memoryUsage().heapUsed;
    process.send?.({ type: "heap", bytes, caches: app.kpartyCacheSizes() });
  }
  if (message.type === "pool") process.send?.({ type: "pool", threads: threadPoolThreads() });
  if (message.type === "cpu") {
    const { user, system } = process.cpuUsage(); // every thread of the process
    process.send?.({
      type: "cpu",
      ms: (user + system) / 1000,
      mainMs: mainThreadCpuMs(),
      mainWaitMs: mainThreadWaitMs(),
    });
  }
  if (message.type === "lag") {
    process.send?.({ type: "lag", maxMs: loopDelay.max / 1e6 });
    loopDelay.reset();
  }
  if (message.type === "synced") process.send?.({ type: "synced", block: app.kpartySyncedBlock() });
  if (message.type === "stop") stop();
});
// A parent that dies (or lets go of this process) takes the gateway with it: the IPC channel
// closes, the gateway closes (its audit log synced) and the process exits.
let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  void app
    .close()
    .then(() => state?.close())
    .then(
      () => process.exit(0),
      () => process.exit(1),
    );
}
process.once("disconnect", stop);
process.send?.({ type: "ready", url });
