import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createProvider } from "../src/chain/index.ts";
import { getJson, settlePolls, tokenAt, waitForSync } from "./fixtures/http.ts";
import { issue } from "./fixtures/issue.ts";
import {
  createWorld,
  type KPartyWorld,
  MODEL_ID,
  startGateway,
  type TestGateway,
} from "./fixtures/kparty.ts";
import { startProxy, type TcpProxy } from "./fixtures/proxy.ts";

let world: KPartyWorld;
let proxy: TcpProxy;
let gw: TestGateway;
const clock = { offsetMs: 0 };
const provider = () => createProvider(proxy.url, 31337, { timeoutMs: 1_000 });

beforeAll(async () => {
  world = await createWorld();
  proxy = await startProxy(world.chain.url);
  gw = await startGateway({
    chain: world.chain,
    deployment: world.deployment,
    models: world.models,
    dir: join(world.dir, "proxied-gateway"),
    provider: provider(),
    clock,
    maxStalenessMs: 1_000,
    tokenFreshnessMs: 500,
  });
});
afterAll(async () => {
  await gw?.close();
  await proxy?.close();
  await world?.close();
});

describe("the gateway's link to the chain fails and comes back", () => {
  it("fails closed past the staleness bound, then honours what happened during the outage without a restart", async () => {
    const cred = await issue(world.orgA, world.alice);
    const token = (await tokenAt(gw.base, world.alice, cred.jwt)).body.access_token as string;
    await waitForSync(gw.base, cred.anchor.blockNumber); // no event in flight while the state is cached
    expect((await getJson(gw.base, `/models/${MODEL_ID}`, token)).status).toBe(200);

    await proxy.cut();
    await settlePolls();
    clock.offsetMs = 501; // past this gateway's token freshness bound (500 ms), within its staleness bound (1 s)
    const refusedToken = await tokenAt(gw.base, world.alice, cred.jwt);
    expect([refusedToken.status, refusedToken.body.error?.code]).toEqual([503, "registry_unavailable"]);
    expect((await getJson(gw.base, `/models/${MODEL_ID}`, token)).status).toBe(200); // within the bound

    // revoked while the gateway cannot see the chain
    const revocation = await world.orgA.handle.agent.kpartyRevokeCredential({
      credentialId: cred.credentialId,
    });
    clock.offsetMs = 1_001;
    const stale = await getJson(gw.base, `/models/${MODEL_ID}`, token);
    expect([stale.status, stale.body.error.code]).toEqual([503, "registry_unavailable"]);

    await proxy.restore();
    await waitForSync(gw.base, revocation.blockNumber);
    const afterOutage = await getJson(gw.base, `/models/${MODEL_ID}`, token);
    expect([afterOutage.status, afterOutage.body.error.code]).toEqual([403, "revoked"]);
    const fresh = await issue(world.orgA, world.alice);
    expect((await tokenAt(gw.base, world.alice, fresh.jwt)).status).toBe(200);
  });
});
