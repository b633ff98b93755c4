import { createServer, connect as netConnect, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createChainClient,
  createProvider,
  createRegistryWatcher,
  type RegistryEvent,
} from "../src/chain/index.ts";
import { KPartyError } from "../src/errors/index.ts";
import { createStatusCache } from "../src/gateway/status-cache.ts";
import { issue } from "./fixtures/issue.ts";
import { createWorld, type KPartyWorld } from "./fixtures/kparty.ts";

/**
 * Revocation pushed, not polled: the event watcher subscribes to the registries' logs over the
 * Hardhat node's WebSocket (`eth_subscribe`) and reads the chain when one is pushed; when the
 * socket drops it polls again. The socket goes through a loopback relay this test can cut.
 * While the subscription is live the watcher's timer polls only every 10 minutes here, so an
 * event delivered then came through the push path.
 */
let world: KPartyWorld;

/** A TCP relay to the node's port whose connections can be cut, and new ones refused. */
async function startRelay(
  target: URL,
): Promise<{ url: string; cut(): Promise<void>; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = netConnect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => undefined);
      s.on("close", () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  const close = () => new Promise<void>((r) => server.close(() => r()));
  return {
    url: `ws://127.0.0.1:${port}`,
    async cut() {
      const closing = close(); // refuse new connections, then drop the open ones
      for (const s of sockets) s.destroy();
      await closing;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      if (server.listening) await close();
    },
  };
}

beforeAll(async () => {
  world = await createWorld();
});

afterAll(async () => {
  await world?.close();
});

describe("the event watcher on a WebSocket", () => {
  it("applies a revocation pushed over the socket, and polls again once the socket drops", async () => {
    const relay = await startRelay(new URL(world.chain.url));
    const events: RegistryEvent[] = [];
    const watcher = createRegistryWatcher(
      createChainClient({ provider: world.chain.provider, deployment: world.deployment }),
      {
        now: Date.now,
        pollingIntervalMs: 100,
        pushUrl: relay.url,
        pushHeartbeatMs: 600_000,
        fromBlock: await world.chain.provider.getBlockNumber(),
      },
    );
    watcher.onEvent((e) => events.push(e));
    try {
      await expect.poll(() => watcher.pushed, { timeout: 10_000, interval: 20 }).toBe(true);
      const [first, second] = [await issue(world.orgA, world.alice), await issue(world.orgA, world.alice)];
      const revokedAt = (block: number) =>
        events.find((e) => e.name === "CredentialRevoked" && e.blockNumber === block);
      const pushed = await world.orgA.handle.agent.kpartyRevokeCredential({
        credentialId: first.credentialId,
      });
      await expect
        .poll(() => revokedAt(pushed.blockNumber)?.blockNumber, { timeout: 5_000, interval: 10 })
        .toBe(pushed.blockNumber);
      expect(watcher.pushed).toBe(true); // the timer has not polled since the socket came up
      expect(watcher.syncedBlock).toBe(pushed.blockNumber);

      await relay.cut();
      await expect.poll(() => watcher.pushed, { timeout: 5_000, interval: 20 }).toBe(false);
      const polled = await world.orgA.handle.agent.kpartyRevokeCredential({
        credentialId: second.credentialId,
      });
      await expect
        .poll(() => revokedAt(polled.blockNumber)?.blockNumber, { timeout: 5_000, interval: 10 })
        .toBe(polled.blockNumber);
      expect(watcher.pushed).toBe(false); // delivered by polling: the relay refuses new sockets
    } finally {
      watcher.stop();
      await relay.close();
    }
  });

  it("hints a pushed event to onHint at once, before (and without) any poll delivering it", async () => {
    const relay = await startRelay(new URL(world.chain.url));
    // the feed polls a node that is not there: nothing reaches onEvent, only the push path works
    const dead = createProvider("http://127.0.0.1:1", world.deployment.chainId, { timeoutMs: 200 });
    const hinted: RegistryEvent[] = [];
    const polled: RegistryEvent[] = [];
    const watcher = createRegistryWatcher(
      createChainClient({ provider: dead, deployment: world.deployment }),
      {
        now: Date.now,
        pollingIntervalMs: 100,
        pushUrl: relay.url,
        fromBlock: await world.chain.provider.getBlockNumber(),
      },
    );
    watcher.onEvent((e) => polled.push(e));
    watcher.onHint?.((e) => hinted.push(e));
    try {
      await expect.poll(() => watcher.pushed, { timeout: 10_000, interval: 20 }).toBe(true);
      const cred = await issue(world.orgA, world.alice);
      const revoked = await world.orgA.handle.agent.kpartyRevokeCredential({
        credentialId: cred.credentialId,
      });
      await expect
        .poll(() => hinted.find((e) => e.name === "CredentialRevoked")?.blockNumber, {
          timeout: 5_000,
          interval: 10,
        })
        .toBe(revoked.blockNumber);
      expect(polled).toEqual([]);
    } finally {
      watcher.stop();
      dead.destroy();
      await relay.close();
    }
  });

  it("denies a pushed revocation or suspension at once with the node unreachable for reads and polls; a pushed reinstatement grants nothing", async () => {
    const ws = await startRelay(new URL(world.chain.url));
    const http = await startRelay(new URL(world.chain.url));
    // the watcher polls and the cache reads through `http`, which the test cuts once both are warm
    const relayed = createProvider(http.url.replace(/^ws/, "http"), world.deployment.chainId, {
      timeoutMs: 500,
    });
    const client = createChainClient({ provider: relayed, deployment: world.deployment });
    const watcher = createRegistryWatcher(client, {
      now: Date.now,
      pushUrl: ws.url,
      fromBlock: await world.chain.provider.getBlockNumber(),
    });
    const states = createStatusCache({ chain: client, watcher, now: Date.now, maxStalenessMs: 60_000 });
    const [revoked, suspended] = [await issue(world.orgA, world.alice), await issue(world.orgA, world.alice)];
    const keyOf = (c: typeof revoked) => ({
      anchorKey: c.credentialId,
      issuer: world.orgA.account,
      revocationIndex: c.statusIndex,
      suspensionIndex: c.statusIndex,
    });
    try {
      await expect.poll(() => watcher.pushed, { timeout: 10_000, interval: 20 }).toBe(true);
      const synced = await world.chain.provider.getBlockNumber();
      await expect.poll(() => watcher.syncedBlock, { timeout: 5_000, interval: 10 }).toBe(synced);
      const before = [await states.get(keyOf(revoked)), await states.get(keyOf(suspended))];
      expect(before.map((s) => [s.revoked, s.suspended])).toEqual([
        [false, false],
        [false, false],
      ]);
      await http.cut();
      await world.orgA.handle.agent.kpartyRevokeCredential({ credentialId: revoked.credentialId });
      await world.orgA.handle.agent.kpartySuspendCredential({ credentialId: suspended.credentialId });
      await expect
        .poll(
          async () => [
            (await states.get(keyOf(revoked))).revoked,
            (await states.get(keyOf(suspended))).suspended,
          ],
          {
            timeout: 5_000,
            interval: 10,
          },
        )
        .toEqual([true, true]);
      expect(watcher.syncedBlock).toBe(synced); // no poll has read the chain since
      expect(await states.get(keyOf(revoked))).toEqual({ ...before[0], revoked: true });
      // the reinstatement is pushed too: it drops the entry, and the read it needs cannot reach the node
      await world.orgA.handle.agent.kpartyReinstateCredential({ credentialId: suspended.credentialId });
      const seen: unknown[] = [];
      const look = () =>
        states.get(keyOf(suspended)).then(
          (s) => (s.suspended ? "suspended" : "granted"),
          (error: unknown) => (error instanceof KPartyError ? error.code : error),
        );
      await expect
        .poll(async () => seen[seen.push(await look()) - 1], { timeout: 5_000, interval: 10 })
        .toBe("registry_unavailable");
      expect(seen.filter((v) => v !== "suspended" && v !== "registry_unavailable")).toEqual([]);
    } finally {
      watcher.stop();
      relayed.destroy();
      await ws.close();
      await http.close();
    }
  });

  it("refuses a push URL that is not ws:// or wss://", () => {
    expect(() =>
      createRegistryWatcher(
        createChainClient({ provider: world.chain.provider, deployment: world.deployment }),
        {
          now: Date.now,
          pushUrl: "http://127.0.0.1:8545",
        },
      ),
    ).toThrow(new TypeError("the push URL must be ws:// or wss://, got http://127.0.0.1:8545"));
  });
});
