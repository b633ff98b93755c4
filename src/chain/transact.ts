import {
  type Contract,
  type ContractTransactionResponse,
  isError,
  JsonRpcApiProvider,
  type Provider,
} from "ethers";
import { KPartyError } from "../errors/index.ts";
import type { WalletClient } from "./client.ts";
import { kpartyInterfaces } from "./contracts.ts";
import { toChainError } from "./errors.ts";

/** What a confirmed kparty transaction returns. */
export interface TransactionOutcome {
  transactionHash: string;
  blockNumber: number;
  gasUsed: number;
  /**
   * The kparty contracts' events the transaction emitted, decoded; integers are numbers when
   * they fit in 2^53, decimal strings otherwise (outcomes stay JSON-safe).
   */
  events: { name: string; args: Record<string, unknown> }[];
}

function jsonSafe(value: unknown): unknown {
  if (typeof value === "bigint")
    return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
  if (Array.isArray(value)) return value.map(jsonSafe);
  return value;
}

const queues = new WeakMap<object, Promise<unknown>>();

/** The account's next nonce, asked of the node (ethers may answer from a short-lived cache). */
async function pendingNonce(provider: Provider, address: string): Promise<number> {
  if (provider instanceof JsonRpcApiProvider) {
    return Number(await provider.send("eth_getTransactionCount", [address, "pending"]));
  }
  return provider.getTransactionCount(address, "pending");
}

/** Sends of one transaction at most, while other senders of the same account take its nonce first. */
const NONCE_ATTEMPTS = 20;

/** A random pause before the next attempt (up to 10 ms per attempt so far): two senders in lockstep fall out of it. */
const backOff = (attempt: number) =>
  new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * attempt));

/**
 * Signs and sends `method(...args)` with the account's next nonce. Another sender of the same
 * account (a second issuer process of one member) may take that nonce first: the node then
 * refuses ours unsent (nonce too low, or a replacement underpriced), and it is signed again
 * with the next one after a short random pause, at most {@link NONCE_ATTEMPTS} times.
 */
async function send(wallet: WalletClient, contract: Contract, method: string, args: unknown[]) {
  const fn = contract.getFunction(method);
  const address = await wallet.signer.getAddress();
  for (let attempt = 1; ; attempt++) {
    const nonce = await pendingNonce(wallet.provider, address);
    try {
      return (await fn(...args, { nonce })) as ContractTransactionResponse;
    } catch (error) {
      const taken = isError(error, "NONCE_EXPIRED") || isError(error, "REPLACEMENT_UNDERPRICED");
      if (!taken || attempt >= NONCE_ATTEMPTS) throw error;
      await backOff(attempt);
    }
  }
}

/**
 * Sends `method(...args)` on `contract` and waits for one confirmation. Calls through one
 * wallet client are serialised (nonce safety); failures become `KPartyError`s
 * (`chain_reverted` with the decoded custom error, or `registry_unavailable`).
 */
export async function transact(
  wallet: WalletClient,
  contract: Contract,
  method: string,
  args: unknown[],
  action: string,
): Promise<TransactionOutcome> {
  const previous = queues.get(wallet.signer) ?? Promise.resolve();
  const run = previous
    .catch(() => undefined)
    .then(async () => {
      const i = kpartyInterfaces();
      try {
        const tx = await send(wallet, contract, method, args);
        const receipt = await tx.wait(1);
        if (!receipt) throw new KPartyError("registry_unavailable", `${action}: transaction dropped`);
        const events: TransactionOutcome["events"] = [];
        for (const log of receipt.logs) {
          for (const iface of [i.credentials, i.consortium, i.auditAnchors]) {
            const parsed = iface.parseLog(log);
            if (parsed) {
              const args = Object.fromEntries(
                Object.entries(parsed.args.toObject()).map(([k, v]) => [k, jsonSafe(v)]),
              );
              events.push({ name: parsed.name, args });
              break;
            }
          }
        }
        return {
          transactionHash: receipt.hash,
          blockNumber: receipt.blockNumber,
          gasUsed: Number(receipt.gasUsed),
          events,
        };
      } catch (error) {
        throw toChainError(error, action, i.credentials, i.consortium, i.didRegistry, i.auditAnchors);
      }
    });
  queues.set(wallet.signer, run);
  return run;
}
