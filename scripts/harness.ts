/**
 * What the benchmark and the load test share: a local chain with a consortium and holders,
 * a gateway in its own process (scripts/gateway-process.ts) spoken to over IPC, percentiles.
 * Everything started is registered in `cleanups`, which the caller runs in reverse order.
 */
import { type ChildProcess, fork } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { Agent, request } from "node:http";
import { createConnection, type Socket } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { JsonRpcProvider } from "ethers";
import { createProvider, type Deployment } from "../src/chain/index.ts";
import {
  bootstrapConsortium,
  type ConsortiumMember,
  createParticipant,
  type LocalChain,
  type Participant,
  startHardhatNode,
} from "../src/devnet/index.ts";
import { childEnv } from "../src/util/child-env.ts";
import { gatewayStartSettings } from "../src/util/gateway-memory.ts";
import { sizeThreadPool } from "../src/util/thread-pool.ts";

export type Cleanups = (() => Promise<unknown>)[];

export const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length
    ? (sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number)
    : 0;
};

export const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * A lean HTTP client for load: node:http over a keep-alive pool of up to `connections`
 * sockets, all kept open between requests. Much cheaper per request than `fetch`, which
 * matters when the load generator shares the machine with what it measures. Resolves with
 * the status (0 when no answer came within `timeoutMs`) and the error code of a refusal.
 */
export function createHttpClient(options: { connections: number; timeoutMs: number }) {
  const agent = new Agent({
    keepAlive: true,
    maxSockets: options.connections,
    maxFreeSockets: options.connections,
  });
  return function send(
    url: string,
    init: { method?: string; headers?: Record<string, string>; body?: string } = {},
  ): Promise<{ status: number; code: string | null; body: Buffer }> {
    return new Promise((resolve) => {
      const none = { status: 0, code: null, body: Buffer.alloc(0) };
      const req = request(
        url,
        { method: init.method ?? "GET", headers: init.headers, agent, timeout: options.timeoutMs },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", () => resolve(none));
          res.on("end", () => {
            const status = res.statusCode ?? 0;
            const body = Buffer.concat(chunks);
            let code: string | null = null;
            if (status !== 200) {
              try {
                code = (JSON.parse(body.toString()) as { error?: { code?: string } }).error?.code ?? null;
              } catch {
                // not JSON
              }
            }
            resolve({ status, code, body });
          });
        },
      );
      req.on("timeout", () => req.destroy());
      req.on("error", () => resolve(none));
      req.end(init.body);
    });
  };
}

/**
 * The leanest client for measured requests: `connections` keep-alive TCP sockets to one
 * HTTP/1.1 server, one request in flight on each, each request written as bytes prepared in
 * advance (see {@link requestBytes}) and its response read up to its Content-Length. On the
 * machine it measures, the load generator competes with the gateway for the cores: this costs
 * it several times less CPU per request than node:http. Resolves with the status (0 when the
 * connection failed, timed out, or the response had no Content-Length).
 */
export function createLeanClient(url: string, options: { connections: number; timeoutMs: number }) {
  const { hostname, port } = new URL(url);
  type Done = (response: { status: number; body: Buffer }) => void;
  interface Connection {
    socket: Socket;
    done: Done | null;
    chunks: Buffer[];
    timer: NodeJS.Timeout | null;
  }
  const idle: Connection[] = [];
  const queue: { bytes: Buffer; done: Done }[] = [];
  let open = 0;
  const failed = { status: 0, body: Buffer.alloc(0) };

  function finish(c: Connection, response: { status: number; body: Buffer }, keep: boolean) {
    const done = c.done;
    if (c.timer) clearTimeout(c.timer);
    c.done = null;
    c.timer = null;
    c.chunks = [];
    if (!keep) c.socket.destroy();
    done?.(response);
    if (keep) release(c);
  }

  function onData(c: Connection, chunk: Buffer) {
    c.chunks.push(chunk);
    const data = c.chunks.length === 1 ? chunk : Buffer.concat(c.chunks);
    c.chunks = [data];
    const headEnd = data.indexOf("\r\n\r\n");
    if (headEnd < 0) return;
    const head = data.subarray(0, headEnd).toString("latin1");
    const length = /\r\ncontent-length: *(\d+)/i.exec(head);
    if (!length) return finish(c, failed, false);
    const end = headEnd + 4 + Number(length[1]);
    if (data.length < end) return;
    const status = Number(head.slice(9, 12));
    finish(c, { status, body: data.subarray(headEnd + 4, end) }, !/\r\nconnection: *close/i.test(head));
  }

  function connect(): Connection {
    const socket = createConnection({ host: hostname, port: Number(port) });
    socket.setNoDelay(true);
    const c: Connection = { socket, done: null, chunks: [], timer: null };
    socket.on("data", (chunk: Buffer) => onData(c, chunk));
    const lost = () => {
      open -= 1;
      // a socket the server closed while idle (its keep-alive timeout) must not be handed out again
      const at = idle.indexOf(c);
      if (at >= 0) idle.splice(at, 1);
      if (c.done) finish(c, failed, false);
    };
    socket.once("close", lost);
    socket.on("error", () => socket.destroy());
    open += 1;
    return c;
  }

  function start(c: Connection, bytes: Buffer, done: Done) {
    c.done = done;
    c.timer = setTimeout(() => finish(c, failed, false), options.timeoutMs);
    c.socket.write(bytes);
  }

  function release(c: Connection) {
    const next = queue.shift();
    if (next) start(c, next.bytes, next.done);
    else idle.push(c);
  }

  return {
    send(bytes: Buffer): Promise<{ status: number; body: Buffer }> {
      return new Promise((done) => {
        const c = idle.pop() ?? (open < options.connections ? connect() : null);
        if (c) start(c, bytes, done);
        else queue.push({ bytes, done });
      });
    },
    /** Sockets open (as this side has seen them: a socket the server closed counts until its close event). */
    get connections() {
      return open;
    },
    close() {
      for (const c of idle.splice(0)) c.socket.destroy();
    },
  };
}

/** An HTTP/1.1 keep-alive request to `url`, as the bytes {@link createLeanClient} sends. */
export function requestBytes(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Buffer {
  const { host, pathname, search } = new URL(url);
  const body = init.body === undefined ? null : Buffer.from(init.body);
  const headers = { host, connection: "keep-alive", ...init.headers };
  if (body) Object.assign(headers, { "content-length": String(body.length) });
  const head = `${init.method ?? "GET"} ${pathname}${search} HTTP/1.1\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("")}\r\n`;
  return body ? Buffer.concat([Buffer.from(head), body]) : Buffer.from(head);
}

/**
 * When the answer of the node carrying a transaction receipt first reached `provider` (the
 * issuer's) since the last `reset`, as `performance.now()`: the moment the issuer has the receipt, before ethers and
 * the agent decode it. NaN until then; `reset` forgets it. Installed for `run`, then removed.
 */
export async function withReceiptClock<T>(
  provider: JsonRpcProvider,
  run: (clock: { at(): number; reset(): void }) => Promise<T>,
): Promise<T> {
  let at = Number.NaN;
  const send = provider._send;
  provider._send = async function (this: JsonRpcProvider, payload) {
    const answers = await send.call(this, payload);
    const asked = Array.isArray(payload) ? payload : [payload];
    // the first receipt counts: a later read of it (a confirmation check) is not when it was there
    if (
      Number.isNaN(at) &&
      asked.some((p) => p.method === "eth_getTransactionReceipt") &&
      answers.some((a) => "result" in a && a.result)
    )
      at = performance.now();
    return answers;
  };
  try {
    return await run({ at: () => at, reset: () => (at = Number.NaN) });
  } finally {
    provider._send = send;
  }
}

/** Sends `{type}` to the gateway process and resolves with its answer of the same type. */
export function ask<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve) => {
    const onMessage = (m: { type: string } & T) => {
      if (m.type === type) {
        child.off("message", onMessage);
        resolve(m);
      }
    };
    child.on("message", onMessage);
    child.send({ type });
  });
}

export interface HarnessWorld {
  node: LocalChain;
  provider: JsonRpcProvider;
  deployment: Deployment;
  issuer: ConsortiumMember;
  holders: Participant[];
  passphrase: string;
}

/** `hardhat node` on 127.0.0.1, a two-member consortium (quorum 1) and `holders` participants. */
export async function startWorld(dir: string, holders: number, cleanups: Cleanups): Promise<HarnessWorld> {
  const node = await startHardhatNode();
  cleanups.push(() => node.stop());
  const provider = createProvider(node.url, node.chainId);
  cleanups.push(async () => provider.destroy());
  const passphrase = "harness passphrase";
  const { deployment, members } = await bootstrapConsortium({
    provider,
    funder: await provider.getSigner(0),
    dataDir: join(dir, "members"),
    passphrase,
    members: ["Org A", "Org B"],
    quorum: 1,
  });
  for (const m of members) cleanups.push(() => m.handle.close());
  const list: Participant[] = [];
  for (let i = 0; i < holders; i++) {
    const p = await createParticipant({
      provider,
      deployment,
      dataDir: join(dir, `holder-${i}`),
      passphrase,
    });
    cleanups.push(() => p.handle.close());
    list.push(p);
  }
  return { node, provider, deployment, issuer: members[0] as ConsortiumMember, holders: list, passphrase };
}

/** A gateway in its own process over `world`'s chain; resolves once it listens. */
export async function startGatewayChild(params: {
  world: HarnessWorld;
  dir: string;
  domain: string;
  cleanups: Cleanups;
  config?: Record<string, unknown>;
}): Promise<{ child: ChildProcess; url: string }> {
  const modelsDir = join(params.dir, "models");
  await mkdir(modelsDir, { recursive: true });
  // a kparty process that needs no secret: this process's environment without them
  const env: NodeJS.ProcessEnv = childEnv({
    program: "kparty",
    set: {
      KPARTY_GATEWAY_CONFIG: JSON.stringify({
        rpcUrl: params.world.node.url,
        deployment: params.world.deployment,
        modelsDir,
        dbFile: join(params.dir, "gw", "gateway.sqlite"),
        domain: params.domain,
        ...params.config,
      }),
    },
  });
  sizeThreadPool(env); // libuv's thread pool as the kparty command sizes it, unless set
  const memory = gatewayStartSettings(env, []); // and its memory settings, unless set
  const child = fork(fileURLToPath(new URL("./gateway-process.ts", import.meta.url)), [], {
    // TypeScript run by Node's own type stripping, as `kparty gateway serve` runs it (no tsx:
    // its transforms and source maps would add some 15 MB to the heap each collection marks)
    execArgv: ["--disable-warning=ExperimentalWarning", ...memory.execArgv],
    env: { ...env, ...memory.env },
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
  params.cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.send({ type: "stop" });
      await new Promise((r) => setTimeout(r, 300));
      child.kill("SIGKILL");
    }
  });
  const { url } = await ask<{ url: string }>(child, "ready");
  return { child, url };
}

/** Runs `main`, then every cleanup (in reverse), and exits 0 only if `main` resolved true. */
export async function runScript(
  name: string,
  main: () => Promise<boolean>,
  cleanups: Cleanups,
): Promise<never> {
  let ok = false;
  try {
    ok = await main();
  } catch (error) {
    process.stderr.write(`${name} failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  } finally {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch {
        // keep stopping the rest
      }
    }
  }
  process.exit(ok ? 0 : 1);
}
