import type { FastifyRequest } from "fastify";
import { KPartyError } from "../errors/index.ts";
import type { AuditEntry } from "./audit.ts";

/** What was decided on a request, for {@link auditEntryOf}. */
export type AuditOutcome = {
  /** The holder and credential the decision concerned, when known. */
  holder?: string | null;
  credentialId?: string | null;
  /** The action granted or asked for (default: the one access was granted for, if any). */
  action?: string | null;
  /**
   * The route to record, for a route whose pattern names something other than a model
   * (default: the request's route pattern).
   */
  route?: string;
  /** The model concerned (default: the `:id` of the route's parameters). */
  model?: string | null;
} & ({ outcome: "granted" } | { outcome: "denied"; error: unknown });

/**
 * The one way an audit record is made from a request: the client's address (as the guard
 * captured it when access was granted, else the request's, after `trustProxy`), the route
 * pattern, the model of a `/models/:id…` route, and what was decided. A route whose `:id` is
 * not a model's (e.g. `/oid4vp/transactions/:id`) names its `route` and `model` itself. A refusal records the
 * error's code (`internal` for anything that is not a `KPartyError`).
 *
 * @example
 * ```ts
 * await audit.append(auditEntryOf(request, { outcome: "denied", error, holder, credentialId }));
 * ```
 */
export function auditEntryOf(request: FastifyRequest, decision: AuditOutcome): AuditEntry {
  return {
    client: request.kparty?.client ?? request.ip ?? "unknown",
    route: decision.route ?? request.routeOptions.url ?? request.url,
    holder: decision.holder ?? null,
    credentialId: decision.credentialId ?? null,
    action: decision.action ?? request.kparty?.action ?? null,
    model:
      decision.model !== undefined
        ? decision.model
        : ((request.params as { id?: string } | undefined)?.id ?? null),
    outcome: decision.outcome,
    code:
      decision.outcome === "denied"
        ? decision.error instanceof KPartyError
          ? decision.error.code
          : "internal"
        : null,
  };
}
