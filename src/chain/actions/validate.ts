import { KPartyError } from "../../errors/index.ts";

/** Largest status list index kparty hands out (2^53 − 1, safe as a JSON number). */
export const MAX_STATUS_INDEX = Number.MAX_SAFE_INTEGER;

export function assertBytes32(value: string, name: string): void {
  if (!/^0x[0-9a-fA-F]{64}$/.test(value)) {
    throw new KPartyError("invalid_argument", `${name} must be 32 bytes of 0x-prefixed hex`);
  }
}

export function assertStatusIndex(index: number): void {
  if (!Number.isSafeInteger(index) || index < 0) {
    throw new KPartyError(
      "invalid_argument",
      `status index must be an integer between 0 and ${MAX_STATUS_INDEX}`,
    );
  }
}

export function assertAddress(value: string, name: string): void {
  if (typeof value !== "string" || !/^0x[0-9a-fA-F]{40}$/.test(value)) {
    throw new KPartyError("invalid_argument", `${name} must be a 0x-prefixed 20-byte address`);
  }
}

/** Status indexes for a batch: validated, de-duplicated and sorted ascending (what the contract requires). */
export function sortedIndexes(indexes: number[]): number[] {
  if (!Array.isArray(indexes) || indexes.length === 0) {
    throw new KPartyError("invalid_argument", "a batch needs at least one status index");
  }
  for (const index of indexes) assertStatusIndex(index);
  return [...new Set(indexes)].sort((a, b) => a - b);
}
