import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getJson, tamperPayload, tokenAt } from "./fixtures/http.ts";
import { issue } from "./fixtures/issue.ts";
import {
  createWorld,
  type KPartyWorld,
  MODEL_ID,
  startGateway,
  type TestGateway,
} from "./fixtures/kparty.ts";

/**
 * The gateway with a recovery thread (`verifyThreads: 1`) decides the same. The participants'
 * DIDs carry public keys, so a valid signature is checked against them; a tampered one fails
 * that check, and the key behind it is then recovered on the worker and matches no address.
 */

let world: KPartyWorld;
let gw: TestGateway;

beforeAll(async () => {
  world = await createWorld();
  gw = await startGateway({
    chain: world.chain,
    deployment: world.deployment,
    models: world.models,
    dir: join(world.dir, "threaded-gateway"),
    verifyThreads: 1,
  });
});
afterAll(async () => {
  await gw?.close();
  await world?.close();
});

describe("public-key recovery on a worker thread", () => {
  it("grants a valid presentation, and the token works", async () => {
    const cred = await issue(world.orgA, world.alice);
    const res = await tokenAt(gw.base, world.alice, cred.jwt);
    expect(res.status).toBe(200);
    expect((await getJson(gw.base, `/models/${MODEL_ID}`, res.body.access_token as string)).status).toBe(200);
  });

  it("refuses a tampered credential and a stolen one with the exact codes", async () => {
    const cred = await issue(world.orgA, world.alice);
    const forged = tamperPayload(cred.jwt, (p) => {
      p.vc.credentialSubject.kParty.models = ["*"];
    });
    const tampered = await tokenAt(gw.base, world.alice, forged);
    expect([tampered.status, tampered.body.error?.code]).toEqual([401, "invalid_signature"]);
    const stolen = await tokenAt(gw.base, world.mallory, cred.jwt);
    expect([stolen.status, stolen.body.error?.code]).toEqual([401, "holder_mismatch"]);
  });
});
