import { keccak256, toUtf8Bytes } from "ethers";
import { describe, expect, it } from "vitest";
import { errorCode } from "../../test/fixtures/errors.ts";
import { credentialIdOf, decodeJwt } from "./jwt.ts";

const enc = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

describe("decodeJwt", () => {
  it("splits a compact JWS into parsed header, payload, signing input and signature bytes", () => {
    const jwt = `${enc({ alg: "ES256K" })}.${enc({ iss: "did:x" })}.${Buffer.from([1, 2, 3]).toString("base64url")}`;
    const d = decodeJwt(jwt);
    expect(d.header).toEqual({ alg: "ES256K" });
    expect(d.payload).toEqual({ iss: "did:x" });
    expect(d.signingInput).toBe(jwt.slice(0, jwt.lastIndexOf(".")));
    expect([...d.signature]).toEqual([1, 2, 3]);
  });

  it.each([
    ["not a string", 42],
    ["two segments", `${enc({})}.${enc({})}`],
    ["four segments", `${enc({})}.${enc({})}.AA.AA`],
    ["padding characters", `${enc({})}=.${enc({})}.AA`],
    ["non-canonical base64url", `${enc({})}.${enc({})}.AB`],
    ["a header that is not JSON", `${Buffer.from("nope").toString("base64url")}.${enc({})}.AA`],
    ["a payload that is an array", `${enc({})}.${enc([1])}.AA`],
    ["a payload that is not UTF-8", `${enc({})}.${Buffer.from([0xff, 0xfe]).toString("base64url")}.AA`],
  ])("refuses %s: malformed", (_what, jwt) => {
    expect(errorCode(() => decodeJwt(jwt))).toBe("malformed");
  });
});

describe("credentialIdOf", () => {
  it("is keccak256 of the signing input, independent of the signature", () => {
    const input = `${enc({ alg: "ES256K" })}.${enc({ jti: "urn:uuid:1" })}`;
    expect(credentialIdOf(`${input}.AAAA`)).toBe(keccak256(toUtf8Bytes(input)));
    expect(credentialIdOf(`${input}.BBBB`)).toBe(credentialIdOf(`${input}.AAAA`));
  });
});
