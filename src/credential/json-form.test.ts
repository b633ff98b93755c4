import { normalizeCredential, normalizePresentation } from "did-jwt-vc";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { KPartyError } from "../errors/index.ts";
import { VC_CONTEXT } from "./format.ts";
import { credentialJwtOf, presentationJwtOf } from "./json-form.ts";

// The JSON form is checked against the JWT's bytes only: these JWTs need no valid signature.
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
const jwtOf = (payload: unknown) => `${b64({ alg: "ES256K", typ: "JWT" })}.${b64(payload)}.c2lnbmF0dXJl`;

const ISSUER = "did:ethr:0x7a69:0x1111111111111111111111111111111111111111";
const HOLDER = "did:ethr:0x7a69:0x2222222222222222222222222222222222222222";

function credentialPayload(overrides: Record<string, unknown> = {}) {
  return {
    iat: 1_790_000_000,
    nbf: 1_790_000_000,
    exp: 1_790_086_400,
    iss: ISSUER,
    sub: HOLDER,
    jti: "urn:uuid:7f1c2a3e-0000-4000-8000-000000000001",
    vc: {
      "@context": [VC_CONTEXT],
      type: ["VerifiableCredential", "KPartyCredential"],
      credentialSubject: {
        kParty: { consortium: "eip155:31337:0xabc", models: ["m"], actions: ["model:read"] },
      },
      credentialStatus: [{ id: "eip155:31337:0xdef#revocation-7", type: "KPartyRegistryStatus" }],
    },
    ...overrides,
  };
}

const VC_JWT = jwtOf(credentialPayload());
/** The JSON form that did-jwt-vc (and Veramo) make of a JWT credential. */
const json = () => normalizeCredential(VC_JWT) as unknown as Record<string, any>;

function refusal(fn: () => unknown): { code: string; field: unknown } {
  try {
    fn();
  } catch (error) {
    if (error instanceof KPartyError) return { code: error.code, field: error.details.field };
    throw error;
  }
  throw new Error("accepted");
}

describe("credentialJwtOf", () => {
  it("returns the JWT of a JWT string and of its exact JSON form", () => {
    expect(credentialJwtOf(VC_JWT)).toBe(VC_JWT);
    expect(credentialJwtOf(json())).toBe(VC_JWT);
  });

  it("accepts the JSON form with the issuer as a string and dates without milliseconds", () => {
    const form = { ...json(), issuer: ISSUER, issuanceDate: "2026-09-21T14:13:20Z" };
    expect(credentialJwtOf(form)).toBe(VC_JWT);
  });

  it("refuses an outer field that differs from the JWT with jwt_mismatch and the field", () => {
    const other = "did:ethr:0x7a69:0x0000000000000000000000000000000000000001";
    const cases: [Record<string, any>, string][] = [
      [{ ...json(), issuer: other }, "issuer"],
      [{ ...json(), issuer: { id: other } }, "issuer.id"],
      [{ ...json(), issuer: { id: ISSUER, name: "Org A" } }, "issuer.name"],
      [
        { ...json(), credentialSubject: { ...json().credentialSubject, actions: ["round:aggregate"] } },
        "credentialSubject.actions",
      ],
      [{ ...json(), credentialSubject: { ...json().credentialSubject, id: other } }, "credentialSubject.id"],
      [{ ...json(), type: ["VerifiableCredential"] }, "type"],
      [{ ...json(), "@context": [VC_CONTEXT, "https://example.org/ctx"] }, "@context"],
      [{ ...json(), id: "urn:uuid:another" }, "id"],
      [{ ...json(), expirationDate: "2099-01-01T00:00:00Z" }, "expirationDate"],
      [{ ...json(), issuanceDate: "2020-01-01T00:00:00Z" }, "issuanceDate"],
      [{ ...json(), evidence: [{ type: "x" }] }, "evidence"],
      [{ ...json(), iat: 1 }, "iat"],
      [{ ...json(), constructor: "not signed" }, "constructor"],
      [JSON.parse(`{"__proto__": {"x": 1}, ${JSON.stringify(json()).slice(1)}`), "__proto__"],
    ];
    for (const [form, field] of cases) {
      expect(
        refusal(() => credentialJwtOf(form)),
        field,
      ).toEqual({ code: "jwt_mismatch", field });
    }
    const { credentialStatus: _, ...noStatus } = json();
    expect(refusal(() => credentialJwtOf(noStatus))).toEqual({
      code: "jwt_mismatch",
      field: "credentialStatus",
    });
    const kParty = json().credentialSubject.kParty;
    const widened = {
      ...json(),
      credentialSubject: {
        ...json().credentialSubject,
        kParty: { ...kParty, actions: ["model:read", "round:aggregate"] },
      },
    };
    expect(refusal(() => credentialJwtOf(widened))).toEqual({
      code: "jwt_mismatch",
      field: "credentialSubject.kParty.actions",
    });
  });

  it("refuses structurally invalid input with malformed and the field", () => {
    const without = (key: string) => {
      const { [key]: _, ...rest } = json();
      return rest;
    };
    const cases: [unknown, string][] = [
      [without("@context"), "@context"],
      [{ ...json(), "@context": VC_CONTEXT }, "@context"],
      [{ ...json(), "@context": ["https://example.org/ctx", VC_CONTEXT] }, "@context"],
      [without("type"), "type"],
      [{ ...json(), type: ["KPartyCredential"] }, "type"],
      [{ ...json(), type: [1] }, "type"],
      [without("issuer"), "issuer"],
      [{ ...json(), issuer: 7 }, "issuer"],
      [{ ...json(), issuer: {} }, "issuer"],
      [without("credentialSubject"), "credentialSubject"],
      [{ ...json(), credentialSubject: "alice" }, "credentialSubject"],
      [{ ...json(), credentialSubject: [] }, "credentialSubject"],
      [without("issuanceDate"), "issuanceDate"],
      [{ ...json(), issuanceDate: "yesterday" }, "issuanceDate"],
      [{ ...json(), expirationDate: 1_790_086_400 }, "expirationDate"],
      [{ ...json(), id: 5 }, "id"],
      [without("proof"), "proof"],
      [{ ...json(), proof: { type: "Ed25519Signature2020", jwt: VC_JWT } }, "proof.type"],
      [
        { ...json(), proof: { type: "JwtProof2020", jwt: VC_JWT, created: "2026-01-01T00:00:00Z" } },
        "proof.created",
      ],
      [{ ...json(), proof: { type: "JwtProof2020" } }, "proof.jwt"],
      [{ ...json(), proof: { type: "JwtProof2020", jwt: "not.a.jwt" } }, "proof.jwt"],
      [{ ...json(), proof: { type: "JwtProof2020", jwt: jwtOf({ iss: ISSUER }) } }, "proof.jwt"],
      [
        { ...json(), proof: { type: "JwtProof2020", jwt: jwtOf(credentialPayload({ exp: "soon" })) } },
        "proof.jwt",
      ],
      [42, "verifiableCredential"],
      ["", "verifiableCredential"],
    ];
    for (const [form, field] of cases) {
      expect(
        refusal(() => credentialJwtOf(form)),
        field,
      ).toEqual({ code: "malformed", field });
    }
  });

  it("finds any change to a leaf of the JSON form (property)", () => {
    const leaves: string[][] = [];
    const walk = (value: unknown, path: string[]) => {
      if (value !== null && typeof value === "object") {
        for (const [k, v] of Object.entries(value)) walk(v, [...path, k]);
      } else leaves.push(path);
    };
    const { proof: _, ...outer } = json();
    walk(outer, []);
    fc.assert(
      fc.property(fc.constantFrom(...leaves), fc.string({ minLength: 1 }), (path, text) => {
        const form = json();
        let node = form;
        for (const key of path.slice(0, -1)) node = node[key];
        const last = path.at(-1) as string;
        fc.pre(node[last] !== text);
        node[last] = text;
        const { code } = refusal(() => credentialJwtOf(form));
        expect(["jwt_mismatch", "malformed"]).toContain(code);
      }),
      { numRuns: 200 },
    );
  });
});

it("answers any JSON value with the JWT or a malformed / jwt_mismatch refusal, nothing else (property)", () => {
  fc.assert(
    fc.property(fc.jsonValue(), fc.jsonValue(), (a, b) => {
      const form = { ...json(), credentialSubject: a };
      for (const input of [a, form, { ...json(), proof: { type: "JwtProof2020", jwt: b } }]) {
        for (const parse of [credentialJwtOf, presentationJwtOf]) {
          try {
            expect(typeof parse(input)).toBe("string");
          } catch (error) {
            expect(error instanceof KPartyError && ["malformed", "jwt_mismatch"].includes(error.code)).toBe(
              true,
            );
          }
        }
      }
    }),
    { numRuns: 300 },
  );
});

describe("presentationJwtOf", () => {
  const vpPayload = {
    iss: HOLDER,
    aud: "gateway.example",
    nonce: "n-1",
    iat: 1_790_000_100,
    vp: {
      "@context": [VC_CONTEXT],
      type: ["VerifiablePresentation"],
      verifiableCredential: [VC_JWT],
    },
  };
  const VP_JWT = jwtOf(vpPayload);
  const form = () => normalizePresentation(VP_JWT) as unknown as Record<string, any>;

  it("returns the JWT of a JWT string and of its exact JSON form, credentials as JWTs or JSON", () => {
    expect(presentationJwtOf(VP_JWT)).toBe(VP_JWT);
    expect(presentationJwtOf(form())).toBe(VP_JWT);
    expect(presentationJwtOf({ ...form(), verifiableCredential: [VC_JWT] })).toBe(VP_JWT);
  });

  it("refuses an outer holder, credential or claim that differs from the signed presentation", () => {
    const other = jwtOf(credentialPayload({ jti: "urn:uuid:someone-else" }));
    const embedded = form().verifiableCredential[0];
    const cases: [Record<string, any>, string][] = [
      [{ ...form(), holder: ISSUER }, "holder"],
      [{ ...form(), verifiableCredential: [other] }, "verifiableCredential[0]"],
      [
        { ...form(), verifiableCredential: [normalizeCredential(other)] },
        "verifiableCredential[0].proof.jwt",
      ],
      [{ ...form(), verifiableCredential: [VC_JWT, VC_JWT] }, "verifiableCredential"],
      [
        { ...form(), verifiableCredential: [{ ...embedded, issuer: { id: HOLDER } }] },
        "verifiableCredential[0].issuer.id",
      ],
      [{ ...form(), verifier: ["elsewhere.example"] }, "verifier[0]"],
      [{ ...form(), nonce: "n-2" }, "nonce"],
    ];
    for (const [posted, field] of cases) {
      expect(
        refusal(() => presentationJwtOf(posted)),
        field,
      ).toEqual({ code: "jwt_mismatch", field });
    }
    const { verifiableCredential: _, ...none } = form();
    expect(refusal(() => presentationJwtOf(none))).toEqual({
      code: "jwt_mismatch",
      field: "verifiableCredential",
    });
  });

  it("refuses a structurally invalid presentation with malformed and the field", () => {
    const { proof: _, ...noProof } = form();
    const cases: [unknown, string][] = [
      [noProof, "proof"],
      [{ ...form(), type: ["VerifiableCredential"] }, "type"],
      [{ ...form(), "@context": [] }, "@context"],
      [{ ...form(), holder: 3 }, "holder"],
      [{ ...form(), verifiableCredential: [7] }, "verifiableCredential[0]"],
      [{ ...form(), proof: { type: "JwtProof2020", jwt: VC_JWT } }, "proof.jwt"],
      [null, "verifiablePresentation"],
    ];
    for (const [posted, field] of cases) {
      expect(
        refusal(() => presentationJwtOf(posted)),
        field,
      ).toEqual({ code: "malformed", field });
    }
  });
});
