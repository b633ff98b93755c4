/**
 * Worker thread of {@link createEs256kPool}: recovers the public keys behind ES256K signatures
 * and matches them to did:ethr addresses, off the main thread.
 */
import { parentPort } from "node:worker_threads";
import { type Es256kRecoveryMatch, recoverEs256k } from "./es256k.ts";

parentPort?.on(
  "message",
  (m: { id: number; signingInput: string; signature: Uint8Array; addresses: string[] }) => {
    let match: Es256kRecoveryMatch | null = null;
    try {
      match = recoverEs256k(m.signingInput, m.signature, m.addresses);
    } catch {
      match = null; // a malformed address never matches
    }
    parentPort?.postMessage({ id: m.id, match });
  },
);
