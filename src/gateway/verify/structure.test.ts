import { describe, expect, it } from "vitest";
import type { Deployment } from "../../chain/index.ts";
import { caip10, statusEntry, VC_CONTEXT } from "../../credential/index.ts";
import { KPartyError } from "../../errors/index.ts";
import { asToken, parseCredentialPayload, parseTokenPayload } from "./structure.ts";

const deployment: Deployment = {
  chainId: 31337,
  contracts: {
    EthereumDIDRegistry: "0x0000000000000000000000000000000000000001",
    ConsortiumRegistry: "0x0000000000000000000000000000000000000002",
    CredentialRegistry: "0x0000000000000000000000000000000000000003",
  },
  deployedAtBlock: 0,
};
const ISSUER = "did:ethr:0x7a69:0x1111111111111111111111111111111111111111";
const pointer = { chainId: 31337, registry: deployment.contracts.CredentialRegistry, index: 4 };
const status = [
  statusEntry({ ...pointer, purpose: "revocation" }),
  statusEntry({ ...pointer, purpose: "suspension" }),
];

function payload(vc: Record<string, unknown>, claims: Record<string, unknown> = {}) {
  return {
    iss: ISSUER,
    nbf: 100,
    exp: 200,
    ...claims,
    vc: { "@context": [VC_CONTEXT], credentialStatus: status, ...vc },
  };
}

const codeOf = (fn: () => unknown) => {
  try {
    fn();
    return "parsed";
  } catch (error) {
    return error instanceof KPartyError ? `${error.code}: ${error.shortMessage}` : String(error);
  }
};

describe("parseCredentialPayload: any credential of a member; asToken: a K-th Party token", () => {
  it("parses another credential without K-th Party claims, even without a subject id", () => {
    const generic = payload({ type: ["VerifiableCredential"], credentialSubject: { degree: "BSc" } });
    expect(parseCredentialPayload(generic, deployment)).toEqual({
      issuer: ISSUER,
      subject: null,
      notBefore: 100,
      expires: 200,
      types: ["VerifiableCredential"],
      claims: null,
      revocationIndex: 4,
      suspensionIndex: 4,
    });
    expect(codeOf(() => parseTokenPayload(generic, deployment))).toBe(
      "malformed: credential sub must be the holder's DID",
    );
    const withSubject = payload(
      { type: ["VerifiableCredential"], credentialSubject: { id: "did:key:z6Mk" } },
      { sub: "did:key:z6Mk" },
    );
    expect(codeOf(() => asToken(parseCredentialPayload(withSubject, deployment)))).toBe(
      "malformed: vc type must include VerifiableCredential and KPartyCredential",
    );
  });

  it("refuses K-th Party claims outside a KPartyCredential, and a KPartyCredential of another consortium", () => {
    const kParty = {
      consortium: caip10(31337, deployment.contracts.ConsortiumRegistry),
      role: "participant",
      models: ["m"],
      actions: ["model:read"],
    };
    expect(
      codeOf(() =>
        parseCredentialPayload(
          payload({ type: ["VerifiableCredential"], credentialSubject: { kParty } }),
          deployment,
        ),
      ),
    ).toBe("malformed: K-th Party claims belong in a KPartyCredential");
    const token = (consortium: string) =>
      payload(
        {
          type: ["VerifiableCredential", "KPartyCredential"],
          credentialSubject: { kParty: { ...kParty, consortium } },
        },
        { sub: "did:ethr:0x7a69:0x2222222222222222222222222222222222222222" },
      );
    expect(parseTokenPayload(token(kParty.consortium), deployment).claims?.actions).toEqual(["model:read"]);
    expect(codeOf(() => parseCredentialPayload(token("eip155:1:0x0"), deployment))).toBe(
      "issuer_not_member: the credential was issued for another consortium",
    );
  });

  it("refuses a type that is not a list of strings with VerifiableCredential", () => {
    for (const type of [["KPartyCredential"], "VerifiableCredential", [1], []]) {
      expect(codeOf(() => parseCredentialPayload(payload({ type, credentialSubject: {} }), deployment))).toBe(
        "malformed: vc type must be a list of strings that includes VerifiableCredential",
      );
    }
  });
});
