import { FetchRequest, JsonRpcProvider } from "ethers";
import { redactUrl } from "../util/redact.ts";

export interface ProviderOptions {
  /** Milliseconds before one JSON-RPC request is abandoned (default 5000). */
  timeoutMs?: number;
  /** Milliseconds between polls for events and receipts (default 100). */
  pollingIntervalMs?: number;
}

/**
 * A JSON-RPC provider for a chain whose id is known in advance: no network detection, no
 * `eth_chainId` per call, no batching delay, no response cache (every read is fresh), and a
 * bounded request timeout so that an unreachable node fails fast instead of hanging.
 *
 * @example
 * ```ts
 * const provider = createProvider("http://127.0.0.1:8545", 31337);
 * ```
 */
export function createProvider(
  rpcUrl: string,
  chainId: number,
  options: ProviderOptions = {},
): JsonRpcProvider {
  if (!/^(https?|wss?):\/\//.test(rpcUrl))
    throw new TypeError(`rpcUrl must be an http(s) URL, got ${redactUrl(rpcUrl)}`);
  if (!Number.isSafeInteger(chainId) || chainId <= 0)
    throw new TypeError(`chainId must be a positive integer`);
  const request = new FetchRequest(rpcUrl);
  request.timeout = options.timeoutMs ?? 5_000;
  const provider = new JsonRpcProvider(request, chainId, {
    staticNetwork: true,
    batchMaxCount: 1,
    pollingInterval: options.pollingIntervalMs ?? 100,
    // ethers answers identical requests from a 250 ms cache by default (block number, nonce,
    // gas estimate, eth_call): a verifier would miss a revocation made within that window.
    cacheTimeout: -1,
  });
  return provider;
}
