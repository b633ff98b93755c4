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
import { MODEL_ID, PASSPHRASE, startGateway, type TestGateway } from "./fixtures/kparty.ts";
import { startProxy, type TcpProxy } from "./fixtures/proxy.ts";
import { type RpcRecorder, startRpcRecorder } from "./fixtures/rpc-recorder.ts";

/**
 * The chain node itself — a real `hardhat node` process — is SIGKILLed while a participant
 * keeps using the gateway, then started again on the same port and brought back to the same
 * state by replaying every transaction it had accepted (as a node re-syncs). A revocation is
 * made before the gateway can see the node again. The gateway is never restarted.
 */

let dir: string;
let node: LocalChain;
let restarted: LocalChain | undefined;
let recorder: RpcRecorder;
let link: TcpProxy;
let gw: TestGateway;
let orgA: ConsortiumMember;
let alice: Participant;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

describe("the chain node is killed mid-traffic and restarted", () => {
  it("refuses with 503 during the outage, recovers without a gateway restart, and honours a revocation made before it reconnected", async () => {
    const cred = await issue(orgA, alice, { models: [MODEL_ID], actions: ["model:read"] });
    const token = (await tokenAt(gw.base, alice, cred.jwt)).body.access_token as string;
    await waitForSync(gw.base, cred.anchor.blockNumber);
    const height = await blockNumberAt(node.url);

    // traffic: alice reads the model every 20 ms for the whole test
    const seen: { at: number; status: number; code: string | null }[] = [];
    let running = true;
    const traffic = (async () => {
      while (running) {
        const r = await getJson(gw.base, `/models/${MODEL_ID}`, token);
        seen.push({ at: Date.now(), status: r.status, code: r.body.error?.code ?? null });
        await sleep(20);
      }
    })();
    await sleep(200);

    const killedAt = Date.now();
    await node.kill();
    await sleep(1_300); // past the token freshness (0.5 s) and live-token staleness (1 s) bounds
    const refused = await tokenAt(gw.base, alice, cred.jwt);
    expect([refused.status, refused.body.error?.code]).toEqual([503, "registry_unavailable"]);
    const live = await getJson(gw.base, `/models/${MODEL_ID}`, token);
    expect([live.status, live.body.error?.code]).toEqual([503, "registry_unavailable"]);

    // the node comes back empty on the same port; the gateway is kept off it until it has re-synced
    await link.cut();
    restarted = await startHardhatNode({ port: Number(new URL(node.url).port) });
    await recorder.replay(restarted.url);
    const replayedHeight = await blockNumberAt(restarted.url);
    expect(replayedHeight).toBe(height);
    // revoked while the gateway still cannot see the chain
    const revocation = await orgA.handle.agent.kpartyRevokeCredential({ credentialId: cred.credentialId });
    expect(revocation.blockNumber).toBe(height + 1);

    await link.restore();
    await waitForSync(gw.base, revocation.blockNumber, 10_000);
    const appliedAt = Date.now();
    await sleep(100);
    running = false;
    await traffic;

    const after = await getJson(gw.base, `/models/${MODEL_ID}`, token);
    expect([after.status, after.body.error?.code]).toEqual([403, "revoked"]);
    const again = await tokenAt(gw.base, alice, cred.jwt);
    expect([again.status, again.body.error?.code]).toEqual([403, "revoked"]);
    const fresh = await issue(orgA, alice, { models: [MODEL_ID], actions: ["model:read"] });
    expect((await tokenAt(gw.base, alice, fresh.jwt)).status).toBe(200);

    // what the participant saw: 200 before the crash and within the staleness bound, then 503,
    // then (once the gateway applied the revocation) 403 revoked; never a grant after that
    const kinds = new Set(seen.map((s) => `${s.status} ${s.code ?? ""}`.trim()));
    expect([...kinds].sort()).toEqual(["200", "403 revoked", "503 registry_unavailable"]);
    expect(seen.filter((s) => s.status === 200 && s.at > killedAt + 1_100)).toEqual([]);
    expect(seen.filter((s) => s.at > appliedAt).every((s) => s.status === 403)).toBe(true);
    expect(seen.some((s) => s.status === 503)).toBe(true);
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
