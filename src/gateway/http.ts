import type { FastifyInstance, FastifyRequest } from "fastify";
import { KPartyError } from "../errors/index.ts";
import { auditEntryOf } from "./audit-entry.ts";
import { answerNoRoute, errorHeaders, errorResponse, isInternalError } from "./errors.ts";
import type { GatewayServices } from "./services.ts";

/**
 * Load shedding on the root instance: a request that arrives while the gateway is at capacity
 * (`maxInFlight`, or an event loop that stays late) is refused with 503 `overloaded` and
 * `Retry-After: 1` before anything is parsed or verified (see `LoadShedder`).
 */
export function installLoadShedding(
  app: FastifyInstance,
  { shedder }: Pick<GatewayServices, "shedder">,
): void {
  shedder.start();
  const admitted = new WeakSet<FastifyRequest>();
  app.addHook("onRequest", (request, reply, done) => {
    if (shedder.shouldShed()) {
      const [status, body] = errorResponse(
        new KPartyError("overloaded", "the gateway is at capacity; retry shortly"),
      );
      reply.code(status).header("retry-after", "1").send(body);
      return;
    }
    shedder.enter();
    admitted.add(request);
    done();
  });
  const release = (request: FastifyRequest) => {
    if (admitted.delete(request)) shedder.leave();
  };
  app.addHook("onResponse", (request, _reply, done) => {
    release(request);
    done();
  });
  app.addHook("onRequestAbort", (request, done) => {
    release(request);
    done();
  });
}

/** What the HTTP layer threw (body limit, JSON, encoding), as kparty's error; others as they are. */
function fromHttpLayer(error: unknown, bodyLimit: number): unknown {
  const fastifyCode = (error as { code?: string }).code;
  if (fastifyCode === "FST_ERR_CTP_BODY_TOO_LARGE") {
    return new KPartyError("payload_too_large", `the body exceeds ${bodyLimit} bytes`);
  }
  if (
    fastifyCode === "FST_ERR_CTP_INVALID_MEDIA_TYPE" ||
    fastifyCode === "FST_ERR_CTP_EMPTY_JSON_BODY" ||
    fastifyCode === "FST_ERR_CTP_INVALID_JSON_BODY" ||
    error instanceof SyntaxError
  ) {
    return new KPartyError("malformed", "the body must be JSON (Content-Type: application/json)");
  }
  if (!(error instanceof KPartyError)) {
    const status = (error as { statusCode?: unknown }).statusCode;
    if (typeof status === "number" && status >= 400 && status < 500) {
      // another client error from the HTTP layer (bad Content-Length, bad URL encoding, …)
      return new KPartyError(status === 413 ? "payload_too_large" : "malformed", "the request is malformed");
    }
  }
  return error;
}

/**
 * The one place errors become responses: `{error: {code, message, field?, checks?}}` with the
 * status of the code (`errorResponse`), the DPoP challenge headers (`errorHeaders`), `Retry-After` on 503 and 429, the cause of an internal
 * failure in the operator's log only, and, when access had been granted before the operation
 * was refused, an audit record of that refusal. Unknown routes are 404 `not_found`.
 */
export function installErrorHandling(
  app: FastifyInstance,
  { audit, operatorLog }: Pick<GatewayServices, "audit" | "operatorLog">,
): void {
  app.setErrorHandler(async (error, request, reply) => {
    const mapped = fromHttpLayer(error, app.initialConfig.bodyLimit ?? 0);
    const route = request.routeOptions.url ?? "(no route)";
    if (isInternalError(mapped)) operatorLog.failure(`${request.method} ${route}`, error);
    // Access was granted, then the operation itself was refused: that is a decision too.
    if (request.kparty && mapped instanceof KPartyError) {
      try {
        const { holder, credentialId } = request.kparty;
        await audit.append(auditEntryOf(request, { outcome: "denied", error: mapped, holder, credentialId }));
      } catch (auditError) {
        // the request is refused either way; never let the error path itself fail
        operatorLog.failure(`${request.method} ${route} (audit)`, auditError);
      }
    }
    const [status, body] = errorResponse(mapped);
    reply.headers(errorHeaders(mapped));
    if (status === 503) reply.header("retry-after", "5");
    const retryAfter = mapped instanceof KPartyError ? mapped.details.retryAfterSeconds : undefined;
    if (status === 429 && typeof retryAfter === "number") reply.header("retry-after", String(retryAfter));
    return reply.code(status).send(body);
  });
  app.setNotFoundHandler(answerNoRoute);
}
