/**
 * A round-robin HTTP load balancer on 127.0.0.1 for `npm run replicas` (what nginx or HAProxy
 * does in front of gateway replicas, docs/deployment.md), in a few dozen lines of node:http.
 *
 * Each request goes to the next upstream in turn, with `X-Forwarded-For` extended by the client
 * socket's address and the upstream's name in the response header `x-kparty-replica`. An
 * upstream that refuses the connection (the request never reached it) is skipped and the next
 * one tried, as nginx's `proxy_next_upstream error` does; once a request has been sent, a lost
 * answer is a 502 `upstream_unavailable` (a POST is not retried: it may have been acted on).
 */
import { Agent, createServer, type IncomingMessage, request, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

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

  function forward(req: IncomingMessage, res: ServerResponse, body: Buffer, tried: number) {
    const target = targets[((next++ % targets.length) + targets.length) % targets.length] as Upstream;
    const forwardedFor = [req.headers["x-forwarded-for"], req.socket.remoteAddress]
      .filter(Boolean)
      .join(", ");
    const upstream = request(
      new URL(req.url ?? "/", target.url),
      {
        method: req.method,
        headers: { ...req.headers, "x-forwarded-for": forwardedFor, "content-length": String(body.length) },
        agent,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, { ...answer.headers, "x-kparty-replica": target.name });
        answer.pipe(res);
      },
    );
    upstream.on("error", (error: NodeJS.ErrnoException) => {
      if (res.headersSent) return void res.destroy();
      // refused: nothing reached that upstream, so the next may have it
      if (error.code === "ECONNREFUSED" && tried + 1 < targets.length)
        return forward(req, res, body, tried + 1);
      const bytes = JSON.stringify({
        error: { code: "upstream_unavailable", message: "no answer from the replica" },
      });
      res.writeHead(502, { "content-type": "application/json", "x-kparty-replica": target.name });
      res.end(bytes);
    });
    upstream.end(body);
  }

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => forward(req, res, Buffer.concat(chunks), 0));
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
