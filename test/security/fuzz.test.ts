/**
 * Property-based fuzzing of everything that takes untrusted bytes: JWT decoding, token
 * payload parsing, Merkle proofs, access tokens, POST /auth/token and model uploads. The
 * properties: only KPartyErrors are thrown (never an uncaught exception), nothing is granted,
 * and no 5xx other than 503 registry_unavailable is ever answered.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeJwt, merkleRootOf } from "../../src/credential/index.ts";
import { KPartyError } from "../../src/errors/index.ts";
import { createTokenService } from "../../src/gateway/index.ts";
import { parseTokenPayload } from "../../src/gateway/verify/structure.ts";
import { postJson, requestToken } from "../fixtures/http.ts";
import { issue } from "../fixtures/issue.ts";
import { b64, signJwt } from "../fixtures/jwt.ts";
import { createWorld, DOMAIN, type KPartyWorld } from "../fixtures/kparty.ts";

let world: KPartyWorld;
beforeAll(async () => {
  world = await createWorld();
});
afterAll(async () => {
  await world?.close();
});

/** Runs `fn`; anything thrown must be a KPartyError (with one of `codes` when given). */
function onlyKPartyErrors(fn: () => unknown, codes?: string[]) {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(KPartyError);
    if (codes) expect(codes).toContain((error as KPartyError).code);
  }
}

const jsonValue = fc.jsonValue({ maxDepth: 4 });
const segment = fc.oneof(
  fc.string({ maxLength: 40 }),
  jsonValue.map((v) => b64(v)),
  fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b).toString("base64url")),
);
const jwtLike = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.tuple(segment, segment, segment).map((parts) => parts.join(".")),
  fc.array(segment, { maxLength: 5 }).map((parts) => parts.join(".")),
);

describe("decoders never throw anything but KPartyError", () => {
  it("decodeJwt", () => {
    fc.assert(
      fc.property(fc.oneof(jwtLike, jsonValue), (input) =>
        onlyKPartyErrors(() => decodeJwt(input), ["malformed"]),
      ),
      {
        numRuns: 2000,
      },
    );
  });

  it("merkleRootOf", () => {
    const id = `0x${"ab".repeat(32)}`;
    fc.assert(
      fc.property(
        fc.oneof(
          jsonValue,
          fc.array(
            fc.oneof(
              fc.string(),
              fc
                .uint8Array({ minLength: 32, maxLength: 32 })
                .map((b) => `0x${Buffer.from(b).toString("hex")}`),
            ),
          ),
        ),
        (proof) => onlyKPartyErrors(() => merkleRootOf(id, proof), ["malformed"]),
      ),
      { numRuns: 1000 },
    );
  });

  it("parseTokenPayload", () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.constantFrom("iss", "sub", "nbf", "exp", "vc", "jti", "x"), jsonValue),
        (payload) => onlyKPartyErrors(() => parseTokenPayload(payload, world.deployment)),
      ),
      { numRuns: 1000 },
    );
  });

  it("access token verification refuses all junk with token_invalid", () => {
    const tokens = createTokenService({ domain: DOMAIN, now: Date.now });
    fc.assert(
      fc.property(jwtLike, (input) => {
        let refused = false;
        try {
          tokens.verify(input);
        } catch (error) {
          refused = error instanceof KPartyError && error.code === "token_invalid";
        }
        expect(refused).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("the gateway never grants on garbage, and never fails with a 5xx other than 503", () => {
  const allowed = [400, 401, 403, 413, 429, 503];

  it("POST /auth/token with arbitrary bodies", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          jsonValue,
          fc.record({ presentation: jwtLike }),
          fc.record({ presentation: jwtLike, scope: fc.string() }),
        ),
        async (body) => {
          const res = await world.app.inject({
            method: "POST",
            url: "/auth/token",
            payload: JSON.stringify(body),
            headers: { "content-type": "application/json" },
          });
          expect(allowed).toContain(res.statusCode);
          expect(res.json().access_token).toBeUndefined();
        },
      ),
      { numRuns: 300 },
    );
  });

  it("POST /auth/token with validly signed presentations of arbitrary content", async () => {
    const cred = await issue(world.orgA, world.alice);
    await fc.assert(
      fc.asyncProperty(
        fc.record(
          {
            iss: fc.oneof(fc.constant(world.alice.did), fc.string()),
            aud: fc.oneof(fc.constant(DOMAIN), jsonValue),
            nonce: jsonValue,
            vp: fc.oneof(
              jsonValue,
              fc.record({
                type: jsonValue,
                verifiableCredential: fc.oneof(jsonValue, fc.constant([cred.jwt])),
              }),
            ),
            nbf: fc.oneof(fc.integer(), jsonValue),
          },
          { requiredKeys: [] },
        ),
        async (payload) => {
          const presentation = await signJwt(world.alice, { alg: "ES256K", typ: "JWT" }, payload);
          const res = await postJson(world.base, "/auth/token", { presentation });
          expect(allowed).toContain(res.status);
          expect(res.body.access_token).toBeUndefined();
        },
      ),
      { numRuns: 60 },
    );
  });

  it("model uploads: accepted only when exactly the model's size and all finite", async () => {
    const cred = await issue(world.orgA, world.alice, { actions: ["model:read", "model:contribute"] });
    const token = (await requestToken(world, world.alice, cred.jwt)).body.access_token as string;
    const { parameterCount, openRound } = (await world.models.get("mnist-logreg")) as {
      parameterCount: number;
      openRound: number;
    };
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ maxLength: 64 }),
          fc
            .float32Array({ minLength: parameterCount, maxLength: parameterCount })
            .map((a) => new Uint8Array(a.buffer)),
          fc
            .float32Array({ minLength: parameterCount - 1, maxLength: parameterCount + 1, noNaN: true })
            .map((a) => new Uint8Array(a.buffer)),
        ),
        fc.oneof(fc.constant(String(openRound)), fc.string({ maxLength: 5 })),
        fc.oneof(fc.constant("10"), fc.string({ maxLength: 5 })),
        async (bytes, round, samples) => {
          const res = await world.app.inject({
            method: "POST",
            url: "/models/mnist-logreg/updates",
            payload: Buffer.from(bytes),
            headers: {
              authorization: `Bearer ${token}`,
              "content-type": "application/octet-stream",
              "x-kparty-round": round,
              "x-kparty-sample-count": samples,
            },
          });
          expect([201, 400, 409, 413]).toContain(res.statusCode);
          if (res.statusCode === 201) {
            accepted++;
            const values = new Float32Array(
              Buffer.from(bytes).buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
            );
            expect(values.length).toBe(parameterCount);
            expect(values.every(Number.isFinite)).toBe(true);
          }
        },
      ),
      { numRuns: 150 },
    );
    expect(accepted).toBeLessThanOrEqual(1);
    expect((await world.models.get("mnist-logreg")).updates).toBe(accepted);
    // not vacuous: a valid update is accepted (unless the fuzzer already landed one)
    const valid = await world.app.inject({
      method: "POST",
      url: "/models/mnist-logreg/updates",
      payload: Buffer.from(new Float32Array(parameterCount).fill(0.5).buffer),
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/octet-stream",
        "x-kparty-round": String(openRound),
        "x-kparty-sample-count": "10",
      },
    });
    expect(valid.statusCode).toBe(accepted === 0 ? 201 : 409);
  });
});
