import { ACTIONS, type Action, type KPartyClaims, ROLES, type Role } from "./format.ts";

/** A model id as kparty accepts it: 1–128 of `[A-Za-z0-9._-]`, starting alphanumeric. */
export const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Whether `value` may stand in a credential's `models` list: a model id or `"*"`. */
export function isModelSelector(value: unknown): value is string {
  return typeof value === "string" && (value === "*" || MODEL_ID.test(value));
}

/**
 * Checks the grant part of K-th Party claims (role, models, actions, quota) and returns
 * what is wrong with it, or null. Callers choose the error: bad issuance arguments are
 * `invalid_argument`, a bad presented credential is `malformed`.
 */
export function grantProblem(raw: {
  role?: unknown;
  models?: unknown;
  actions?: unknown;
  quota?: unknown;
}): string | null {
  const { role, models, actions, quota } = raw;
  if (!ROLES.includes(role as Role)) return `role must be one of ${ROLES.join(", ")}`;
  if (!Array.isArray(models) || models.length === 0 || !models.every(isModelSelector)) {
    return 'models must be a non-empty list of model ids or ["*"]';
  }
  if (
    !Array.isArray(actions) ||
    actions.length === 0 ||
    !actions.every((a) => ACTIONS.includes(a as Action)) ||
    new Set(actions).size !== actions.length
  ) {
    return `actions must be distinct values among ${ACTIONS.join(", ")}`;
  }
  if (quota !== undefined) {
    const rpm =
      typeof quota === "object" && quota !== null
        ? (quota as { requestsPerMinute?: unknown }).requestsPerMinute
        : undefined;
    if (typeof rpm !== "number" || !Number.isSafeInteger(rpm) || rpm < 1) {
      return "quota.requestsPerMinute must be a positive integer";
    }
  }
  return null;
}

/** The grant part of claims that passed {@link grantProblem}, copied without extra fields. */
export function pickGrant(raw: {
  role: Role;
  models: string[];
  actions: Action[];
  quota?: { requestsPerMinute: number } | undefined;
}): Omit<KPartyClaims, "consortium"> {
  return {
    role: raw.role,
    models: [...raw.models],
    actions: [...raw.actions],
    ...(raw.quota ? { quota: { requestsPerMinute: raw.quota.requestsPerMinute } } : {}),
  };
}
