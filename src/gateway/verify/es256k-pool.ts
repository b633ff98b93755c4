import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { type Es256kKey, type Es256kRecoveryMatch, verifyEs256kAsync } from "./es256k.ts";

export interface Es256kPool {
  /** Same answer as `verifyEs256k`, computed off the event loop. */
  verify(signingInput: string, signature: Uint8Array, keys: Es256kKey[]): Promise<Es256kKey | null>;
  close(): Promise<void>;
}

/**
 * ES256K verification with public-key recovery on `threads` worker threads:
 * - a check against a public key (given by the DID document, or learned for its address) runs
 *   in OpenSSL on libuv's thread pool, through `node:crypto`'s asynchronous verify;
 * - recovering the public key behind a signature to match it to a did:ethr address (about
 *   1.5 ms, once per address: the key is then learned on the event loop) runs on the threads,
 *   round-robin. Without a pool, `verifyEs256kAsync` recovers on the event loop.
 * Each thread costs 20-50 MB of memory. A worker that dies fails its pending recoveries and
 * those sent to it later (they throw, and the gateway answers 500 rather than grant); after
 * `close`, `verify` throws.
 *
 * @example
 * ```ts
 * const pool = createEs256kPool(1);
 * const key = await pool.verify(jwt.signingInput, jwt.signature, keys);
 * await pool.close();
 * ```
 */
export function createEs256kPool(threads: number): Es256kPool {
  if (!Number.isSafeInteger(threads) || threads < 1)
    throw new TypeError("threads must be a positive integer");
  const pending = new Map<
    number,
    { resolve: (m: Es256kRecoveryMatch | null) => void; reject: (e: Error) => void }
  >();
  let nextId = 0;
  /** Workers that exited, and why: what they are sent fails at once instead of waiting forever. */
  const dead = new Map<Worker, Error>();
  const workers = Array.from({ length: threads }, () => {
    // A small young generation: the thread allocates little that lives, and its heap is
    // resident memory of the gateway.
    // The worker file beside this one: .ts in the checkout, .js in the compiled package.
    const worker = new Worker(
      new URL(`./es256k-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url),
      {
        resourceLimits: { maxYoungGenerationSizeMb: 4 },
      },
    );
    worker.unref();
    worker.on("message", (m: { id: number; match: Es256kRecoveryMatch | null }) => {
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      p.resolve(m.match);
    });
    const failAll = (error: Error) => {
      for (const [id, p] of pending) {
        pending.delete(id);
        p.reject(error);
      }
    };
    worker.on("error", failAll);
    worker.on("exit", (code) => {
      const error = new Error(`verification thread exited with ${code}`);
      dead.set(worker, error);
      failAll(error);
    });
    return worker;
  });
  let turn = 0;
  let closed = false;
  const recover = (signingInput: string, signature: Uint8Array, addresses: string[]) => {
    const id = nextId++;
    const worker = workers[turn++ % workers.length] as Worker;
    return new Promise<Es256kRecoveryMatch | null>((resolve, reject) => {
      const error = dead.get(worker);
      if (error) return reject(error);
      pending.set(id, { resolve, reject });
      worker.postMessage({ id, signingInput, signature, addresses });
    });
  };
  return {
    async verify(signingInput, signature, keys) {
      if (closed) throw new Error("the verification pool is closed");
      return verifyEs256kAsync(signingInput, signature, keys, recover);
    },
    async close() {
      closed = true;
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
