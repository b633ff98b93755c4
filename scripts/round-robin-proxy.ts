/**
 * A round-robin HTTP load balancer on 127.0.0.1 for `npm run replicas` (what nginx or HAProxy
 * does in front of gateway replicas, docs/deployment.md), in a few dozen lines of node:http.
 *
 * Each request goes to the next upstream in turn, with `X-Forwarded-For` extended by the client
 * socket's address and the upstream's name in the response header `x-kparty-replica`. An
 * upstream that refuses the connection (the request never reached it) is skipped and the next
 * one tried, as nginx's `proxy_next_upstream error` does, and an upstream whose connection
 * failed is passed over for 2 s (`max_fails=1 fail_timeout=2s`); once a request has been sent,
 * a lost answer is a 502 `upstream_unavailable` (not retried: it may have been acted on).
 */
import { Agent, createServer, type IncomingMessage, request, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** How long an upstream whose connection failed is passed over (while another is up). */
const FAIL_TIMEOUT_MS = 2_000;

export interface Upstream {
  name: string;
  url: string;
}

export interface RoundRobinProxy {
  url: string;
  /** Replaces the upstream named `name` (a restarted replica on a new port). */
  replace(upstream: Upstream): void;
  close(): Promise<void>;
}

/** Starts the proxy on a free loopback port in front of `upstreams`. */
export async function startRoundRobinProxy(upstreams: Upstream[]): Promise<RoundRobinProxy> {
  const targets = [...upstreams];
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  let next = 0;

  /** Upstreams that failed a connection, until when they are skipped (nginx's max_fails=1 fail_timeout). */
  const failedUntil = new Map<string, number>();
  function pick(tried: Set<string>): Upstream | undefined {
    const now = performance.now();
    const order = Array.from(
      { length: targets.length },
      (_, i) => targets[(next + i) % targets.length] as Upstream,
    );
    next = (next + 1) % targets.length;
    const untried = order.filter((t) => !tried.has(t.name));
    return untried.find((t) => (failedUntil.get(t.name) ?? 0) <= now) ?? untried[0];
  }

  function forward(req: IncomingMessage, res: ServerResponse, body: Buffer, tried: Set<string>) {
    const target = pick(tried) as Upstream;
    tried.add(target.name);
    const forwardedFor = [req.headers["x-forwarded-for"], req.socket.remoteAddress]
      .filter(Boolean)
      .join(", ");
    const headers = {
      ...req.headers,
      "x-forwarded-for": forwardedFor,
      "content-length": String(body.length),
    };
    delete headers["transfer-encoding"];
    const upstream = request(
      new URL(req.url ?? "/", target.url),
      { method: req.method, headers, agent },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, { ...answer.headers, "x-kparty-replica": target.name });
        answer.pipe(res);
      },
    );
    upstream.on("error", (error: NodeJS.ErrnoException) => {
      failedUntil.set(target.name, performance.now() + FAIL_TIMEOUT_MS);
      if (res.headersSent) return void res.destroy();
      // refused: nothing reached that upstream, so another may have it
      if (error.code === "ECONNREFUSED" && tried.size < targets.length) return forward(req, res, body, tried);
      const message = `no answer from the replica (${error.code ?? "error"})`;
      res.writeHead(502, { "content-type": "application/json", "x-kparty-replica": target.name });
      res.end(JSON.stringify({ error: { code: "upstream_unavailable", message } }));
    });
    upstream.end(body);
  }

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => forward(req, res, Buffer.concat(chunks), new Set()));
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    replace(upstream) {
      const i = targets.findIndex((t) => t.name === upstream.name);
      if (i < 0) targets.push(upstream);
      else targets[i] = upstream;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      agent.destroy();
    },
  };
}
