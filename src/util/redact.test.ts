import { describe, expect, it } from "vitest";
import { redactSecrets, redactUrl, secretsOfUrl } from "./redact.ts";

const URL = "http://alice:s3cr3t-pass@127.0.0.1:8545/v3/abcdef0123456789secret";

describe("redactUrl", () => {
  it("hides the userinfo and every path segment but versions, keeping scheme, host and port", () => {
    expect(redactUrl(URL)).toBe("http://***@127.0.0.1:8545/v3/***");
    expect(redactUrl("https://eth-mainnet.g.alchemy.com/v2/AbC-123_x")).toBe(
      "https://eth-mainnet.g.alchemy.com/v2/***",
    );
    expect(redactUrl("https://name.quiknode.pro/0123456789abcdef/")).toBe("https://name.quiknode.pro/***/");
    expect(redactUrl("wss://token@node.example:8546")).toBe("wss://***@node.example:8546");
  });

  it("hides query values and the fragment, keeping the parameter names", () => {
    expect(redactUrl("https://rpc.example/eth?apikey=XYZ123&x=1&flag#frag")).toBe(
      "https://rpc.example/***?apikey=***&x=***&***#***",
    );
  });

  it("returns a URL without credentials unchanged, and hides a string that is not a URL", () => {
    expect(redactUrl("http://127.0.0.1:8545")).toBe("http://127.0.0.1:8545");
    expect(redactUrl("http://127.0.0.1:8545/")).toBe("http://127.0.0.1:8545/");
    expect(redactUrl("alice:s3cr3t@node")).toBe("***");
  });
});

describe("secretsOfUrl", () => {
  it("lists userinfo parts, path segments and query values, raw and percent-decoded", () => {
    expect(secretsOfUrl(URL)).toEqual(["alice", "s3cr3t-pass", "abcdef0123456789secret"]);
    expect(secretsOfUrl("https://us%40x:p%3Ass@h/v1/seg?key=a%2Fbcd")).toEqual([
      "us%40x",
      "us@x",
      "p%3Ass",
      "p:ss",
      "a%2Fbcd",
      "a/bcd",
    ]);
    expect(secretsOfUrl("http://127.0.0.1:8545")).toEqual([]);
  });
});

describe("redactSecrets", () => {
  it("redacts URLs inside an ethers error message and known secrets echoed without their URL", () => {
    const message =
      'server response 500 (info={ "requestUrl": "http://alice:s3cr3t-pass@127.0.0.1:8545/v3/abcdef0123456789secret", "responseBody": "no route /v3/abcdef0123456789secret for alice" })';
    const out = redactSecrets(message, secretsOfUrl(URL));
    expect(out).toBe(
      'server response 500 (info={ "requestUrl": "http://***@127.0.0.1:8545/v3/***", "responseBody": "no route /v3/*** for ***" })',
    );
  });

  it("redacts URLs it was not told about, and leaves text without secrets as it is", () => {
    expect(redactSecrets("GET https://k:p@other.example/key123 failed; retry")).toBe(
      "GET https://***@other.example/*** failed; retry",
    );
    expect(redactSecrets("connect ECONNREFUSED 127.0.0.1:8545")).toBe("connect ECONNREFUSED 127.0.0.1:8545");
  });

  it("replaces the longest known secret first, and ignores known strings too short to be secrets", () => {
    expect(redactSecrets("tokenABCDEF and token", ["token", "tokenABCDEF", "ab"])).toBe("*** and ***");
    expect(redactSecrets("a bab", ["ab"])).toBe("a bab");
  });
});
