import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createLeanClient, requestBytes } from "../scripts/harness.ts";

/**
 * The benchmark's lean HTTP client (scripts/harness.ts) against a real node:http server on
 * loopback: a keep-alive socket the server closes while it is idle is not used again.
 */
describe("the benchmark's lean HTTP client", () => {
  const stops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
  });

  it("answers after the server has closed its idle keep-alive sockets", async () => {
    const server = createServer((_req, res) => {
      res.setHeader("content-type", "text/plain");
      res.end("ok");
    });
    server.keepAliveTimeout = 50;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    stops.push(() => new Promise((resolve) => server.close(() => resolve())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const lean = createLeanClient(url, { connections: 4, timeoutMs: 2_000 });
    stops.push(async () => lean.close());
    const send = async () => {
      const { status, body } = await lean.send(requestBytes(url));
      return [status, body.toString()];
    };
    expect(await Promise.all([send(), send(), send(), send()])).toEqual(Array(4).fill([200, "ok"]));
    expect(lean.connections).toBe(4);
    // every socket closed by the server (its keep-alive timeout) and seen closed here
    while (lean.connections > 0) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(await Promise.all([send(), send(), send(), send()])).toEqual(Array(4).fill([200, "ok"]));
  });
});
