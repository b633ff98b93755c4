import type { DIDDocument, VerificationMethod } from "did-resolver";
import type { Es256kKey } from "./es256k.ts";

/** The relationship a signature must come from: VCs are asserted, VPs authenticated. */
export type Relationship = "assertionMethod" | "authentication";

/** The secp256k1 keys of `doc` usable for `relationship`. */
export function es256kKeys(doc: DIDDocument, relationship: Relationship): Es256kKey[] {
  const methods = new Map<string, VerificationMethod>();
  for (const vm of doc.verificationMethod ?? []) methods.set(vm.id, vm);
  const keys: Es256kKey[] = [];
  for (const ref of doc[relationship] ?? []) {
    const vm = typeof ref === "string" ? methods.get(ref) : ref;
    if (!vm) continue;
    if (vm.publicKeyHex && /^(0x)?(02|03|04)[0-9a-fA-F]+$/.test(vm.publicKeyHex)) {
      keys.push({ publicKeyHex: vm.publicKeyHex });
    } else if (vm.blockchainAccountId) {
      const address = vm.blockchainAccountId.split(":").pop() ?? "";
      if (/^0x[0-9a-fA-F]{40}$/.test(address)) keys.push({ address });
    } else if (typeof vm.ethereumAddress === "string") {
      keys.push({ address: vm.ethereumAddress });
    }
  }
  return keys;
}
