import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createProvider } from "../src/chain/index.ts";
import { getJson, requestToken, tokenAt, waitForSync } from "./fixtures/http.ts";
import { issue } from "./fixtures/issue.ts";
import {
  createWorld,
  type KPartyWorld,
  MODEL_ID,
  startGateway,
  type TestGateway,
} from "./fixtures/kparty.ts";

/**
 * Chain reorganisations, made with Hardhat's `evm_snapshot` / `evm_revert` on the test chain:
 * revert to a snapshot, then mine other blocks at the same numbers (a new branch). The
 * gateways follow the chain through their event watchers (polling every 100 ms).
 */

let world: KPartyWorld;
const extra: TestGateway[] = [];

beforeAll(async () => {
  world = await createWorld();
});

afterAll(async () => {
  for (const gw of extra) await gw.close();
  await world?.close();
});

const rpc = (method: string, params: unknown[] = []) => world.chain.provider.send(method, params);
const head = async () => Number(await rpc("eth_blockNumber"));
/** Mines `n` empty blocks. */
async function mine(n: number) {
  for (let i = 0; i < n; i++) await rpc("evm_mine");
}
/** Status and error code of a model read with `token` at `base`. */
async function verdict(base: string, token: string): Promise<[number, string | null]> {
  const res = await getJson(base, `/models/${MODEL_ID}`, token);
  return [res.status, res.body.error?.code ?? null];
}
/**
 * The usual bound for a registry event to take effect: a few polling intervals (100 ms each).
 * `expect.poll` asks again until then, and fails past it.
 */
const WITHIN_POLLS = { timeout: 2_000, interval: 20 };

async function extraGateway(params: {
  confirmations?: number;
  reorgWindowBlocks?: number;
  rpcCounter?: { calls: number };
}) {
  let provider: ReturnType<typeof createProvider> | undefined;
  const counter = params.rpcCounter;
  if (counter) {
    // the same node, with its eth_call requests (credential state reads) counted
    provider = createProvider(world.chain.url, 31337, { timeoutMs: 2_000 });
    const send = provider._send.bind(provider);
    provider._send = async (payload) => {
      for (const p of [payload].flat()) if (p.method === "eth_call") counter.calls++;
      return send(payload);
    };
  }
  const gw = await startGateway({
    chain: world.chain,
    deployment: world.deployment,
    models: world.models,
    dir: join(world.dir, `gateway-${extra.length}`),
    ...(provider ? { provider } : {}),
    ...(params.confirmations !== undefined ? { confirmations: params.confirmations } : {}),
    ...(params.reorgWindowBlocks !== undefined ? { reorgWindowBlocks: params.reorgWindowBlocks } : {}),
  });
  extra.push(gw);
  return gw;
}

describe("a chain reorganisation", () => {
  it("a revocation mined on a new branch, at a block number the gateway had already passed, is enforced within a few polls", async () => {
    const cred = await issue(world.orgA, world.alice, { actions: ["model:read"] });
    await waitForSync(world.base, cred.anchor.blockNumber);
    const granted = await requestToken(world, world.alice, cred.jwt);
    expect(granted.status).toBe(200);
    const token = granted.body.access_token as string;
    expect(await verdict(world.base, token)).toEqual([200, null]); // its state is now cached

    const fork = await head();
    const snapshot = await rpc("evm_snapshot");
    await mine(3); // branch A: fork+1 … fork+3, nothing happens
    await waitForSync(world.base, fork + 3);
    expect(await rpc("evm_revert", [snapshot])).toBe(true);
    // branch B: the revocation lands in block fork+1, a number the watcher has already passed
    const revocation = await world.orgA.handle.agent.kpartyRevokeCredential({
      credentialId: cred.credentialId,
    });
    expect(revocation.blockNumber).toBe(fork + 1);

    await expect.poll(() => verdict(world.base, token), WITHIN_POLLS).toEqual([403, "revoked"]);
    expect(world.app.kpartySyncedBlock()).toBe(fork + 1);
    const again = await requestToken(world, world.alice, cred.jwt);
    expect([again.status, again.body.error?.code, again.body.access_token]).toEqual([
      403,
      "revoked",
      undefined,
    ]);
  });

  it("a revocation on an abandoned branch stops counting once the chain has moved to another", async () => {
    const cred = await issue(world.orgB, world.alice, { actions: ["model:read"] });
    await waitForSync(world.base, cred.anchor.blockNumber);
    const token = (await requestToken(world, world.alice, cred.jwt)).body.access_token as string;
    expect(await verdict(world.base, token)).toEqual([200, null]);

    const snapshot = await rpc("evm_snapshot");
    const revocation = await world.orgB.handle.agent.kpartyRevokeCredential({
      credentialId: cred.credentialId,
    });
    await waitForSync(world.base, revocation.blockNumber);
    expect(await verdict(world.base, token)).toEqual([403, "revoked"]);
    expect(await rpc("evm_revert", [snapshot])).toBe(true);
    await mine(1); // another block at the revocation's number, without it

    await expect.poll(() => verdict(world.base, token), WITHIN_POLLS).toEqual([200, null]);
    // the watcher re-applied the new branch's block at that number, and the grant stays
    await waitForSync(world.base, revocation.blockNumber);
    expect(world.app.kpartySyncedBlock()).toBe(revocation.blockNumber);
    expect(await verdict(world.base, token)).toEqual([200, null]);
  });

  it("a fork deeper than the watcher's window drops every cached state, and each is read again", async () => {
    const counter = { calls: 0 };
    const gw = await extraGateway({ reorgWindowBlocks: 2, rpcCounter: counter });
    const revoked = await issue(world.orgA, world.alice, { actions: ["model:read"] });
    const untouched = await issue(world.orgB, world.mallory, { actions: ["model:read"] });
    await waitForSync(gw.base, untouched.anchor.blockNumber);
    const tokenA = (await tokenAt(gw.base, world.alice, revoked.jwt)).body.access_token as string;
    const tokenB = (await tokenAt(gw.base, world.mallory, untouched.jwt)).body.access_token as string;
    expect(await verdict(gw.base, tokenA)).toEqual([200, null]);
    expect(await verdict(gw.base, tokenB)).toEqual([200, null]);
    let calls = counter.calls;
    expect(await verdict(gw.base, tokenB)).toEqual([200, null]);
    expect(counter.calls - calls).toBe(0); // served from the cache

    const fork = await head();
    const snapshot = await rpc("evm_snapshot");
    await mine(4); // the window then holds fork+3 and fork+4 only
    await waitForSync(gw.base, fork + 4);
    expect(await rpc("evm_revert", [snapshot])).toBe(true);
    const revocation = await world.orgA.handle.agent.kpartyRevokeCredential({
      credentialId: revoked.credentialId,
    });
    expect(revocation.blockNumber).toBe(fork + 1);

    // the watcher cannot find the common ancestor: it resumes at the new head (the revocation's
    // block, whose event it never delivers) and the cache drops everything, so the chain is read
    await expect.poll(() => verdict(gw.base, tokenA), WITHIN_POLLS).toEqual([403, "revoked"]);
    expect(gw.app.kpartySyncedBlock()).toBe(fork + 1);
    calls = counter.calls;
    expect(await verdict(gw.base, tokenB)).toEqual([200, null]);
    expect(counter.calls - calls).toBe(1); // no event touched it, yet it was dropped and read again
    expect(await verdict(gw.base, tokenB)).toEqual([200, null]);
    expect(counter.calls - calls).toBe(1); // and is cached again
  });
});

describe("a confirmation depth of 2", () => {
  it("applies an anchor and a revocation only once 2 blocks are on top of them", async () => {
    const gw = await extraGateway({ confirmations: 2 });
    const cred = await issue(world.orgA, world.alice, { actions: ["model:read"] });
    const anchored = cred.anchor.blockNumber;
    await waitForSync(gw.base, anchored - 2);
    const early = await tokenAt(gw.base, world.alice, cred.jwt);
    expect([early.status, early.body.error?.code]).toEqual([403, "not_anchored"]);

    await mine(2);
    await waitForSync(gw.base, anchored);
    const granted = await tokenAt(gw.base, world.alice, cred.jwt);
    expect(granted.status).toBe(200);
    const token = granted.body.access_token as string;
    expect(await verdict(gw.base, token)).toEqual([200, null]);

    const revocation = await world.orgA.handle.agent.kpartyRevokeCredential({
      credentialId: cred.credentialId,
    });
    const revokedAt = revocation.blockNumber;
    await waitForSync(gw.base, revokedAt - 2);
    expect(gw.app.kpartySyncedBlock()).toBe(revokedAt - 2);
    expect(await verdict(gw.base, token)).toEqual([200, null]); // 0 blocks on top: not applied
    expect((await tokenAt(gw.base, world.alice, cred.jwt)).status).toBe(200);
    await mine(1);
    await waitForSync(gw.base, revokedAt - 1);
    expect(await verdict(gw.base, token)).toEqual([200, null]); // 1 block on top: not applied

    await mine(1);
    await waitForSync(gw.base, revokedAt);
    expect(await verdict(gw.base, token)).toEqual([403, "revoked"]); // 2 blocks on top: applied
    const refused = await tokenAt(gw.base, world.alice, cred.jwt);
    expect([refused.status, refused.body.error?.code]).toEqual([403, "revoked"]);
  });
});
