import { KPartyError, type KPartyErrorCode } from "../../errors/index.ts";

/** One named verification step and its outcome, reported to callers. */
export interface CheckResult {
  check: string;
  passed: boolean;
  code?: KPartyErrorCode;
}

/**
 * Runs named checks in order, recording each; the first failure throws a `KPartyError`
 * whose `details.checks` lists every check run so far (the failed one last).
 */
export class CheckLog {
  readonly results: CheckResult[] = [];

  /** Records `check` as passed when `fn` returns, failed (with the error's code) when it throws. */
  async run<T>(check: string, fn: () => T | Promise<T>): Promise<T> {
    try {
      const value = await fn();
      this.results.push({ check, passed: true });
      return value;
    } catch (error) {
      const kerr =
        error instanceof KPartyError
          ? error
          : new KPartyError("internal", `${check} failed unexpectedly`, { cause: error });
      this.results.push({ check, passed: false, code: kerr.code });
      throw new KPartyError(kerr.code, kerr.shortMessage, {
        details: { ...kerr.details, checks: this.results },
        cause: kerr.cause ?? kerr,
      });
    }
  }
}

export function fail(code: KPartyErrorCode, message: string, details?: Record<string, unknown>): never {
  throw new KPartyError(code, message, details ? { details } : {});
}
