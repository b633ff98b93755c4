import { join } from "node:path";
import { Wallet } from "ethers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKPartyAgent } from "../agent/index.ts";
import { createProvider } from "../src/chain/index.ts";
import { createVerifier } from "../src/gateway/index.ts";
import { type Es256kKey, verifyEs256k } from "../src/gateway/verify/es256k.ts";
import { postJson, presentation, tamperPayload, waitForSync } from "./fixtures/http.ts";
import { issue } from "./fixtures/issue.ts";
import { createWorld, type KPartyWorld, startGateway, type TestGateway } from "./fixtures/kparty.ts";

/**
 * No amplification before authentication (docs/security.md, "Before authentication"): input
 * whose signature does not verify is read for at most once, and what is read for it never
 * enters the caches authentic input relies on. JSON-RPC calls are counted on the provider the
 * gateway's requests use (its event watcher polls through a provider of its own).
 */

let world: KPartyWorld;
const gateways: TestGateway[] = [];
beforeAll(async () => {
  world = await createWorld();
});
afterAll(async () => {
  for (const gw of gateways) await gw.close();
  await world?.close();
});

/** A gateway of its own whose request-time JSON-RPC calls are counted. */
async function countedGateway(cacheBounds?: Record<string, number>) {
  const counter = { calls: 0 };
  const provider = createProvider(world.chain.url, 31337, { timeoutMs: 5_000 });
  const send = provider._send.bind(provider);
  provider._send = async (payload) => {
    counter.calls += [payload].flat().length;
    return send(payload);
  };
  const gw = await startGateway({
    chain: world.chain,
    deployment: world.deployment,
    models: world.models,
    dir: join(world.dir, `amplification-${gateways.length}`),
    provider,
    // cached documents and states are served while the event feed is this fresh: generous, so
    // that a slow test machine does not turn a cache hit into a read
    tokenFreshnessMs: 60_000,
    maxStalenessMs: 60_000,
    watcherProvider: createProvider(world.chain.url, 31337, { timeoutMs: 5_000 }),
    ...(cacheBounds ? { cacheBounds } : {}),
  });
  gateways.push(gw);
  return { gw, counter };
}

const verifyCredential = async (base: string, jwt: string) => {
  const res = await postJson(base, "/credentials/verify", { verifiableCredential: jwt });
  return [res.status, res.body.verified, res.body.errors?.[0]?.code ?? null];
};

/** The same bytes with another signature (a valid structure that does not verify). */
const otherSignature = (jwt: string) => {
  const [h, p, sig] = jwt.split(".") as [string, string, string];
  return `${h}.${p}.${sig.startsWith("A") ? "B" : "A"}${sig.slice(1)}`;
};
/** The credential with another `jti`: another credential id, never anchored, under the original signature. */
const otherId = (jwt: string, n: number) =>
  tamperPayload(jwt, (payload) => {
    payload.jti = `urn:uuid:00000000-0000-4000-8000-${String(n).padStart(12, "0")}`;
  });
/** The credential (or presentation) claimed by an issuer (holder) the chain has never heard of. */
const unknownIssuer = (jwt: string) =>
  tamperPayload(jwt, (payload) => {
    const iss = `did:ethr:0x7a69:${Wallet.createRandom().address}`;
    payload.iss = iss;
    if (payload.vc?.issuer !== undefined) payload.vc.issuer = iss;
    if (payload.vp?.holder !== undefined) payload.vp.holder = iss;
  });

describe("forged input before authentication", () => {
  it("a forged credential posted again and again costs no JSON-RPC call after the first, and enters no shared cache", async () => {
    const { gw, counter } = await countedGateway();
    const cred = await issue(world.orgA, world.alice);
    await waitForSync(gw.base, cred.anchor.blockNumber);
    expect(await verifyCredential(gw.base, cred.jwt)).toEqual([200, true, null]);
    // authentic: its state and its issuer's document as of the anchoring block, in the main segments
    expect(gw.app.kpartyCacheSizes()).toMatchObject({
      credentialStates: 1,
      credentialStatesUnauthenticated: 0,
      credentialStatesIndexed: 1,
      didDocuments: 1,
      didDocumentsUnauthenticated: 0,
      verifiedCredentials: 1,
    });

    const forged = [otherSignature(cred.jwt), otherId(cred.jwt, 1), unknownIssuer(cred.jwt)];
    for (const jwt of forged) {
      expect(await verifyCredential(gw.base, jwt)).toEqual([200, false, "invalid_signature"]);
    }
    const warm = counter.calls;
    for (let round = 0; round < 5; round++) {
      for (const jwt of forged) {
        expect(await verifyCredential(gw.base, jwt)).toEqual([200, false, "invalid_signature"]);
      }
    }
    expect(counter.calls - warm).toBe(0);
    // the other signature needed nothing new (the same credential id and anchoring block); the
    // other id, its state and its issuer's current document; the unknown issuer, both as well
    expect(gw.app.kpartyCacheSizes()).toMatchObject({
      credentialStates: 1,
      credentialStatesUnauthenticated: 2,
      credentialStatesIndexed: 3,
      didDocuments: 1,
      didDocumentsUnauthenticated: 2,
      verifiedCredentials: 1,
    });
  });

  it("a forged presentation posted again and again costs no JSON-RPC call after the first", async () => {
    const { gw, counter } = await countedGateway();
    const cred = await issue(world.orgA, world.alice);
    const vp = await presentation(world, world.alice, cred.jwt, { challenge: "their own challenge" });
    const forged = [otherSignature(vp), unknownIssuer(vp)]; // a bad signature; an unknown holder
    const verify = async (jwt: string) => {
      const res = await postJson(gw.base, "/presentations/verify", { verifiablePresentation: jwt });
      return [res.status, res.body.verified, res.body.errors?.[0]?.code ?? null];
    };
    for (const jwt of forged) expect(await verify(jwt)).toEqual([200, false, "invalid_signature"]);
    const warm = counter.calls;
    for (let round = 0; round < 5; round++) {
      for (const jwt of forged) expect(await verify(jwt)).toEqual([200, false, "invalid_signature"]);
    }
    expect(counter.calls - warm).toBe(0);
    expect(gw.app.kpartyCacheSizes()).toMatchObject({
      didDocuments: 0,
      didDocumentsUnauthenticated: 2,
      credentialStates: 0,
      credentialStatesUnauthenticated: 0,
    });
  });

  it("however many distinct forgeries arrive, they fill only the small segments, and authentic credentials stay cached", async () => {
    const bounds = { didDocumentsUnauthenticated: 4, credentialStatesUnauthenticated: 6 };
    const { gw, counter } = await countedGateway(bounds);
    const cred = await issue(world.orgB, world.alice);
    await waitForSync(gw.base, cred.anchor.blockNumber);
    expect(await verifyCredential(gw.base, cred.jwt)).toEqual([200, true, null]);
    for (let i = 0; i < 40; i++) {
      const jwt = i % 2 === 0 ? otherId(cred.jwt, 1000 + i) : unknownIssuer(otherId(cred.jwt, 1000 + i));
      expect(await verifyCredential(gw.base, jwt)).toEqual([200, false, "invalid_signature"]);
    }
    expect(gw.app.kpartyCacheSizes()).toMatchObject({
      credentialStates: 1,
      credentialStatesUnauthenticated: 6,
      credentialStatesIndexed: 7,
      didDocuments: 1,
      // the issuer's current document and the last three unknown issuers'
      didDocumentsUnauthenticated: 4,
      verifiedCredentials: 1,
    });
    const before = counter.calls;
    expect(await verifyCredential(gw.base, cred.jwt)).toEqual([200, true, null]);
    expect(counter.calls - before).toBe(0); // still served from the main segments
  });
});

describe("the verifier's remembered credentials", () => {
  it("keep at most maxKnownCredentials, the least recently presented out", async () => {
    const { agent } = await createKPartyAgent({
      role: "verifier",
      chain: { provider: world.chain.provider, deployment: world.deployment },
    });
    const checked: string[] = [];
    const verifier = createVerifier({
      resolver: agent,
      chain: world.client,
      maxKnownCredentials: 2,
      verifySignature: (input: string, signature: Uint8Array, keys: Es256kKey[]) => {
        checked.push(input);
        return verifyEs256k(input, signature, keys);
      },
    });
    const creds = [];
    for (let i = 0; i < 3; i++) creds.push(await issue(world.orgA, world.alice));
    const [a, b, c] = creds as [(typeof creds)[0], (typeof creds)[0], (typeof creds)[0]];
    const signingInput = (jwt: string) => jwt.slice(0, jwt.lastIndexOf("."));
    await verifier.verifyCredential(a.jwt);
    await verifier.verifyCredential(b.jwt);
    await verifier.verifyCredential(a.jwt); // remembered: b is now the least recently presented
    await verifier.verifyCredential(c.jwt); // b out
    expect(verifier.knownCredentials).toBe(2);
    await verifier.verifyCredential(a.jwt);
    await verifier.verifyCredential(c.jwt);
    await verifier.verifyCredential(b.jwt); // checked again
    expect(checked).toEqual([a, b, c, b].map((x) => signingInput(x.jwt)));
  });
});
