import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createProvider } from "../src/chain/index.ts";
import {
  bootstrapConsortium,
  type ConsortiumMember,
  createParticipant,
  type LocalChain,
  type Participant,
  startHardhatNode,
} from "../src/devnet/index.ts";
import { FileModelStore } from "../src/models/index.ts";
import type { TestChain } from "./fixtures/chain.ts";
import { getJson, tokenAt, waitForSync } from "./fixtures/http.ts";
import { issue } from "./fixtures/issue.ts";
import { MODEL_ID, PASSPHRASE, startGateway, type TestClock, type TestGateway } from "./fixtures/kparty.ts";
import { startProxy, type TcpProxy } from "./fixtures/proxy.ts";
import { type RpcRecorder, startRpcRecorder } from "./fixtures/rpc-recorder.ts";

/**
 * The chain node itself — a real `hardhat node` process — is SIGKILLed while a participant
 * holds a live token, then started again on the same port and brought back to the same
 * state by replaying every transaction it had accepted (as a node re-syncs). A revocation is
 * made before the gateway can see the node again. The gateway is never restarted. Its clock
 * is frozen and moved by the test, so each answer is exact.
 */

let dir: string;
let node: LocalChain;
let restarted: LocalChain | undefined;
let recorder: RpcRecorder;
let link: TcpProxy;
let gw: TestGateway;
let orgA: ConsortiumMember;
let alice: Participant;
/** The gateway's clock (real time until a test freezes it). */
const clock: TestClock = { offsetMs: 0 };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "kparty-chain-restart-"));
  node = await startHardhatNode();
  recorder = await startRpcRecorder(node.url);
  // members and participants send through the recorder; the gateway reads through a link the test can cut
  const writer = createProvider(recorder.url, 31337, { timeoutMs: 2_000 });
  const { deployment, members } = await bootstrapConsortium({
    provider: writer,
    funder: await writer.getSigner(0),
    dataDir: join(dir, "members"),
    passphrase: PASSPHRASE,
    members: ["Org A"],
    quorum: 1,
  });
  orgA = members[0] as ConsortiumMember;
  alice = await createParticipant({
    provider: writer,
    deployment,
    dataDir: join(dir, "alice"),
    passphrase: PASSPHRASE,
  });
  const models = new FileModelStore(join(dir, "models"));
  await models.register({ id: MODEL_ID, description: "restart test", shape: [4] });
  link = await startProxy(node.url);
  gw = await startGateway({
    chain: { provider: writer } as unknown as TestChain,
    provider: createProvider(link.url, 31337, { timeoutMs: 1_000 }),
    deployment,
    models,
    dir: join(dir, "gateway"),
    maxStalenessMs: 1_000,
    tokenFreshnessMs: 500,
    clock,
  });
});

afterAll(async () => {
  await gw?.close();
  await link?.close();
  await recorder?.close();
  await alice?.handle.close();
  await orgA?.handle.close();
  await restarted?.stop();
  await node?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("the chain node is killed and restarted", () => {
  it("refuses with 503 during the outage, recovers without a gateway restart, and honours a revocation made before it reconnected", async () => {
    // the gateway's clock stands still from here: every sync it makes is at `frozen`, the
    // last one before the outage included (it delivered the credential's anchor)
    const frozen = Date.now();
    clock.atMs = frozen;
    const cred = await issue(orgA, alice, { models: [MODEL_ID], actions: ["model:read"] });
    await waitForSync(gw.base, cred.anchor.blockNumber);
    const token = (await tokenAt(gw.base, alice, cred.jwt)).body.access_token as string;
    const height = await blockNumberAt(node.url);
    const read = async () => {
      const r = await getJson(gw.base, `/models/${MODEL_ID}`, token);
      return [r.status, r.body.error?.code ?? null];
    };
    expect(await read()).toEqual([200, null]);

    // the gateway loses the node (its link cut first, so no poll is in flight), then the node dies
    await link.cut();
    await node.kill();
    clock.atMs = frozen + 501; // past the token freshness bound (0.5 s), within the staleness bound (1 s)
    const refused = await tokenAt(gw.base, alice, cred.jwt);
    expect([refused.status, refused.body.error?.code]).toEqual([503, "registry_unavailable"]);
    expect(await read()).toEqual([200, null]);
    clock.atMs = frozen + 1_000;
    expect(await read()).toEqual([200, null]);
    clock.atMs = frozen + 1_001; // past the staleness bound
    expect(await read()).toEqual([503, "registry_unavailable"]);

    // the node comes back empty on the same port; the gateway is kept off it until it has re-synced
    restarted = await startHardhatNode({ port: Number(new URL(node.url).port) });
    await recorder.replay(restarted.url);
    expect(await blockNumberAt(restarted.url)).toBe(height);
    // revoked while the gateway still cannot see the chain
    const revocation = await orgA.handle.agent.kpartyRevokeCredential({ credentialId: cred.credentialId });
    expect(revocation.blockNumber).toBe(height + 1);
    expect(await read()).toEqual([503, "registry_unavailable"]);

    await link.restore();
    await waitForSync(gw.base, revocation.blockNumber, 10_000);
    expect(await read()).toEqual([403, "revoked"]);
    const again = await tokenAt(gw.base, alice, cred.jwt);
    expect([again.status, again.body.error?.code]).toEqual([403, "revoked"]);
    const fresh = await issue(orgA, alice, { models: [MODEL_ID], actions: ["model:read"] });
    expect((await tokenAt(gw.base, alice, fresh.jwt)).status).toBe(200);
  });
});

async function blockNumberAt(url: string): Promise<number> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_blockNumber", params: [] }),
  });
  return Number(((await res.json()) as { result: string }).result);
}
