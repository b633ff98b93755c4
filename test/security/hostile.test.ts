/**
 * Hostile input for the gateway: malformed and malicious presentations, credentials, access
 * tokens and HTTP requests, drawn from RFC 8725 (JWT best practices), JWT library CVEs (alg
 * none, HMAC/public-key confusion, critical headers, malleable ECDSA), the W3C VC test suites'
 * negative cases (issuer/subject mismatches, bad status, missing dates) and kparty's own design
 * (registry pointers, Merkle proofs, access tokens). Each case asserts the exact status and
 * code, and that no token was handed out or audited as granted.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IssuedCredential } from "../../agent/index.ts";
import { decodeJwt, VC_CONTEXT } from "../../src/credential/index.ts";
import { postJson, requestToken } from "../fixtures/http.ts";
import { issue } from "../fixtures/issue.ts";
import { b64, signJwt } from "../fixtures/jwt.ts";
import { createWorld, DOMAIN, type KPartyWorld, MODEL_ID } from "../fixtures/kparty.ts";

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
let world: KPartyWorld;
let cred: IssuedCredential;
let batch: IssuedCredential[];
let token: string;

beforeAll(async () => {
  world = await createWorld();
  cred = await issue(world.orgA, world.alice, { actions: ["model:read"] });
  batch = await world.orgA.handle.agent.kpartyIssueCredentials({
    issuer: world.orgA.did,
    credentials: [1, 2].map(() => ({
      subject: world.alice.did,
      role: "participant" as const,
      models: [MODEL_ID],
      actions: ["model:read" as const],
    })),
  });
  token = (await requestToken(world, world.alice, cred.jwt)).body.access_token as string;
});
afterAll(async () => {
  await world?.close();
});

const challenge = async () => (await postJson(world.base, "/auth/challenge", {})).body.challenge as string;

/** A VP payload from Alice around `vc`, for a fresh challenge; `patch` edits it. */
async function vpPayload(vc: string, patch: (p: Record<string, any>) => void = () => {}) {
  const p: Record<string, any> = {
    iss: world.alice.did,
    aud: DOMAIN,
    nonce: await challenge(),
    vp: { "@context": [VC_CONTEXT], type: ["VerifiablePresentation"], verifiableCredential: [vc] },
  };
  patch(p);
  return p;
}

/** Alice's validly signed presentation of `vc` with the payload edited by `patch`. */
const vpSigned = async (
  vc: string,
  patch?: (p: Record<string, any>) => void,
  header: object = { alg: "ES256K", typ: "JWT" },
) => signJwt(world.alice, header, await vpPayload(vc, patch));

/** The issued credential's payload edited by `patch`, re-signed by Org A (a real, unanchored credential). */
async function vcResigned(
  patch: (p: Record<string, any>) => void,
  header: object = { alg: "ES256K", typ: "JWT" },
) {
  const payload = structuredClone(decodeJwt(cred.jwt).payload) as Record<string, any>;
  patch(payload);
  return signJwt(world.orgA, header, payload);
}

const swapSignature = (jwt: string, signature: Buffer) =>
  `${jwt.slice(0, jwt.lastIndexOf("."))}.${signature.toString("base64url")}`;
const sigOf = (jwt: string) => Buffer.from(jwt.split(".")[2] as string, "base64url");

type Case = [name: string, body: () => Promise<unknown>, status: number, code: string];

const TOKEN_CASES: Case[] = [
  // the request body
  ["empty presentation", async () => ({ presentation: "" }), 400, "malformed"],
  ["presentation is a number", async () => ({ presentation: 42 }), 400, "malformed"],
  ["presentation is an object", async () => ({ presentation: { proof: {} } }), 400, "malformed"],
  ["body is an array", async () => [], 400, "malformed"],
  [
    "__proto__ field (prototype pollution)",
    async () => JSON.parse(`{"presentation":"a.b.c","__proto__":{"admin":true}}`),
    400,
    "malformed",
  ],
  [
    "options that would switch checks off",
    async () => ({ presentation: await vpSigned(cred.jwt), verify: { status: false } }),
    400,
    "malformed",
  ],
  [
    "scope with an unknown action",
    async () => ({ presentation: await vpSigned(cred.jwt), scope: "model:delete" }),
    400,
    "malformed",
  ],
  [
    "models with path traversal",
    async () => ({ presentation: await vpSigned(cred.jwt), models: ["../../etc"] }),
    400,
    "malformed",
  ],
  // JWS structure (RFC 7515/8725)
  ["two segments", async () => ({ presentation: `${b64({ alg: "ES256K" })}.${b64({})}` }), 400, "malformed"],
  [
    "four segments",
    async () => ({ presentation: `${b64({ alg: "ES256K" })}.${b64({})}.AA.AA` }),
    400,
    "malformed",
  ],
  [
    "base64 with padding",
    async () => ({ presentation: `${b64({ alg: "ES256K" })}=.${b64({})}.AA` }),
    400,
    "malformed",
  ],
  [
    "non-canonical base64url",
    async () => ({ presentation: `${b64({ alg: "ES256K" })}.${b64({})}.AB` }),
    400,
    "malformed",
  ],
  [
    "header is not JSON",
    async () => ({ presentation: `${b64("not json")}.${b64({})}.AA` }),
    400,
    "malformed",
  ],
  [
    "payload is a JSON array",
    async () => ({ presentation: `${b64({ alg: "ES256K" })}.${b64([1])}.AA` }),
    400,
    "malformed",
  ],
  [
    "payload is not UTF-8",
    async () => ({
      presentation: `${b64({ alg: "ES256K" })}.${Buffer.from([0xff, 0xfe]).toString("base64url")}.AA`,
    }),
    400,
    "malformed",
  ],
  [
    "VP alg none (CVE-2015-9235 class)",
    async () => ({ presentation: `${b64({ alg: "none" })}.${b64(await vpPayload(cred.jwt))}.` }),
    400,
    "unsupported_alg",
  ],
  [
    "VP alg HS256 (key confusion)",
    async () => ({ presentation: await vpSigned(cred.jwt, undefined, { alg: "HS256" }) }),
    400,
    "unsupported_alg",
  ],
  [
    "VP alg ES256 (P-256)",
    async () => ({ presentation: await vpSigned(cred.jwt, undefined, { alg: "ES256" }) }),
    400,
    "unsupported_alg",
  ],
  [
    "VP alg ES256K-R",
    async () => ({ presentation: await vpSigned(cred.jwt, undefined, { alg: "ES256K-R" }) }),
    400,
    "unsupported_alg",
  ],
  [
    "VP with a critical header (RFC 7515 §4.1.11)",
    async () => ({ presentation: await vpSigned(cred.jwt, undefined, { alg: "ES256K", crit: ["exp"] }) }),
    400,
    "malformed",
  ],
  [
    "VP typ not JWT",
    async () => ({ presentation: await vpSigned(cred.jwt, undefined, { alg: "ES256K", typ: "at+jwt" }) }),
    400,
    "malformed",
  ],
  // presentation claims
  [
    "VP iss is not did:ethr",
    async () => ({
      presentation: await vpSigned(cred.jwt, (p) => {
        p.iss = "did:key:z6Mk";
      }),
    }),
    400,
    "malformed",
  ],
  [
    "VP without vp claim",
    async () => ({
      presentation: await vpSigned(cred.jwt, (p) => {
        delete p.vp;
      }),
    }),
    400,
    "malformed",
  ],
  [
    "VP with two credentials",
    async () => ({
      presentation: await vpSigned(cred.jwt, (p) => {
        p.vp.verifiableCredential.push(cred.jwt);
      }),
    }),
    400,
    "malformed",
  ],
  [
    "VP with no credential",
    async () => ({
      presentation: await vpSigned(cred.jwt, (p) => {
        p.vp.verifiableCredential = [];
      }),
    }),
    400,
    "malformed",
  ],
  [
    "VP credential as an object",
    async () => ({
      presentation: await vpSigned(cred.jwt, (p) => {
        p.vp.verifiableCredential = [{ proof: { jwt: cred.jwt } }];
      }),
    }),
    400,
    "malformed",
  ],
  [
    "VP vp.holder differs from iss",
    async () => ({
      presentation: await vpSigned(cred.jwt, (p) => {
        p.vp.holder = world.mallory.did;
      }),
    }),
    400,
    "malformed",
  ],
  [
    "VP type missing VerifiablePresentation",
    async () => ({
      presentation: await vpSigned(cred.jwt, (p) => {
        p.vp.type = ["Presentation"];
      }),
    }),
    400,
    "malformed",
  ],
  [
    "VP nonce is a number",
    async () => ({
      presentation: await vpSigned(cred.jwt, (p) => {
        p.nonce = 7;
      }),
    }),
    400,
    "malformed",
  ],
  [
    "VP without nonce",
    async () => ({
      presentation: await vpSigned(cred.jwt, (p) => {
        delete p.nonce;
      }),
    }),
    401,
    "challenge_invalid",
  ],
  [
    "VP audience list without the gateway",
    async () => ({
      presentation: await vpSigned(cred.jwt, (p) => {
        p.aud = ["a.example", "b.example"];
      }),
    }),
    401,
    "domain_mismatch",
  ],
  [
    "VP nbf in the future",
    async () => ({
      presentation: await vpSigned(cred.jwt, (p) => {
        p.nbf = Math.floor(Date.now() / 1000) + 3600;
      }),
    }),
    401,
    "not_yet_valid",
  ],
  [
    "VP exp in the past",
    async () => ({
      presentation: await vpSigned(cred.jwt, (p) => {
        p.exp = Math.floor(Date.now() / 1000) - 3600;
      }),
    }),
    401,
    "expired",
  ],
  // presentation signature
  [
    "VP signature truncated",
    async () => ({
      presentation: swapSignature(await vpSigned(cred.jwt), sigOf(await vpSigned(cred.jwt)).subarray(0, 63)),
    }),
    401,
    "invalid_signature",
  ],
  [
    "VP signature r = s = 0 (CVE-2022-21449 class)",
    async () => ({ presentation: swapSignature(await vpSigned(cred.jwt), Buffer.alloc(64)) }),
    401,
    "invalid_signature",
  ],
  [
    "VP signature with high s (malleability)",
    async () => {
      const vp = await vpSigned(cred.jwt);
      const sig = sigOf(vp);
      const s = N - BigInt(`0x${sig.subarray(32).toString("hex")}`);
      return {
        presentation: swapSignature(
          vp,
          Buffer.concat([sig.subarray(0, 32), Buffer.from(s.toString(16).padStart(64, "0"), "hex")]),
        ),
      };
    },
    401,
    "invalid_signature",
  ],
  [
    "VP signed by Mallory, claiming Alice",
    async () => ({
      presentation: await signJwt(world.mallory, { alg: "ES256K", typ: "JWT" }, await vpPayload(cred.jwt)),
    }),
    401,
    "invalid_signature",
  ],
  // the embedded credential (decisions use the signed JWT only)
  [
    "VC alg none",
    async () => {
      const [, p] = cred.jwt.split(".") as [string, string];
      return { presentation: await vpSigned(`${b64({ alg: "none" })}.${p}.`) };
    },
    400,
    "unsupported_alg",
  ],
  [
    "VC payload edited to add an action",
    async () => {
      const [h, , s] = cred.jwt.split(".") as [string, string, string];
      const payload = decodeJwt(cred.jwt).payload as Record<string, any>;
      payload.vc.credentialSubject.kParty.actions.push("round:aggregate");
      return { presentation: await vpSigned(`${h}.${b64(payload)}.${s}`) };
    },
    401,
    "invalid_signature",
  ],
  [
    "VC signature with high s",
    async () => {
      const sig = sigOf(cred.jwt);
      const s = N - BigInt(`0x${sig.subarray(32).toString("hex")}`);
      return {
        presentation: await vpSigned(
          swapSignature(
            cred.jwt,
            Buffer.concat([sig.subarray(0, 32), Buffer.from(s.toString(16).padStart(64, "0"), "hex")]),
          ),
        ),
      };
    },
    401,
    "invalid_signature",
  ],
  [
    "VC vc.issuer differs from iss",
    async () => ({
      presentation: await vpSigned(
        await vcResigned((p) => {
          p.vc.issuer = world.orgB.did;
        }),
      ),
    }),
    400,
    "malformed",
  ],
  [
    "VC credentialSubject.id differs from sub",
    async () => ({
      presentation: await vpSigned(
        await vcResigned((p) => {
          p.vc.credentialSubject.id = world.mallory.did;
        }),
      ),
    }),
    400,
    "malformed",
  ],
  [
    "VC without exp",
    async () => ({
      presentation: await vpSigned(
        await vcResigned((p) => {
          delete p.exp;
        }),
      ),
    }),
    400,
    "malformed",
  ],
  [
    "VC without KPartyCredential type",
    async () => ({
      presentation: await vpSigned(
        await vcResigned((p) => {
          p.vc.type = ["VerifiableCredential"];
        }),
      ),
    }),
    400,
    "malformed",
  ],
  [
    "VC credentialSubject as a list",
    async () => ({
      presentation: await vpSigned(
        await vcResigned((p) => {
          p.vc.credentialSubject = [p.vc.credentialSubject];
        }),
      ),
    }),
    400,
    "malformed",
  ],
  [
    "VC status pointing at another registry",
    async () => ({
      presentation: await vpSigned(
        await vcResigned((p) => {
          p.vc.credentialStatus[0].id = p.vc.credentialStatus[0].id.replace(
            /0x[0-9a-fA-F]{40}/,
            "0x000000000000000000000000000000000000dEaD",
          );
        }),
      ),
    }),
    400,
    "malformed",
  ],
  [
    "VC status index with a leading zero",
    async () => ({
      presentation: await vpSigned(
        await vcResigned((p) => {
          p.vc.credentialStatus[0].statusListIndex = `0${p.vc.credentialStatus[0].statusListIndex}`;
        }),
      ),
    }),
    400,
    "malformed",
  ],
  [
    "VC with two revocation entries",
    async () => ({
      presentation: await vpSigned(
        await vcResigned((p) => {
          p.vc.credentialStatus[1] = p.vc.credentialStatus[0];
        }),
      ),
    }),
    400,
    "malformed",
  ],
  [
    "VC without credentialStatus",
    async () => ({
      presentation: await vpSigned(
        await vcResigned((p) => {
          delete p.vc.credentialStatus;
        }),
      ),
    }),
    400,
    "malformed",
  ],
  [
    "VC for another consortium",
    async () => ({
      presentation: await vpSigned(
        await vcResigned((p) => {
          p.vc.credentialSubject.kParty.consortium = "eip155:1:0x000000000000000000000000000000000000dEaD";
        }),
      ),
    }),
    403,
    "issuer_not_member",
  ],
  [
    "VC with an unknown action",
    async () => ({
      presentation: await vpSigned(
        await vcResigned((p) => {
          p.vc.credentialSubject.kParty.actions = ["model:delete"];
        }),
      ),
    }),
    400,
    "malformed",
  ],
  [
    "VC with a path-traversal model id",
    async () => ({
      presentation: await vpSigned(
        await vcResigned((p) => {
          p.vc.credentialSubject.kParty.models = ["../secrets"];
        }),
      ),
    }),
    400,
    "malformed",
  ],
  [
    "VC with a negative quota",
    async () => ({
      presentation: await vpSigned(
        await vcResigned((p) => {
          p.vc.credentialSubject.kParty.quota = { requestsPerMinute: -1 };
        }),
      ),
    }),
    400,
    "malformed",
  ],
  [
    "VC re-signed by its issuer but never anchored",
    async () => ({
      presentation: await vpSigned(
        await vcResigned((p) => {
          p.jti = "urn:uuid:00000000-0000-0000-0000-000000000000";
        }),
      ),
    }),
    403,
    "not_anchored",
  ],
  // Merkle proofs (kparty)
  [
    "batch credential with 65 proof entries",
    async () => ({
      presentation: await vpSigned((batch[0] as IssuedCredential).jwt, (p) => {
        p.kpartyAnchorProof = Array(65).fill((batch[1] as IssuedCredential).credentialId);
      }),
    }),
    400,
    "malformed",
  ],
  [
    "batch credential with a proof that is not a list",
    async () => ({
      presentation: await vpSigned((batch[0] as IssuedCredential).jwt, (p) => {
        p.kpartyAnchorProof = "0x00";
      }),
    }),
    400,
    "malformed",
  ],
  [
    "batch credential with its sibling's proof",
    async () => ({
      presentation: await vpSigned((batch[0] as IssuedCredential).jwt, (p) => {
        p.kpartyAnchorProof = (batch[1] as IssuedCredential).anchor.proof;
      }),
    }),
    403,
    "not_anchored",
  ],
  [
    "singly anchored credential with a proof",
    async () => ({
      presentation: await vpSigned(cred.jwt, (p) => {
        p.kpartyAnchorProof = [cred.credentialId];
      }),
    }),
    403,
    "not_anchored",
  ],
];

function grantedTokens(): number {
  return Number(
    (
      world.db
        .prepare("SELECT COUNT(*) AS n FROM audit WHERE route = '/auth/token' AND outcome = 'granted'")
        .get() as { n: number }
    ).n,
  );
}

describe("hostile presentations and requests to POST /auth/token", () => {
  it(`has distinct cases, as many as docs/security.md counts (${TOKEN_CASES.length})`, () => {
    expect(new Set(TOKEN_CASES.map((c) => c[0])).size).toBe(TOKEN_CASES.length);
    const security = readFileSync(fileURLToPath(new URL("../../docs/security.md", import.meta.url)), "utf8");
    const cited = /(\d+) hostile requests to `POST \/auth\/token`/.exec(security.replace(/\s+/g, " "));
    expect(Number(cited?.[1])).toBe(TOKEN_CASES.length);
  });

  for (const [name, body, status, code] of TOKEN_CASES) {
    it(`${name}: ${status} ${code}`, async () => {
      const granted = grantedTokens();
      const res = await postJson(world.base, "/auth/token", await body());
      expect({ status: res.status, code: res.body.error?.code }).toEqual({ status, code });
      expect(res.body.access_token).toBeUndefined();
      expect(grantedTokens()).toBe(granted);
    });
  }
});

describe("hostile access tokens", () => {
  const tokenCases: [string, () => string][] = [
    ["alg none", () => `${b64({ alg: "none", typ: "at+jwt" })}.${token.split(".")[1]}.`],
    [
      "payload swapped to another holder",
      () => {
        const [h, p, s] = token.split(".") as [string, string, string];
        const payload = JSON.parse(Buffer.from(p, "base64url").toString());
        payload.sub = world.mallory.did;
        return `${h}.${b64(payload)}.${s}`;
      },
    ],
    [
      "kid of another gateway",
      () => {
        const [, p, s] = token.split(".") as [string, string, string];
        return `${b64({ alg: "EdDSA", typ: "at+jwt", kid: "evil#00" })}.${p}.${s}`;
      },
    ],
    [
      "HS256 with the public key as secret",
      () => `${b64({ alg: "HS256", typ: "at+jwt" })}.${token.split(".")[1]}.AAAA`,
    ],
    ["truncated signature", () => token.slice(0, -10)],
  ];
  for (const [name, make] of tokenCases) {
    it(`${name}: 401 token_invalid`, async () => {
      const res = await fetch(`${world.base}/models/${MODEL_ID}`, {
        headers: { authorization: `Bearer ${make()}` },
      });
      expect({
        status: res.status,
        code: ((await res.json()) as { error: { code: string } }).error.code,
      }).toEqual({
        status: 401,
        code: "token_invalid",
      });
    });
  }

  it("a Basic or malformed Authorization header: 401 token_invalid", async () => {
    for (const authorization of [
      "Basic dXNlcjpwYXNz",
      `Bearer ${token} extra`,
      "Bearer",
      `bearer:${token}`,
    ]) {
      const res = await fetch(`${world.base}/models/${MODEL_ID}`, { headers: { authorization } });
      expect([res.status, ((await res.json()) as { error: { code: string } }).error.code]).toEqual([
        401,
        "token_invalid",
      ]);
    }
  });
});
