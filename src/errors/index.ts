export type { KPartyErrorCode, KPartyErrorOptions } from "./base.ts";
export { isKPartyError, KPartyError } from "./base.ts";
