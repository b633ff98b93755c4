import { JsonRpcApiProvider, type Log } from "ethers";
import type { ChainClient } from "./client.ts";
import { kpartyInterfaces } from "./contracts.ts";

/** A decoded event of the kparty registries. */
export interface RegistryEvent {
  name: string;
  args: Record<string, unknown>;
  blockNumber: number;
}

export interface RegistryWatcher {
  /** The last block whose events were delivered (the deployment block before the first poll). */
  readonly syncedBlock: number;
  /** When (per `now`) the last poll succeeded; `-Infinity` before the first. */
  readonly lastSyncedAt: number;
  /** Adds a listener; events arrive in chain order. Returns a function that removes it. */
  onEvent(listener: (event: RegistryEvent) => void): () => void;
  /** Polls once now (the timer also does); resolves when done. */
  poll(): Promise<void>;
  stop(): void;
}

/**
 * Follows the ConsortiumRegistry, CredentialRegistry and ERC-1056 (DID registry) logs by polling `eth_getLogs` every
 * `pollingIntervalMs` (default 100), decoding every event and delivering it to listeners in
 * chain order. A failed poll changes nothing and is retried on the next tick, so the watcher
 * recovers by itself when the node comes back and then delivers what happened meanwhile.
 *
 * @example
 * ```ts
 * const watcher = createRegistryWatcher(client, { now: Date.now });
 * watcher.onEvent((e) => { if (e.name === "CredentialRevoked") evict(e.args.issuer, e.args.index); });
 * ```
 */
export function createRegistryWatcher(
  client: ChainClient,
  options: { now: () => number; pollingIntervalMs?: number; fromBlock?: number; maxBlocksPerPoll?: number },
): RegistryWatcher {
  const interval = options.pollingIntervalMs ?? 100;
  const maxSpan = options.maxBlocksPerPoll ?? 5_000;
  const { provider, deployment } = client;
  const addresses = [
    deployment.contracts.CredentialRegistry,
    deployment.contracts.ConsortiumRegistry,
    deployment.contracts.EthereumDIDRegistry,
  ];
  const i = kpartyInterfaces();
  const listeners = new Set<(event: RegistryEvent) => void>();
  let syncedBlock = options.fromBlock ?? deployment.deployedAtBlock;
  let lastSyncedAt = Number.NEGATIVE_INFINITY;
  let running: Promise<void> | undefined;
  let stopped = false;

  const rpc = async (method: string, params: unknown[]) => {
    if (!(provider instanceof JsonRpcApiProvider))
      throw new TypeError("the watcher needs a JSON-RPC provider");
    return provider.send(method, params);
  };

  function decode(log: Log | Record<string, unknown>): RegistryEvent | null {
    const topics = log.topics as string[];
    const data = log.data as string;
    for (const iface of [i.credentials, i.consortium, i.didRegistry]) {
      const parsed = iface.parseLog({ topics, data });
      if (parsed) {
        return { name: parsed.name, args: parsed.args.toObject(), blockNumber: Number(log.blockNumber) };
      }
    }
    return null;
  }

  async function pollOnce(): Promise<void> {
    const head = Number(await rpc("eth_blockNumber", []));
    while (syncedBlock < head && !stopped) {
      const to = Math.min(head, syncedBlock + maxSpan);
      const logs = (await rpc("eth_getLogs", [
        {
          address: addresses,
          fromBlock: `0x${(syncedBlock + 1).toString(16)}`,
          toBlock: `0x${to.toString(16)}`,
        },
      ])) as Record<string, unknown>[];
      for (const log of logs) {
        const event = decode(log);
        if (!event) continue;
        for (const listener of listeners) listener(event);
      }
      syncedBlock = to;
    }
    lastSyncedAt = options.now();
  }

  const poll = () => {
    running ??= pollOnce()
      .catch(() => undefined) // unreachable node: keep state, retry next tick
      .finally(() => {
        running = undefined;
      });
    return running;
  };

  const timer = setInterval(() => void poll(), interval);
  timer.unref();
  void poll();

  return {
    get syncedBlock() {
      return syncedBlock;
    },
    get lastSyncedAt() {
      return lastSyncedAt;
    },
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    poll,
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
