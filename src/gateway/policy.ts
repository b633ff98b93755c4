import type { Action, KPartyClaims } from "../credential/index.ts";
import { KPartyError } from "../errors/index.ts";

/** What a token request asks for; `null` asks for everything the credential allows. */
export interface ScopeRequest {
  actions: Action[] | null;
  models: string[] | null;
}

function intersectModels(requested: string[] | null, allowed: string[]): string[] {
  if (requested === null || requested.includes("*")) return [...allowed];
  if (allowed.includes("*")) return [...requested];
  return requested.filter((m) => allowed.includes(m));
}

/**
 * The scope a token grants: what the request asks ∩ what the credential allows, for actions
 * and for models (`"*"` on either side stands for every model). Asking for more than allowed
 * narrows the grant; a grant left empty in actions or models is `scope_denied`.
 * @example
 * ```ts
 * grantScope({ actions: ["model:read", "round:aggregate"], models: null }, claims); // → model:read only
 * ```
 */
export function grantScope(request: ScopeRequest, claims: Pick<KPartyClaims, "actions" | "models">) {
  const actions =
    request.actions === null
      ? [...claims.actions]
      : request.actions.filter((a) => claims.actions.includes(a));
  const models = intersectModels(request.models, claims.models);
  if (actions.length === 0) {
    throw new KPartyError(
      "scope_denied",
      `the credential allows none of the requested actions (${request.actions?.join(", ")})`,
    );
  }
  if (models.length === 0) {
    throw new KPartyError(
      "scope_denied",
      `the credential covers none of the requested models (${request.models?.join(", ")})`,
    );
  }
  return { actions, models };
}
