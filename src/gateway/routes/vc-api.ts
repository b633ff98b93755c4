import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import { credentialJwtOf, decodeJwt, presentationJwtOf } from "../../credential/index.ts";
import { KPartyError, type ServiceErrorCode } from "../../errors/index.ts";
import type { ChallengeStore } from "../../state/port.ts";
import { type InputMessages, rejectInvalidInput } from "../body.ts";
import { rateLimitKey } from "../client-address.ts";
import { clientMessage, errorResponse } from "../errors.ts";
import { errorResponses, UNAVAILABLE, verificationSchema } from "../schemas.ts";
import type { GatewayServices } from "../services.ts";
import type { CheckResult } from "../verify/checks.ts";

/**
 * The VC-API `options.checks` a caller may list. Each names checks kparty runs on every
 * verification anyway (the signatures; revocation and suspension; the validity window), so
 * listing them changes nothing; a check kparty does not run is refused, and none is switched off.
 */
export const VC_API_CHECKS = ["proof", "credentialStatus", "issuanceDate", "expirationDate", "validity"];

const checksSchema = {
  type: "array",
  items: { type: "string", enum: VC_API_CHECKS },
  description: "Checks kparty runs on every verification anyway; listing one changes nothing. Others: 400.",
};
const jwtOrJsonForm = {
  anyOf: [{ type: "string" }, { type: "object" }],
  description:
    "A JWT (compact JWS, ES256K), or its VCDM 1.1 JSON form with proof {type: JwtProof2020, jwt}: " +
    "the JSON form must be exactly what proof.jwt decodes to (VC Data Model 1.1 §6.3.1), else 400.",
};
const nonEmpty = { type: "string", minLength: 1 };

/** The body of a VC-API verify request: exactly `field` and optionally `options` with `allowed` keys. */
function verifyRequestSchema(field: string, options: Record<string, object>) {
  return {
    type: "object",
    required: [field],
    additionalProperties: false,
    properties: {
      [field]: jwtOrJsonForm,
      options: {
        type: "object",
        additionalProperties: false,
        properties: { checks: checksSchema, ...options },
      },
    },
  };
}

/** How a refused VC-API body is worded (the codes: `malformed`). */
function verifyInput(field: string, allowed: string[]): InputMessages {
  return {
    shape: `{${field}, options?}`,
    fields: {
      "/options": "options must be an object",
      "/options/checks": (checks, keyword) =>
        keyword === "enum"
          ? `unsupported checks: ${(checks as unknown[]).filter((c) => !VC_API_CHECKS.includes(c as string)).join(", ")} (kparty always runs ${VC_API_CHECKS.join(", ")})`
          : "options.checks must be an array of check names",
      "/options/challenge": "options.challenge must be a non-empty string",
      "/options/domain": "options.domain must be a non-empty string",
      "/options/anchorProof": "options.anchorProof must be an array of strings",
    },
    unknown: {
      "/options": (names) =>
        `unsupported options: ${names.join(", ")} (options may add ${allowed.join(", ")} and list checks; no option removes a check)`,
    },
  };
}

const VERIFY_SPLIT =
  "Structurally invalid input (a missing or wrongly typed @context, type, issuer, credentialSubject, " +
  "issuanceDate or proof; an unknown option or check) is 400 malformed, and a JSON form whose unsigned " +
  "fields differ from what its proof.jwt encodes is 400 jwt_mismatch, each with the field; neither is a " +
  "verdict. A well-formed credential or presentation that fails a check (signature, window, anchoring, " +
  "membership, status, challenge, audience) is 200 with verified: false and the failing check's code.";

const VERIFY_CODES: ServiceErrorCode[] = [
  "jwt_mismatch",
  "payload_too_large",
  "rate_limited",
  ...UNAVAILABLE,
];

const verifyRoute = (
  field: string,
  options: Record<string, object>,
  summary: string,
  description: string,
) => ({
  attachValidation: true,
  config: { doc: { summary, description, secured: false, tags: ["vc-api"] } },
  schema: {
    body: verifyRequestSchema(field, options),
    response: { 200: { description: "the verdict", ...verificationSchema }, ...errorResponses(VERIFY_CODES) },
  },
});

const CREDENTIAL_INPUT = verifyInput("verifiableCredential", ["anchorProof"]);
const PRESENTATION_INPUT = verifyInput("verifiablePresentation", ["challenge", "domain"]);

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
  /** Both verify routes share one budget per client address. */
  const takeVerification = (request: FastifyRequest) =>
    limiter.take(
      `verify:${rateLimitKey(request.ip)}`,
      verificationsPerMinute,
      "verifications from this address",
    );

  const credentialRoute = verifyRoute(
    "verifiableCredential",
    { anchorProof: { type: "array", items: { type: "string" } } },
    "VC-API: verify one K-th Party token (options may add checks, never remove them)",
    VERIFY_SPLIT,
  );
  app.post("/credentials/verify", credentialRoute, async (request) => {
    await takeVerification(request);
    rejectInvalidInput(request, CREDENTIAL_INPUT);
    const body = request.body as { verifiableCredential: unknown; options?: { anchorProof?: string[] } };
    const jwt = credentialJwtOf(body.verifiableCredential);
    return verification(
      () => verifier.verifyCredential(jwt, body.options?.anchorProof),
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

  const presentationRoute = verifyRoute(
    "verifiablePresentation",
    { challenge: nonEmpty, domain: nonEmpty },
    "VC-API: verify a presentation and its token (options may add checks, never remove them)",
    `${VERIFY_SPLIT} A nonce that this gateway issued (POST /challenges or /auth/challenge) is ` +
      "single-use on every endpoint: verifying it here consumes it, named in options.challenge or not. " +
      "An options.challenge this gateway did not issue is only compared with the presentation's nonce " +
      "(the caller must keep it single-use), and the result carries the warning challenge_not_issued_here.",
  );
  app.post("/presentations/verify", presentationRoute, async (request) => {
    await takeVerification(request);
    rejectInvalidInput(request, PRESENTATION_INPUT);
    const body = request.body as {
      verifiablePresentation: unknown;
      options?: { challenge?: string; domain?: string };
    };
    const jwt = presentationJwtOf(body.verifiablePresentation);
    const { challenge, domain } = body.options ?? {};
    const challengeCheck = await vcApiChallenge(challenges, jwt, challenge);
    return verification(
      () =>
        verifier.verifyPresentation(jwt, {
          domain: domain ?? null,
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
