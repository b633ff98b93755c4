import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import { credentialJwtOf, decodeJwt, presentationJwtOf } from "../../credential/index.ts";
import { KPartyError } from "../../errors/index.ts";
import type { ChallengeStore } from "../../state/port.ts";
import { jsonObject } from "../body.ts";
import { rateLimitKey } from "../client-address.ts";
import { clientMessage, errorResponse } from "../errors.ts";
import type { GatewayServices } from "../services.ts";
import type { CheckResult } from "../verify/checks.ts";

/**
 * The VC-API `options.checks` a caller may list. Each names checks kparty runs on every
 * verification anyway (the signatures; revocation and suspension; the validity window), so
 * listing them changes nothing; a check kparty does not run is refused, and none is switched off.
 */
export const VC_API_CHECKS = ["proof", "credentialStatus", "issuanceDate", "expirationDate", "validity"];

/**
 * Reads a VC-API request body: exactly `field` (a JWT, or its JSON form, which must be exactly
 * what the JWT encodes: see `credentialJwtOf`) and optionally `options` with only `allowed`
 * keys besides `checks`.
 */
function parseVerifyRequest(
  body: unknown,
  field: "verifiableCredential" | "verifiablePresentation",
  allowed: string[],
): { jwt: string; options: Record<string, unknown> } {
  const fields = jsonObject(body, [field, "options"], `{${field}, options?}`);
  const { options = {} } = fields;
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new KPartyError("malformed", "options must be an object");
  }
  const unknownOptions = Object.keys(options as object).filter((k) => k !== "checks" && !allowed.includes(k));
  if (unknownOptions.length) {
    throw new KPartyError(
      "malformed",
      `unsupported options: ${unknownOptions.join(", ")} (options may add ${allowed.join(", ")} and list checks; no option removes a check)`,
    );
  }
  const { checks } = options as { checks?: unknown };
  if (checks !== undefined) {
    if (!Array.isArray(checks) || !checks.every((c) => typeof c === "string")) {
      throw new KPartyError("malformed", "options.checks must be an array of check names");
    }
    const unknownChecks = checks.filter((c) => !VC_API_CHECKS.includes(c));
    if (unknownChecks.length) {
      throw new KPartyError(
        "malformed",
        `unsupported checks: ${unknownChecks.join(", ")} (kparty always runs ${VC_API_CHECKS.join(", ")})`,
      );
    }
  }
  const value = fields[field];
  const jwt = field === "verifiableCredential" ? credentialJwtOf(value) : presentationJwtOf(value);
  return { jwt, options: options as Record<string, unknown> };
}

/**
 * A VC-API verification result: `verified` with every check run, or not verified with the
 * failing check's code. A check that could not run is not a verdict: it is thrown (5xx).
 */
async function verification<T extends { checks: CheckResult[] }>(
  run: () => Promise<T>,
  describe: (result: T) => Record<string, unknown>,
) {
  try {
    const result = await run();
    return { verified: true, checks: result.checks, warnings: [], errors: [], ...describe(result) };
  } catch (error) {
    // a check that could not run (chain down, a crashed check) is not a verdict: 5xx, logged
    if (!(error instanceof KPartyError) || errorResponse(error)[0] >= 500) throw error;
    return {
      verified: false,
      checks: (error.details.checks as CheckResult[] | undefined) ?? [],
      warnings: [],
      errors: [{ code: error.code, message: clientMessage(error) }],
    };
  }
}

/**
 * How `/presentations/verify` treats the presentation's nonce. A challenge this gateway issued
 * is single-use on every endpoint: verifying it here consumes it, whether or not the caller
 * named it. A caller's own challenge that this gateway never issued can only be compared with
 * the nonce (the caller keeps it single-use), and the result says so in a warning.
 */
async function vcApiChallenge(challenges: ChallengeStore, jwt: string, expected: string | undefined) {
  let nonce: unknown;
  try {
    nonce = decodeJwt(jwt).payload.nonce;
  } catch {
    // not a JWT: the verifier refuses it with its exact reason
  }
  const equal = (n: string) => {
    if (expected !== undefined && n !== expected)
      throw new KPartyError("challenge_invalid", "the nonce is not the expected challenge");
  };
  if (typeof nonce === "string" && (await challenges.issuedHere(nonce))) {
    const expectations = {
      precheckChallenge: (n: string) => {
        equal(n);
        return challenges.check(n);
      },
      consumeChallenge: (n: string) => {
        equal(n);
        return challenges.consume(n);
      },
    };
    return { expectations, warning: null };
  }
  if (expected === undefined) return { expectations: { consumeChallenge: null }, warning: null };
  return {
    expectations: { consumeChallenge: equal },
    warning: {
      code: "challenge_not_issued_here",
      message:
        "options.challenge was not issued by this gateway: it was compared with the presentation's nonce, not consumed",
    },
  };
}

/**
 * VC-API verification: `POST /credentials/verify` and `POST /presentations/verify`, through the
 * one verifier, with per-address rate limits. See docs/standards.md.
 */
export const vcApiRoutes: FastifyPluginAsync<{ services: GatewayServices }> = async (app, { services }) => {
  const { limiter, verificationsPerMinute, verifier, challenges } = services;
  const bucketOf = (request: FastifyRequest) => rateLimitKey(request.ip);

  app.post("/credentials/verify", async (request) => {
    await limiter.take(
      `verify:${bucketOf(request)}`,
      verificationsPerMinute,
      "verifications from this address",
    );
    const { jwt, options: opts } = parseVerifyRequest(request.body, "verifiableCredential", ["anchorProof"]);
    return verification(
      () => verifier.verifyCredential(jwt, opts.anchorProof),
      (c) => ({
        credential: {
          id: c.credentialId,
          issuer: c.issuer,
          subject: c.subject,
          types: c.types,
          anchoredAt: c.state.anchoredAt,
          // the K-th Party claims; null for another credential (verified, but it grants nothing)
          claims: c.claims,
        },
      }),
    );
  });

  app.post("/presentations/verify", async (request) => {
    await limiter.take(
      `verify:${bucketOf(request)}`,
      verificationsPerMinute,
      "verifications from this address",
    );
    const { jwt, options: opts } = parseVerifyRequest(request.body, "verifiablePresentation", [
      "challenge",
      "domain",
    ]);
    const { challenge, domain } = opts;
    if (challenge !== undefined && (typeof challenge !== "string" || challenge.length === 0)) {
      throw new KPartyError("malformed", "options.challenge must be a non-empty string");
    }
    if (domain !== undefined && (typeof domain !== "string" || domain.length === 0)) {
      throw new KPartyError("malformed", "options.domain must be a non-empty string");
    }
    const challengeCheck = await vcApiChallenge(challenges, jwt, challenge as string | undefined);
    return verification(
      () =>
        verifier.verifyPresentation(jwt, {
          domain: (domain as string | undefined) ?? null,
          ...challengeCheck.expectations,
        }),
      (p) => ({
        ...(challengeCheck.warning ? { warnings: [challengeCheck.warning] } : {}),
        holder: p.holder,
        credential: { id: p.credential.credentialId, issuer: p.credential.issuer },
      }),
    );
  });
};
