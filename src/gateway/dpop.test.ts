import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  accessTokenHash,
  createDpopNonces,
  createDpopProof,
  createDpopVerifier,
  dpopPublicJwk,
  jwkThumbprint,
  MemoryDpopReplayStore,
  normalizeHtu,
  SqliteDpopReplayStore,
} from "./dpop.ts";
import { openGatewayDatabase } from "./state.ts";

describe("jwkThumbprint (RFC 7638)", () => {
  it("gives RFC 8037's Ed25519 example thumbprint", () => {
    const jwk = { kty: "OKP", crv: "Ed25519", x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" };
    expect(jwkThumbprint(jwk)).toBe("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
  });

  it("hashes only the required members, whatever else the JWK holds", () => {
    const key = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    const jwk = dpopPublicJwk(key);
    expect(jwkThumbprint({ ...jwk, kid: "k1", use: "sig" } as never)).toBe(jwkThumbprint(jwk));
    expect(() => jwkThumbprint({ kty: "RSA", n: "x", e: "AQAB" })).toThrow(TypeError);
  });
});

describe("accessTokenHash and normalizeHtu", () => {
  it("hashes the token's ASCII bytes (RFC 9449 §4.2)", () => {
    // SHA-256("abc") in base64url
    expect(accessTokenHash("abc")).toBe("ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
  });

  it("drops query and fragment, lowercases the host and the default port", () => {
    expect(normalizeHtu("HTTPS://GW.Example:443/models/a?x=1#f")).toBe("https://gw.example/models/a");
    expect(normalizeHtu("http://127.0.0.1:8080/auth/token")).toBe("http://127.0.0.1:8080/auth/token");
    expect(() => normalizeHtu("ftp://gw/x")).toThrow(TypeError);
  });
});

describe("server nonces", () => {
  it("accept the current and the previous period's nonce only, and no forged one", () => {
    let now = 1_000_000_000_000;
    const nonces = createDpopNonces({ now: () => now, lifetimeSeconds: 60 });
    const first = nonces.current();
    expect(nonces.valid(first)).toBe(true);
    now += 60_000;
    const second = nonces.current();
    expect(second).not.toBe(first);
    expect([nonces.valid(first), nonces.valid(second)]).toEqual([true, true]);
    now += 60_000;
    expect([nonces.valid(first), nonces.valid(second)]).toEqual([false, true]);
    const other = createDpopNonces({ now: () => now, lifetimeSeconds: 60 });
    expect(nonces.valid(other.current())).toBe(false);
    expect(nonces.valid(undefined)).toBe(false);
  });

  it("are shared by replicas with the same secret", () => {
    const secret = Buffer.alloc(32, 7);
    const a = createDpopNonces({ now: () => 5e12, secret });
    const b = createDpopNonces({ now: () => 5e12, secret });
    expect(b.valid(a.current())).toBe(true);
  });
});

describe("replay stores", () => {
  it("the database's: a key is new once until it expires, and pruned after", () => {
    const db = openGatewayDatabase(":memory:");
    let now = 10_000;
    const store = new SqliteDpopReplayStore(db, { now: () => now });
    expect(store.use("jkt:a", 20_000)).toBe(true);
    expect(store.use("jkt:a", 20_000)).toBe(false);
    expect(store.use("jkt:b", 20_000)).toBe(true);
    now = 21_000;
    store.use("jkt:c", 30_000); // prunes what expired before now
    expect(
      db
        .prepare("SELECT key FROM dpop_jti ORDER BY key")
        .all()
        .map((r) => r.key),
    ).toEqual(["jkt:c"]);
    db.close();
  });

  it("the in-memory one, alike", () => {
    let now = 0;
    const store = new MemoryDpopReplayStore({ now: () => now });
    expect(store.use("k", 5_000)).toBe(true);
    expect(store.use("k", 5_000)).toBe(false);
    now = 6_000;
    expect(store.use("k", 9_000)).toBe(true);
  });
});

describe("createDpopVerifier with an injected clock", () => {
  const key = generateKeyPairSync("ed25519").privateKey;
  const url = "https://gw.example/models/m";

  it("keeps a jti only as long as its proof could be accepted (iat + skew)", async () => {
    let now = 1_700_000_000_000;
    const replay = new MemoryDpopReplayStore({ now: () => now });
    const dpop = createDpopVerifier({ now: () => now, clockSkewSeconds: 60, replay });
    const proof = createDpopProof({ key, htm: "GET", htu: url, accessToken: "t", now: () => now });
    const request = { method: "GET", url, accessToken: "t", endpoint: "resource" as const };
    const { jkt } = await dpop.verify(proof, request);
    expect(jkt).toBe(jwkThumbprint(dpopPublicJwk(key)));
    await expect(dpop.verify(proof, request)).rejects.toMatchObject({
      code: "invalid_dpop_proof",
      shortMessage: "the DPoP proof has been used before (jti replayed)",
    });
    now += 61_000; // past the skew: refused for its iat, whether its jti is remembered or not
    await expect(dpop.verify(proof, request)).rejects.toMatchObject({
      code: "invalid_dpop_proof",
      shortMessage: "the DPoP proof's iat must be within 60 s of the gateway's clock",
      details: { endpoint: "resource" },
    });
  });

  it("rejects misconfiguration with a TypeError", () => {
    expect(() => createDpopVerifier({ now: Date.now, replay: undefined as never })).toThrow(TypeError);
    expect(() =>
      createDpopVerifier({
        now: Date.now,
        clockSkewSeconds: -1,
        replay: new MemoryDpopReplayStore({ now: Date.now }),
      }),
    ).toThrow(TypeError);
    expect(() =>
      createDpopProof({ key: generateKeyPairSync("x25519").privateKey, htm: "GET", htu: url }),
    ).toThrow(TypeError);
  });
});
