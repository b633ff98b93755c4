import { describe, expect, it } from "vitest";
import { errorCode, errorCodeOf } from "../../../test/fixtures/errors.ts";
import type { CredentialState } from "../../chain/index.ts";
import {
  credentialVerdict,
  credentialWindowOf,
  judgeCredentialState,
  REMOVED_ISSUER_POLICIES,
  type RemovedIssuerPolicy,
} from "./judge.ts";

const ISSUER = "0x00000000000000000000000000000000000000aa";
const good: CredentialState = {
  anchoredBy: ISSUER,
  anchoredAt: 10,
  issuerIsMember: true,
  issuerWasMemberAtAnchor: true,
  revoked: false,
  suspended: false,
  blockNumber: 20,
};

function judge(patch: Partial<CredentialState>, policy: RemovedIssuerPolicy = "deny") {
  const ran: string[] = [];
  const run = (check: string, fn: () => void) => {
    ran.push(check);
    fn();
  };
  return errorCodeOf(judgeCredentialState({ ...good, ...patch }, ISSUER, policy, run)).then((code) => ({
    code,
    ran,
  }));
}

describe("judgeCredentialState", () => {
  it("passes a member's anchored, valid credential after running every check in order", async () => {
    expect(await judge({})).toEqual({
      code: "no error",
      ran: [
        "credential.issuer_member",
        "credential.anchored",
        "credential.issued_while_member",
        "credential.revocation",
        "credential.suspension",
      ],
    });
  });

  it.each([
    [{ issuerIsMember: false }, "deny", "issuer_not_member"],
    [{ issuerIsMember: false }, "honor-issued-while-member", "no error"],
    [{ issuerIsMember: false, revoked: true }, "honor-issued-while-member", "revoked"],
    [{ anchoredBy: null, anchoredAt: null }, "deny", "not_anchored"],
    [{ anchoredBy: "0x00000000000000000000000000000000000000bb" }, "deny", "not_anchored"],
    [{ issuerWasMemberAtAnchor: false }, "deny", "issuer_not_member"],
    [{ issuerWasMemberAtAnchor: false }, "honor-issued-while-member", "issuer_not_member"],
    [{ revoked: true, suspended: true }, "deny", "revoked"],
    [{ suspended: true }, "deny", "suspended"],
  ] as const)("%o under %s → %s", async (patch, policy, code) => {
    expect((await judge(patch, policy)).code).toBe(code);
  });

  it("compares the anchoring account case-insensitively", async () => {
    expect((await judge({ anchoredBy: ISSUER.toUpperCase().replace("0X", "0x") })).code).toBe("no error");
  });
});

describe("credentialVerdict, the one verdict", () => {
  it("answers exactly what judgeCredentialState decides, for every state and both policies", async () => {
    const anchors = [ISSUER, null, "0x00000000000000000000000000000000000000bb"];
    const flags = [true, false];
    let cases = 0;
    for (const anchoredBy of anchors)
      for (const issuerIsMember of flags)
        for (const issuerWasMemberAtAnchor of flags)
          for (const revoked of flags)
            for (const suspended of flags)
              for (const policy of REMOVED_ISSUER_POLICIES) {
                const patch = { anchoredBy, issuerIsMember, issuerWasMemberAtAnchor, revoked, suspended };
                const judged = await judge(patch, policy);
                const verdict = credentialVerdict({ ...good, ...patch }, ISSUER, policy);
                expect(verdict.valid ? "no error" : verdict.code, JSON.stringify({ ...patch, policy })).toBe(
                  judged.code,
                );
                if (!verdict.valid) expect(verdict.check).toBe(judged.ran.at(-1));
                cases++;
              }
    expect(cases).toBe(96);
  });

  it("refuses a credential anchored by another account, or whose issuer was not a member at anchoring", () => {
    expect(
      credentialVerdict(
        { ...good, anchoredBy: "0x00000000000000000000000000000000000000bb" },
        ISSUER,
        "deny",
      ),
    ).toEqual({
      valid: false,
      check: "credential.anchored",
      code: "not_anchored",
      message: "the credential was anchored by another account than its issuer",
    });
    expect(credentialVerdict({ ...good, issuerWasMemberAtAnchor: false }, ISSUER, "deny")).toMatchObject({
      valid: false,
      code: "issuer_not_member",
    });
  });

  it("with the credential's window, judges its times first, with the one clock skew, as the verifier does", () => {
    const window = { at: 1_000, notBefore: 900, expires: 2_000, skewSeconds: 60 };
    expect(
      credentialVerdict({ ...good, revoked: true }, ISSUER, "deny", { ...window, expires: 940 }),
    ).toEqual({
      valid: false,
      check: "credential.validity",
      code: "expired",
      message: "credential expired at 940",
    });
    expect(credentialVerdict(good, ISSUER, "deny", { ...window, expires: 941 })).toEqual({ valid: true });
    expect(credentialVerdict(good, ISSUER, "deny", { ...window, notBefore: 1_061 })).toMatchObject({
      valid: false,
      code: "not_yet_valid",
    });
    expect(credentialVerdict(good, ISSUER, "deny", { ...window, notBefore: 1_060 })).toEqual({ valid: true });
    expect(credentialVerdict({ ...good, suspended: true }, ISSUER, "deny", window)).toMatchObject({
      code: "suspended",
    });
  });
});

describe("credentialWindowOf", () => {
  const jwt = (payload: Record<string, unknown>) =>
    `e30.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.c2ln`;

  it("reads nbf and exp, the time in whole seconds and the default skew", () => {
    expect(credentialWindowOf(jwt({ nbf: 10, exp: 20 }), 15_999)).toEqual({
      at: 15,
      notBefore: 10,
      expires: 20,
      skewSeconds: 60,
    });
  });

  it("refuses a date that is not a NumericDate with malformed", () => {
    expect(errorCode(() => credentialWindowOf(jwt({ exp: "soon" }), 0))).toBe("malformed");
  });
});
