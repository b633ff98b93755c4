import { makeError } from "ethers";
import { describe, expect, it } from "vitest";
import { toChainError } from "./errors.ts";

const URL = "http://alice:s3cr3t-pass@127.0.0.1:8545/v3/abcdef0123456789secret";

describe("toChainError", () => {
  it("maps an eth_call the node answered with an error and no revert data to registry_unavailable", () => {
    const error = makeError("missing revert data", "CALL_EXCEPTION", {
      action: "call",
      data: null,
      reason: null,
      transaction: { to: null, data: "0x" },
      invocation: null,
      revert: null,
      info: { error: { code: -32000, message: `upstream ${URL} failed` } },
    });
    const mapped = toChainError(error, "read credential state");
    expect([mapped.code, mapped.shortMessage]).toEqual([
      "registry_unavailable",
      "read credential state: chain unavailable: missing revert data (the node said: upstream http://***@127.0.0.1:8545/v3/*** failed)",
    ]);
  });

  it("keeps a revert without data a revert", () => {
    const error = makeError("missing revert data", "CALL_EXCEPTION", {
      action: "call",
      data: "0x",
      reason: null,
      transaction: { to: null, data: "0x" },
      invocation: null,
      revert: null,
      info: { error: { code: 3, message: "execution reverted" } },
    });
    expect(toChainError(error, "anchor").code).toBe("chain_reverted");
  });

  it("quotes an HTTP failure by its short message, without the request URL's secrets or the response body", () => {
    const error = makeError("server response 500 Internal Server Error", "SERVER_ERROR", {
      request: null as never,
      response: null as never,
      info: { requestUrl: URL, responseBody: "no upstream for /v3/abcdef0123456789secret" },
    });
    const mapped = toChainError(error, "read the chain's status");
    expect([mapped.code, mapped.shortMessage]).toEqual([
      "registry_unavailable",
      "read the chain's status: chain unavailable: server response 500 Internal Server Error",
    ]);
  });

  it("quotes a system error as it is (the operator needs the address), redacting any URL in it", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:8545"), { code: "ECONNREFUSED" });
    expect(toChainError(refused, "read").shortMessage).toBe(
      "read: chain unavailable: connect ECONNREFUSED 127.0.0.1:8545",
    );
    expect(toChainError(new Error(`fetch ${URL} failed`), "read").shortMessage).toBe(
      "read: chain unavailable: fetch http://***@127.0.0.1:8545/v3/*** failed",
    );
  });
});
