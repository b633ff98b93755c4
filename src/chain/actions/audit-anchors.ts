import { type Contract, type Provider, Wallet } from "ethers";
import { KPartyError } from "../../errors/index.ts";
import { type ChainClient, createWalletClient, type WalletClient } from "../client.ts";
import { type Deployment, kpartyInterfaces } from "../contracts.ts";
import { toChainError } from "../errors.ts";
import { type TransactionOutcome, transact } from "../transact.ts";
import { assertAddress, assertBytes32 } from "./validate.ts";

/** One anchored audit head, as the chain holds it. */
export interface AuditAnchor {
  seq: number;
  /** The record's hash (0x-prefixed, 32 bytes). */
  head: string;
  /** The block and transaction that anchored it (known when read from events). */
  blockNumber?: number;
  txHash?: string;
}

function anchorsOf(client: ChainClient): Contract {
  const contract = client.contracts.auditAnchors;
  if (!contract) {
    throw new KPartyError("config_invalid", "the deployment has no AuditAnchors contract", {
      details: {
        hint: "redeploy (a local chain: `kparty chain up` deploys it) or update the deployment file",
      },
    });
  }
  return contract;
}

function assertSeq(seq: number): void {
  if (!Number.isSafeInteger(seq) || seq < 1)
    throw new KPartyError("invalid_argument", "seq must be a positive integer");
}

/**
 * A wallet client whose account is a key held in memory (the gateway's anchoring key, kept
 * encrypted in its state: see `AuditKeys`). Pays for its own transactions.
 */
export function keyWalletClient(params: {
  privateKey: string;
  provider: Provider;
  deployment: Deployment;
}): WalletClient {
  assertBytes32(params.privateKey, "privateKey");
  return createWalletClient({
    signer: new Wallet(params.privateKey, params.provider),
    deployment: params.deployment,
  });
}

/** The address of a secp256k1 private key (0x-prefixed hex). */
export function addressOfKey(privateKey: string): string {
  assertBytes32(privateKey, "privateKey");
  return new Wallet(privateKey).address;
}

/**
 * Pins record `seq` of the wallet account's log `log` to `head` (`AuditHeadAnchored`). Reverts
 * with `AuditAnchorsSeqNotIncreasing` unless `seq` is above the log's newest anchored seq.
 * @example
 * ```ts
 * await anchorAuditHead(wallet, { log, seq: 42, head: `0x${record.hash}` });
 * ```
 */
export async function anchorAuditHead(
  wallet: WalletClient,
  args: { log: string; seq: number; head: string },
): Promise<TransactionOutcome> {
  assertBytes32(args.log, "log");
  assertBytes32(args.head, "head");
  assertSeq(args.seq);
  anchorsOf(wallet); // the deployment has the contract
  const writable = wallet.writable.auditAnchors as Contract;
  return transact(wallet, writable, "anchorHead", [args.log, args.seq, args.head], "anchor audit head");
}

/** The newest anchored head of `anchorer`'s log `log`, or null before the first. */
export async function getLatestAuditAnchor(
  client: ChainClient,
  args: { anchorer: string; log: string },
): Promise<AuditAnchor | null> {
  assertAddress(args.anchorer, "anchorer");
  assertBytes32(args.log, "log");
  const contract = anchorsOf(client);
  try {
    const [seq, head] = await contract.getFunction("latestOf").staticCall(args.anchorer, args.log);
    return Number(seq) === 0 ? null : { seq: Number(seq), head: String(head) };
  } catch (error) {
    throw toChainError(error, "read audit anchor", kpartyInterfaces().auditAnchors);
  }
}

/**
 * Every head `anchorer` anchored, oldest first, from its `AuditHeadAnchored` events since the
 * deployment's block, grouped by log id (0x-prefixed). `log` narrows to one log.
 */
export async function listAuditAnchors(
  client: ChainClient,
  args: { anchorer: string; log?: string },
): Promise<Map<string, AuditAnchor[]>> {
  assertAddress(args.anchorer, "anchorer");
  if (args.log !== undefined) assertBytes32(args.log, "log");
  const contract = anchorsOf(client);
  const iface = kpartyInterfaces().auditAnchors;
  try {
    const filter = contract.filters.AuditHeadAnchored?.(args.anchorer, args.log ?? null);
    if (!filter) throw new Error("AuditHeadAnchored is not in the AuditAnchors ABI");
    const logs = await contract.queryFilter(filter, client.deployment.deployedAtBlock, "latest");
    const byLog = new Map<string, AuditAnchor[]>();
    for (const entry of logs) {
      const parsed = iface.parseLog(entry);
      if (!parsed) continue;
      const log = String(parsed.args.log).toLowerCase();
      const list = byLog.get(log) ?? [];
      list.push({
        seq: Number(parsed.args.seq),
        head: String(parsed.args.head),
        blockNumber: entry.blockNumber,
        txHash: entry.transactionHash,
      });
      byLog.set(log, list);
    }
    return byLog;
  } catch (error) {
    throw toChainError(error, "read audit anchors", iface);
  }
}
