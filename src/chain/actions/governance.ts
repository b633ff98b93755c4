import { KPartyError } from "../../errors/index.ts";
import type { ChainClient, WalletClient } from "../client.ts";
import { kpartyInterfaces } from "../contracts.ts";
import { toChainError } from "../errors.ts";
import { type TransactionOutcome, transact } from "../transact.ts";
import { assertAddress, sortedIndexes } from "./validate.ts";

export const PROPOSAL_KINDS = [
  "add-member",
  "remove-member",
  "change-quorum",
  "revoke-credentials",
  "rotate-key",
] as const;
export type ProposalKind = (typeof PROPOSAL_KINDS)[number];

export interface Proposal {
  id: number;
  kind: ProposalKind;
  /** The member to add, remove or rotate the key of, or the issuer whose credentials are revoked. */
  account: string | null;
  /** For `rotate-key`: the account that becomes the member's operating account; null otherwise. */
  newOperator: string | null;
  quorum: number | null;
  did: string | null;
  name: string | null;
  indexes: number[];
  proposer: string;
  expiresAt: Date;
  executed: boolean;
  /** Approvals that count: by current members, during their current membership, with their current key. */
  approvals: number;
}

export interface ProposalOutcome extends TransactionOutcome {
  proposalId: number;
}

async function propose(
  wallet: WalletClient,
  method: string,
  args: unknown[],
  action: string,
): Promise<ProposalOutcome> {
  const outcome = await transact(wallet, wallet.writable.consortium, method, args, action);
  const created = outcome.events.find((e) => e.name === "ProposalCreated");
  if (!created) throw new KPartyError("internal", `${action}: no ProposalCreated event in the receipt`);
  return { ...outcome, proposalId: Number(created.args.id) };
}

/**
 * Proposes to admit a member (the proposer's approval counts at once).
 * @example
 * ```ts
 * const { proposalId } = await proposeAddMember(wallet, { account, did, name: "Org C" });
 * ```
 */
export async function proposeAddMember(
  wallet: WalletClient,
  member: { account: string; did: string; name: string },
): Promise<ProposalOutcome> {
  assertAddress(member.account, "account");
  return propose(wallet, "proposeAddMember", [member], "propose member");
}

/**
 * Proposes to remove a member.
 * @example
 * ```ts
 * await proposeRemoveMember(wallet, { account });
 * ```
 */
export async function proposeRemoveMember(
  wallet: WalletClient,
  args: { account: string },
): Promise<ProposalOutcome> {
  assertAddress(args.account, "account");
  return propose(wallet, "proposeRemoveMember", [args.account], "propose removal");
}

/**
 * Proposes a new quorum (1 ≤ quorum ≤ members).
 * @example
 * ```ts
 * await proposeQuorum(wallet, { quorum: 2 });
 * ```
 */
export async function proposeQuorum(
  wallet: WalletClient,
  args: { quorum: number },
): Promise<ProposalOutcome> {
  return propose(wallet, "proposeQuorum", [args.quorum], "propose quorum");
}

/**
 * Proposes that the consortium revoke credentials of `issuer` (a removed or compromised member) by status index.
 * @example
 * ```ts
 * await proposeRevokeCredentials(wallet, { issuer, indexes: [0, 1, 2] });
 * ```
 */
export async function proposeRevokeCredentials(
  wallet: WalletClient,
  args: { issuer: string; indexes: number[] },
): Promise<ProposalOutcome> {
  assertAddress(args.issuer, "issuer");
  return propose(
    wallet,
    "proposeRevokeCredentials",
    [args.issuer, sortedIndexes(args.indexes)],
    "propose revocation",
  );
}

/**
 * Proposes a key rotation: `newOperator` becomes the operating account of `member` (a member's
 * account, the address of its DID). On execution every right of the member (governance,
 * anchoring, status changes, in the member's own anchor table and status lists) moves to
 * `newOperator`, and the previous operating account loses them; approvals sent with it lapse.
 * Do the ERC-1056 `changeOwner` of the member's DID first, so that credentials the new key
 * signs verify against the DID document.
 * @example
 * ```ts
 * await proposeRotateKey(wallet, { member: "0xMember…", newOperator: "0xNewKey…" });
 * ```
 */
export async function proposeRotateKey(
  wallet: WalletClient,
  args: { member: string; newOperator: string },
): Promise<ProposalOutcome> {
  assertAddress(args.member, "member");
  assertAddress(args.newOperator, "newOperator");
  return propose(wallet, "proposeRotateKey", [args.member, args.newOperator], "propose key rotation");
}

/**
 * Approves a proposal.
 * @example
 * ```ts
 * await approveProposal(wallet, { id: 3 });
 * ```
 */
export async function approveProposal(
  wallet: WalletClient,
  args: { id: number },
): Promise<TransactionOutcome> {
  return transact(wallet, wallet.writable.consortium, "approve", [args.id], "approve proposal");
}

/**
 * Executes a proposal that has reached the quorum.
 * @example
 * ```ts
 * await executeProposal(wallet, { id: 3 });
 * ```
 */
export async function executeProposal(
  wallet: WalletClient,
  args: { id: number },
): Promise<TransactionOutcome> {
  return transact(wallet, wallet.writable.consortium, "execute", [args.id], "execute proposal");
}

/**
 * Reads one proposal with its current approval count.
 * @example
 * ```ts
 * const p = await getProposal(client, 3);
 * ```
 */
export async function getProposal(client: ChainClient, id: number): Promise<Proposal> {
  try {
    const c = client.contracts.consortium;
    const [p, approvals, newOperator] = await Promise.all([
      c.getFunction("proposal").staticCall(id),
      c.getFunction("approvalCount").staticCall(id),
      c.getFunction("proposedOperator").staticCall(id),
    ]);
    const kind = PROPOSAL_KINDS[Number(p.kind)] as ProposalKind;
    const zero = "0x0000000000000000000000000000000000000000";
    return {
      id,
      kind,
      account: p.account === zero ? null : (p.account as string),
      newOperator: kind === "rotate-key" ? (newOperator as string) : null,
      quorum: kind === "change-quorum" ? Number(p.newQuorum) : null,
      did: kind === "add-member" ? (p.did as string) : null,
      name: kind === "add-member" ? (p.name as string) : null,
      indexes: (p.indexes as bigint[]).map(Number),
      proposer: p.proposer as string,
      expiresAt: new Date(Number(p.expiresAt) * 1000),
      executed: p.executed as boolean,
      approvals: Number(approvals),
    };
  } catch (error) {
    throw toChainError(error, "read proposal", kpartyInterfaces().consortium);
  }
}

/**
 * All proposals, oldest first.
 * @example
 * ```ts
 * const open = (await listProposals(client)).filter((p) => !p.executed);
 * ```
 */
export async function listProposals(client: ChainClient): Promise<Proposal[]> {
  let count: bigint;
  try {
    count = await client.contracts.consortium.getFunction("proposalCount").staticCall();
  } catch (error) {
    throw toChainError(error, "count proposals", kpartyInterfaces().consortium);
  }
  return Promise.all(Array.from({ length: Number(count) }, (_, id) => getProposal(client, id)));
}
