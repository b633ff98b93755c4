export type {
  ChainErrorCode,
  CliErrorCode,
  KPartyErrorCode,
  KPartyErrorOptions,
  ServiceErrorCode,
} from "./base.ts";
export {
  CHAIN_ERROR_CODES,
  CLI_ERROR_CODES,
  isKPartyError,
  KPartyError,
  SERVICE_ERROR_CODES,
} from "./base.ts";
