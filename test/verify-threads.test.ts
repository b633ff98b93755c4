import { join } from "node:path";
import { type SigningKey, Wallet } from "ethers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sign } from "./fixtures/es256k.ts";
import { getJson, postJson, tamperPayload, tokenAt } from "./fixtures/http.ts";
import { issue } from "./fixtures/issue.ts";
import { b64 } from "./fixtures/jwt.ts";
import {
  createWorld,
  DOMAIN,
  type KPartyWorld,
  MODEL_ID,
  startGateway,
  type TestGateway,
} from "./fixtures/kparty.ts";

/**
 * The gateway with a recovery thread (`verifyThreads: 1`) decides the same. The participants'
 * DIDs carry public keys, so a valid signature is checked against them; a tampered one fails
 * that check, and the key behind it is then recovered on the worker and matches no address.
 * A holder whose DID is an Ethereum address needs its key recovered to be granted at all:
 * on the worker here, on the event loop in the world's own gateway.
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

describe("a holder whose DID names only an Ethereum address", () => {
  /** A presentation of `jwt` signed by `key` for `did:ethr:0x7a69:<its address>`, at gateway `base`. */
  async function presentAsAddress(
    base: string,
    key: { address: string; signingKey: SigningKey },
    jwt: string,
  ) {
    const nonce = (await postJson(base, "/auth/challenge", {})).body.challenge as string;
    const payload = {
      iss: `did:ethr:0x7a69:${key.address}`,
      aud: DOMAIN,
      nonce,
      vp: {
        "@context": ["https://www.w3.org/2018/credentials/v1"],
        type: ["VerifiablePresentation"],
        verifiableCredential: [jwt],
      },
    };
    const input = `${b64({ alg: "ES256K", typ: "JWT" })}.${b64(payload)}`;
    const signature = Buffer.from(sign(key.signingKey, input)).toString("base64url");
    return postJson(base, "/auth/token", { presentation: `${input}.${signature}` });
  }

  it("is granted once its public key is recovered, by a recovery thread or the event loop, and again from the learned key", async () => {
    const key = Wallet.createRandom();
    const cred = await world.orgA.handle.agent.kpartyIssueCredential({
      issuer: world.orgA.did,
      subject: `did:ethr:0x7a69:${key.address}`,
      role: "participant",
      models: [MODEL_ID],
      actions: ["model:read"],
    });
    for (const base of [gw.base, world.base]) {
      for (let i = 0; i < 2; i++) {
        const res = await presentAsAddress(base, key, cred.jwt);
        expect([res.status, res.body.holder, res.body.scope]).toEqual([
          200,
          `did:ethr:0x7a69:${key.address}`,
          "model:read",
        ]);
      }
    }
    const impostor = await presentAsAddress(gw.base, Wallet.createRandom(), cred.jwt);
    expect([impostor.status, impostor.body.error?.code]).toEqual([401, "holder_mismatch"]);
  });
});
