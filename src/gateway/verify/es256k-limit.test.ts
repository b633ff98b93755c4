import { describe, expect, it, vi } from "vitest";
import { other, sign, wallet } from "../../../test/fixtures/es256k.ts";

/** How many asynchronous checks are on libuv's thread pool at once, at most. */
const onThreadPool = vi.hoisted(() => ({ now: 0, max: 0 }));

vi.mock("node:crypto", async (importOriginal) => {
  const crypto = await importOriginal<typeof import("node:crypto")>();
  const verify = (...args: unknown[]) => {
    const callback = args[4] as ((error: Error | null, valid: boolean) => void) | undefined;
    if (typeof callback !== "function") return (crypto.verify as (...a: unknown[]) => boolean)(...args);
    onThreadPool.now += 1;
    onThreadPool.max = Math.max(onThreadPool.max, onThreadPool.now);
    return (crypto.verify as (...a: unknown[]) => void)(
      ...args.slice(0, 4),
      (error: Error | null, valid: boolean) => {
        onThreadPool.now -= 1;
        callback(error, valid);
      },
    );
  };
  return { ...crypto, default: { ...crypto, verify }, verify };
});

const { verifyEs256kAsync } = await import("./es256k.ts");

describe("asynchronous ES256K checks", () => {
  it("keep at most eight per thread on the thread pool at once, and answer each", async () => {
    const input = "eyJhbGciOiJFUzI1NksifQ.eyJpc3MiOiJsaW1pdCJ9";
    const sig = sign(wallet.signingKey, input);
    const pub = { publicKeyHex: wallet.signingKey.compressedPublicKey.slice(2) };
    const otherPub = { publicKeyHex: other.signingKey.compressedPublicKey.slice(2) };
    const answers = await Promise.all(
      Array.from({ length: 48 }, (_, i) => verifyEs256kAsync(input, sig, i % 3 === 0 ? [otherPub] : [pub])),
    );
    expect(answers).toEqual(Array.from({ length: 48 }, (_, i) => (i % 3 === 0 ? null : pub)));
    expect(process.env.UV_THREADPOOL_SIZE).toBeUndefined(); // libuv's default: 4 threads
    expect(onThreadPool.max).toBe(32);
    expect(onThreadPool.now).toBe(0);
  });
});
