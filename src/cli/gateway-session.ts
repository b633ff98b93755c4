import type { KeyObject } from "node:crypto";
import { KPartyError } from "../errors/index.ts";
import { createGatewayClient, type GatewayClient } from "../gateway/client.ts";
import type { CliContext } from "./context.ts";
import { loadSession } from "./session.ts";
import { loadSessionKey } from "./session-key.ts";

/**
 * A gateway client whose network failures are `unreachable` errors instead of bare `fetch
 * failed`, proving possession of `dpopKey` (a bearer client with `null`).
 */
export function gatewayClient(url: string, dpopKey: KeyObject | null): GatewayClient {
  return createGatewayClient(url, {
    dpopKey,
    fetch: async (input, init) => {
      try {
        // bounded, so a gateway that accepts and never answers cannot hang the command; long
        // enough for a large model to stream
        return await fetch(input, { ...init, signal: AbortSignal.timeout(300_000) });
      } catch (cause) {
        throw new KPartyError("unreachable", `no answer from the gateway at ${url}`, { cause });
      }
    },
  });
}

/**
 * The data dir's saved session and a client of its gateway that proves possession of the
 * session's DPoP key (decrypted with the passphrase); `token_invalid` without a live session.
 */
export async function openGatewaySession(ctx: CliContext): Promise<{ gw: GatewayClient; token: string }> {
  const s = await loadSession(ctx.config.dataDir);
  const dpopKey =
    s.tokenType === "DPoP"
      ? await loadSessionKey(ctx.config.dataDir, await ctx.keyringKey(), s.dpopJkt ?? "")
      : null;
  return { gw: gatewayClient(s.gateway, dpopKey), token: s.accessToken };
}
