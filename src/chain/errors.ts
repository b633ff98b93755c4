import { type Interface, isError } from "ethers";
import { KPartyError } from "../errors/index.ts";
import { redactSecrets, secretsOfUrl } from "../util/redact.ts";

/**
 * Maps anything thrown while talking to the chain to a {@link KPartyError}:
 * a decoded contract revert becomes `chain_reverted` (details: `error`, `args`), a
 * revert of another kind `chain_reverted` with its reason, an unfunded sender
 * `insufficient_funds`, a nonce clash `chain_rejected`, and everything else (node
 * unreachable, timeout, an error answer without revert data, bad data from a wrong address)
 * `registry_unavailable`, so verification fails closed. Messages quote the node only through
 * `redactSecrets`: the RPC URL's credentials, path and query never appear in them.
 */
export function toChainError(error: unknown, action: string, ...interfaces: Interface[]): KPartyError {
  if (error instanceof KPartyError) return error;
  const data = revertData(error);
  if (data) {
    for (const iface of interfaces) {
      const parsed = iface.parseError(data);
      if (parsed) {
        const args = parsed.args.toArray().map((a: unknown) => (typeof a === "bigint" ? a.toString() : a));
        return new KPartyError("chain_reverted", `${action} reverted with ${parsed.name}`, {
          details: { error: parsed.name, args },
          cause: error,
        });
      }
    }
    return new KPartyError("chain_reverted", `${action} reverted`, { details: { data }, cause: error });
  }
  if (isError(error, "CALL_EXCEPTION") && !nodeFailure(error)) {
    return new KPartyError("chain_reverted", `${action} reverted`, {
      details: { reason: error.reason ?? null },
      cause: error,
    });
  }
  const rejection = sendRejection(error);
  if (rejection !== undefined) {
    return /insufficient funds|enough funds/i.test(rejection)
      ? new KPartyError("insufficient_funds", `${action}: the sending account cannot pay for gas`, {
          cause: error,
        })
      : new KPartyError(
          "chain_rejected",
          `${action}: the node rejected the transaction: ${redactSecrets(rejection)}`,
          { cause: error },
        );
  }
  if (isError(error, "INSUFFICIENT_FUNDS")) {
    return new KPartyError("insufficient_funds", `${action}: the sending account cannot pay for gas`, {
      cause: error,
    });
  }
  if (isError(error, "NONCE_EXPIRED") || isError(error, "REPLACEMENT_UNDERPRICED")) {
    return new KPartyError(
      "chain_rejected",
      `${action}: the node rejected the transaction (${error.shortMessage})`,
      {
        cause: error,
      },
    );
  }
  const reason = isError(error, "BAD_DATA")
    ? "unexpected response (is the contract address right?)"
    : nodeReason(error);
  return new KPartyError("registry_unavailable", `${action}: chain unavailable: ${reason}`, { cause: error });
}

/**
 * An `eth_call` the node answered with a JSON-RPC error that carries no revert data and does
 * not say "revert" (ethers still calls it `CALL_EXCEPTION`, "missing revert data"): the node
 * failed, the contract did not refuse.
 */
function nodeFailure(error: { data?: unknown; info?: Record<string, unknown> }): boolean {
  const nodeMessage = (error.info?.error as { message?: unknown } | undefined)?.message;
  return (
    error.data == null &&
    typeof nodeMessage === "string" &&
    !/revert/i.test(nodeMessage) &&
    !revertData(error)
  );
}

/**
 * Why the chain could not be read, for the local user of the CLI and the operator's log (a
 * gateway's clients get a fixed message): ethers' short message, the node's own error message
 * if it gave one, and the system's error otherwise; URLs and the secrets of the request's
 * URL redacted. Never ethers' full message, which dumps the request URL and the response body.
 */
function nodeReason(error: unknown): string {
  if (!(error instanceof Error)) return redactSecrets(String(error).split("\n")[0] ?? "");
  const e = error as Error & {
    shortMessage?: unknown;
    info?: { requestUrl?: unknown; responseStatus?: unknown; error?: { message?: unknown } };
    error?: { message?: unknown };
  };
  const requestUrl = typeof e.info?.requestUrl === "string" ? e.info.requestUrl : "";
  const nodeMessage = e.info?.error?.message ?? e.error?.message;
  const text =
    typeof e.shortMessage === "string"
      ? `${e.shortMessage}${typeof nodeMessage === "string" ? ` (the node said: ${nodeMessage})` : ""}`
      : (e.message.split("\n")[0] ?? "");
  return redactSecrets(text, secretsOfUrl(requestUrl)).slice(0, 300);
}

/**
 * The revert data of a failed call or transaction: on the ethers error itself, or nested
 * in the node's JSON-RPC error when ethers could not classify it (`UNKNOWN_ERROR`).
 */
function revertData(error: unknown): string | undefined {
  const candidates = [
    (error as { data?: unknown })?.data,
    (error as { error?: { data?: unknown } })?.error?.data,
    (error as { info?: { error?: { data?: unknown } } })?.info?.error?.data,
  ];
  for (const c of candidates) {
    if (typeof c === "string" && /^0x[0-9a-fA-F]{8,}$/.test(c)) return c;
    const nested = (c as { data?: unknown } | undefined)?.data;
    if (typeof nested === "string" && /^0x[0-9a-fA-F]{8,}$/.test(nested)) return nested;
  }
  return undefined;
}

/**
 * The node's message when it answered a transaction send with a JSON-RPC error that ethers
 * could not classify (`UNKNOWN_ERROR`): the node is reachable, it refused the transaction.
 */
function sendRejection(error: unknown): string | undefined {
  const e = error as { payload?: { method?: unknown }; error?: { message?: unknown } };
  const method = e?.payload?.method;
  if (typeof method !== "string" || !method.startsWith("eth_send")) return undefined;
  return typeof e.error?.message === "string" ? e.error.message : undefined;
}
