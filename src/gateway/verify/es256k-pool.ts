import { Worker } from "node:worker_threads";
import type { Es256kKey } from "./es256k.ts";

/**
 * Verification threads worth running on a machine with `cores` cores: one per core beyond the
 * event loop's, at most 4 (each costs about 20 MB of memory).
 */
export function defaultVerifyThreads(cores: number): number {
  return Math.max(0, Math.min(4, cores - 1));
}

export interface Es256kPool {
  /** Same answer as `verifyEs256k`, computed on a worker thread. */
  verify(signingInput: string, signature: Uint8Array, keys: Es256kKey[]): Promise<Es256kKey | null>;
  close(): Promise<void>;
}

/**
 * ES256K verification on `threads` worker threads, so a gateway uses more than one core for
 * its most expensive step. Requests are spread round-robin; a worker that dies fails its
 * pending verifications (they throw, and the gateway answers 500 rather than grant).
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
    { keys: Es256kKey[]; resolve: (k: Es256kKey | null) => void; reject: (e: Error) => void }
  >();
  let nextId = 0;
  const workers = Array.from({ length: threads }, () => {
    // A small young generation: the thread allocates little that lives, and its heap is
    // resident memory of the gateway.
    const worker = new Worker(new URL("./es256k-worker.ts", import.meta.url), {
      resourceLimits: { maxYoungGenerationSizeMb: 4 },
    });
    worker.unref();
    worker.on("message", (m: { id: number; index: number }) => {
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      p.resolve(m.index >= 0 ? (p.keys[m.index] ?? null) : null);
    });
    const failAll = (error: Error) => {
      for (const [id, p] of pending) {
        pending.delete(id);
        p.reject(error);
      }
    };
    worker.on("error", failAll);
    worker.on("exit", (code) => failAll(new Error(`verification thread exited with ${code}`)));
    return worker;
  });
  let turn = 0;
  return {
    verify(signingInput, signature, keys) {
      const id = nextId++;
      const worker = workers[turn++ % workers.length] as Worker;
      return new Promise((resolve, reject) => {
        pending.set(id, { keys, resolve, reject });
        worker.postMessage({ id, signingInput, signature, keys });
      });
    },
    async close() {
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}
