/**
 * Worker thread of {@link createEs256kPool}: verifies ES256K signatures off the main thread.
 * It keeps its own caches (key objects, public keys learned for addresses).
 */
import { parentPort } from "node:worker_threads";
import { type Es256kKey, verifyEs256k } from "./es256k.ts";

parentPort?.on(
  "message",
  (m: { id: number; signingInput: string; signature: Uint8Array; keys: Es256kKey[] }) => {
    let index = -1;
    try {
      const matched = verifyEs256k(m.signingInput, m.signature, m.keys);
      index = matched ? m.keys.indexOf(matched) : -1;
    } catch {
      index = -1; // a malformed key never verifies
    }
    parentPort?.postMessage({ id: m.id, index });
  },
);
