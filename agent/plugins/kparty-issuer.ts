import type {
  IAgentContext,
  IAgentPlugin,
  IDIDManager,
  IKeyManager,
  IPluginMethodMap,
  TAgent,
} from "@veramo/core";
import { type CredentialPayload, createVerifiableCredentialJwt } from "did-jwt-vc";
import { computeAddress, type Provider } from "ethers";
import {
  anchorBatch,
  anchorCredential,
  approveProposal,
  createWalletClient,
  type Deployment,
  executeProposal,
  getAnchor,
  getMember,
  type ProposalOutcome,
  proposeAddMember,
  proposeQuorum,
  proposeRemoveMember,
  proposeRevokeCredentials,
  proposeRotateKey,
  reinstateCredential,
  revokeCredential,
  suspendCredential,
  type TransactionOutcome,
  type WalletClient,
} from "../../src/chain/index.ts";
import {
  type Action,
  buildMerkleTree,
  CREDENTIAL_TYPE,
  type CredentialDraft,
  credentialIdOf,
  grantProblem,
  isObject,
  kpartyCredential,
  parseDidEthr,
  type Role,
  VC_CONTEXT,
  w3cCredential,
} from "../../src/credential/index.ts";
import { KPartyError } from "../../src/errors/index.ts";
import type { IssuedCredentialStore, IssuedRecord } from "../issued-store.ts";
import { VeramoSigner } from "../veramo-signer.ts";

export interface IssueCredentialArgs {
  /** The issuing member's did:ethr (managed by this agent). */
  issuer: string;
  /** The participant's DID (the holder). */
  subject: string;
  role: Role;
  /** Model ids, or `["*"]`. */
  models: string[];
  actions: Action[];
  quota?: { requestsPerMinute: number };
  /** Start of validity (default: now). */
  validFrom?: Date;
  /** End of validity (default: 30 days after `validFrom`). */
  validUntil?: Date;
  /** The credential's `id` (its JWT's `jti`; default: a fresh `urn:uuid:`). */
  id?: string;
}

/** One K-th Party token of a batch: everything but the issuer. */
export type IssueItem = Omit<IssueCredentialArgs, "issuer">;

/**
 * Another W3C credential, as a VC-API client drafted it: signed as it is, with the issuer's
 * status entries, and anchored like a K-th Party token. It grants nothing at a gateway (only
 * a `KPartyCredential` does, which must come as an {@link IssueItem}, whose claims are checked).
 */
export interface DraftItem {
  draft: CredentialDraft;
  id?: string;
  validFrom?: Date;
  validUntil?: Date;
}

export interface IssuedCredential {
  jwt: string;
  credentialId: string;
  statusIndex: number;
  anchor: {
    blockNumber: number;
    transactionHash: string;
    /** The batch root anchored on chain; null when the credential id itself was anchored. */
    root: string | null;
    /** Inclusion proof of the credential id under `root`; the holder presents it with the credential. */
    proof: string[];
  };
}

/** Largest batch one call issues (one transaction anchors it). */
export const MAX_BATCH = 10_000;

export interface StatusChange {
  credentialId: string;
  statusIndex: number;
  transactionHash: string;
  blockNumber: number;
}

/** kparty's issuer methods: issue and anchor K-th Party tokens, change their status. */
export interface IKPartyIssuer extends IPluginMethodMap {
  /** Signs a K-th Party token for `subject`, records it, anchors its id on the registry. */
  kpartyIssueCredential(
    args: IssueCredentialArgs | ({ issuer: string } & DraftItem),
    context: IssuerContext,
  ): Promise<IssuedCredential>;
  /** Signs many tokens, records them, and anchors the Merkle root of their ids in one transaction. */
  kpartyIssueCredentials(
    args: { issuer: string; credentials: (IssueItem | DraftItem)[] },
    context: IssuerContext,
  ): Promise<IssuedCredential[]>;
  /** Anchors whatever a crash left signed but not anchored (credential ids and batch roots). */
  kpartyResumeAnchoring(
    args: Record<string, never>,
    context: IssuerContext,
  ): Promise<{ credentials: number; batches: number }>;
  /** Sets the credential's revocation bit (final). */
  kpartyRevokeCredential(args: { credentialId: string }, context: IssuerContext): Promise<StatusChange>;
  /** Sets the credential's suspension bit. */
  kpartySuspendCredential(args: { credentialId: string }, context: IssuerContext): Promise<StatusChange>;
  /** Clears the credential's suspension bit. */
  kpartyReinstateCredential(args: { credentialId: string }, context: IssuerContext): Promise<StatusChange>;
  /** Proposes to admit a member to the consortium (signed by `member`, a current member). */
  kpartyProposeMember(
    args: { member: string; account: string; did: string; name: string },
    context: IssuerContext,
  ): Promise<ProposalOutcome>;
  /** Proposes to remove a member. */
  kpartyProposeRemoval(
    args: { member: string; account: string },
    context: IssuerContext,
  ): Promise<ProposalOutcome>;
  /** Proposes a new quorum. */
  kpartyProposeQuorum(
    args: { member: string; quorum: number },
    context: IssuerContext,
  ): Promise<ProposalOutcome>;
  /** Proposes that the consortium revoke credentials of `issuer` (an account) by status index. */
  kpartyProposeRevocation(
    args: { member: string; issuer: string; indexes: number[] },
    context: IssuerContext,
  ): Promise<ProposalOutcome>;
  /**
   * Proposes that `newOperator` become the operating account of the member `account` (a key
   * rotation; see docs/registry.md). Signed by `member`, a current member's DID.
   */
  kpartyProposeKeyRotation(
    args: { member: string; account: string; newOperator: string },
    context: IssuerContext,
  ): Promise<ProposalOutcome>;
  /** Approves a proposal. */
  kpartyApproveProposal(
    args: { member: string; id: number },
    context: IssuerContext,
  ): Promise<TransactionOutcome>;
  /** Executes a proposal that reached the quorum. */
  kpartyExecuteProposal(
    args: { member: string; id: number },
    context: IssuerContext,
  ): Promise<TransactionOutcome>;
  /** The issuer's record of a credential it issued. */
  kpartyGetIssuedCredential(args: { credentialId: string }, context: IssuerContext): Promise<IssuedRecord>;
  /** All credentials this agent issued, optionally for one issuer DID. */
  kpartyListIssuedCredentials(args: { issuer?: string }, context: IssuerContext): Promise<IssuedRecord[]>;
}

export type IssuerContext = IAgentContext<
  Pick<IDIDManager, "didManagerGet"> & Pick<IKeyManager, "keyManagerSign" | "keyManagerSignEthTX">
>;

export interface KPartyIssuerOptions {
  deployment: Deployment;
  /** The chain the deployment lives on; transactions are signed by the issuer DID's key. */
  provider: Provider;
  store: IssuedCredentialStore;
  /** Clock (default `() => new Date()`). */
  now?: () => Date;
}

const DEFAULT_VALIDITY_MS = 30 * 24 * 3600 * 1000;

function invalid(message: string): KPartyError {
  return new KPartyError("invalid_argument", message);
}

function validateDraft({ draft }: DraftItem): void {
  if (!Array.isArray(draft?.context) || draft.context[0] !== VC_CONTEXT) {
    throw invalid(`@context must start with ${VC_CONTEXT}`);
  }
  if (!Array.isArray(draft.type) || !draft.type.includes("VerifiableCredential")) {
    throw invalid("type must include VerifiableCredential");
  }
  if (draft.type.includes(CREDENTIAL_TYPE)) {
    throw invalid(
      `a ${CREDENTIAL_TYPE} is issued from its claims (subject, role, models, actions), not as a draft`,
    );
  }
  if (!isObject(draft.credentialSubject)) throw invalid("credentialSubject must be an object");
  const { id } = draft.credentialSubject;
  if (id !== undefined && (typeof id !== "string" || !URI.test(id))) {
    throw invalid("credentialSubject.id must be a URI");
  }
}

/** An absolute URI (a DID, a `urn:uuid:`, an https URL…), as VCDM wants ids. */
const URI = /^[a-z][a-z0-9+.-]*:\S+$/i;

function validateClaims(args: IssueCredentialArgs): void {
  if (typeof args.subject !== "string" || !/^did:[a-z0-9]+:\S+$/.test(args.subject)) {
    throw invalid("subject must be a DID");
  }
  const problem = grantProblem(args);
  if (problem) throw invalid(problem);
}

/** A credential's validity window. */
interface Window {
  validFrom: Date;
  validUntil: Date;
}

/**
 * Validates one item (claims or draft, and its id) and returns its window: from `validFrom`
 * (default `now`) until `validUntil` (default `DEFAULT_VALIDITY_MS` later), which must come after.
 */
function validatedWindow(item: IssueItem | DraftItem, issuer: string, now: Date): Window {
  if ("draft" in item) validateDraft(item);
  else validateClaims({ ...item, issuer });
  if (item.id !== undefined && (typeof item.id !== "string" || !URI.test(item.id))) {
    throw invalid("id must be a URI");
  }
  const validFrom = item.validFrom ?? now;
  const validUntil = item.validUntil ?? new Date(validFrom.getTime() + DEFAULT_VALIDITY_MS);
  if (Number.isNaN(validFrom.getTime()) || Number.isNaN(validUntil.getTime()) || validUntil <= validFrom) {
    throw invalid("validUntil must be a date after validFrom");
  }
  return { validFrom, validUntil };
}

/** Signs one credential (a K-th Party token, or a draft) as a JWT VC, and its record (not anchored yet). */
async function signedRecord(
  item: IssueItem | DraftItem,
  issuance: Window & { issuer: string; statusIndex: number; deployment: Deployment; id?: string },
  by: { account: string; now: Date; sign: (data: string | Uint8Array) => Promise<string> },
): Promise<IssuedRecord> {
  const { issuer, statusIndex } = issuance;
  const credential =
    "draft" in item
      ? w3cCredential({ ...item.draft, ...issuance })
      : kpartyCredential({ ...issuance, subject: item.subject, claims: item });
  const subject = "draft" in item ? item.draft.credentialSubject.id : item.subject;
  // did-jwt-vc, as Veramo's JWT credential provider calls it: the same bytes, without
  // the provider's two identifier lookups and its decoding of the result per credential
  // A draft's subject keeps its id inside `vc` as well as in `sub` (VCDM 1.1 allows both): a
  // subject with no other claim would otherwise be an empty object, which did-jwt-vc refuses.
  const payload =
    "draft" in item && typeof subject === "string" ? { ...credential, sub: subject } : credential;
  const jwt = await createVerifiableCredentialJwt(
    // did-jwt-vc types credentialStatus as one object; a list (one entry per purpose) is valid VCDM.
    payload as unknown as CredentialPayload,
    { did: issuer, alg: "ES256K", signer: by.sign },
  );
  return {
    credentialId: credentialIdOf(jwt),
    issuer,
    issuerAccount: by.account,
    subject: typeof subject === "string" ? subject : "",
    statusIndex,
    jwt,
    issuedAt: by.now.toISOString(),
    anchoredBlock: null,
    anchorTx: null,
    anchorRoot: null,
    anchorProof: [],
  };
}

/**
 * The kparty issuer plugin. Issuance: check the issuer is a current consortium member,
 * allocate a status index (durably, before use), sign the JWT VC with the issuer DID's
 * key, record it, anchor `keccak256(signing input)` on CredentialRegistry from the
 * issuer's account, record the anchoring block. Status changes are transactions from the
 * same account.
 *
 * @example
 * ```ts
 * const agent = createAgent<IKPartyIssuer & …>({ plugins: [new KPartyIssuer({ deployment, provider, store }), …] });
 * const { jwt, credentialId } = await agent.kpartyIssueCredential({ issuer, subject, role: "participant",
 *   models: ["mnist-logreg"], actions: ["model:read"] });
 * ```
 */
export class KPartyIssuer implements IAgentPlugin {
  readonly methods: IKPartyIssuer;
  readonly #options: KPartyIssuerOptions;
  /** One wallet (so one transaction queue) per issuer DID; the promise is cached so concurrent first calls share it. */
  readonly #wallets = new Map<string, Promise<WalletClient>>();

  constructor(options: KPartyIssuerOptions) {
    if (!options.deployment?.contracts?.CredentialRegistry) throw new TypeError("deployment is required");
    if (!options.provider) throw new TypeError("provider is required");
    if (!options.store) throw new TypeError("store is required");
    this.#options = options;
    this.methods = {
      kpartyIssueCredential: this.issueOne.bind(this),
      kpartyIssueCredentials: this.issueBatch.bind(this),
      kpartyResumeAnchoring: (_args, context) => this.resume(context),
      kpartyRevokeCredential: (args, context) => this.changeStatus(args, context, revokeCredential),
      kpartySuspendCredential: (args, context) => this.changeStatus(args, context, suspendCredential),
      kpartyReinstateCredential: (args, context) => this.changeStatus(args, context, reinstateCredential),
      kpartyProposeMember: async ({ member, ...candidate }, context) =>
        proposeAddMember(await this.wallet(member, context), candidate),
      kpartyProposeRemoval: async ({ member, account }, context) =>
        proposeRemoveMember(await this.wallet(member, context), { account }),
      kpartyProposeQuorum: async ({ member, quorum }, context) =>
        proposeQuorum(await this.wallet(member, context), { quorum }),
      kpartyProposeRevocation: async ({ member, issuer, indexes }, context) =>
        proposeRevokeCredentials(await this.wallet(member, context), { issuer, indexes }),
      kpartyProposeKeyRotation: async ({ member, account, newOperator }, context) =>
        proposeRotateKey(await this.wallet(member, context), { member: account, newOperator }),
      kpartyApproveProposal: async ({ member, id }, context) =>
        approveProposal(await this.wallet(member, context), { id }),
      kpartyExecuteProposal: async ({ member, id }, context) =>
        executeProposal(await this.wallet(member, context), { id }),
      kpartyGetIssuedCredential: async ({ credentialId }) => this.record(credentialId),
      kpartyListIssuedCredentials: async (args) => this.#options.store.list(args ?? {}),
    };
  }

  /** The wallet of an issuer DID managed by this agent (its first Secp256k1 key). */
  private wallet(did: string, context: IssuerContext): Promise<WalletClient> {
    let wallet = this.#wallets.get(did);
    if (!wallet) {
      wallet = this.createWallet(did, context);
      this.#wallets.set(did, wallet);
      wallet.catch(() => this.#wallets.delete(did));
    }
    return wallet;
  }

  private async createWallet(did: string, context: IssuerContext): Promise<WalletClient> {
    let identifier: Awaited<ReturnType<IssuerContext["agent"]["didManagerGet"]>>;
    try {
      identifier = await context.agent.didManagerGet({ did });
    } catch (cause) {
      throw new KPartyError("invalid_argument", `issuer ${did} is not managed by this agent`, { cause });
    }
    const key = identifier.keys.find((k) => k.type === "Secp256k1");
    if (!key) throw new KPartyError("invalid_argument", `issuer ${did} has no Secp256k1 key`);
    const address = computeAddress(`0x${key.publicKeyHex}`);
    const signer = new VeramoSigner(
      context.agent as unknown as TAgent<IKeyManager>,
      key.kid,
      address,
      this.#options.provider,
    );
    return createWalletClient({ signer, deployment: this.#options.deployment });
  }

  /**
   * Validates every item, checks the issuer is a member, allocates one status index per
   * credential (durably, in one statement) and signs them. Nothing is allocated when any
   * item is invalid or the issuer is not a member.
   */
  private async sign(
    issuer: string,
    items: (IssueItem | DraftItem)[],
    context: IssuerContext,
  ): Promise<{ wallet: WalletClient; account: string; records: IssuedRecord[] }> {
    const now = this.#options.now?.() ?? new Date();
    const windows = items.map((item) => validatedWindow(item, issuer, now));
    const wallet = await this.wallet(issuer, context);
    const account = (wallet.signer as VeramoSigner).address;
    const member = await getMember(wallet, account);
    if (!member.active) {
      throw new KPartyError("issuer_not_member", `issuer ${issuer} (${account}) is not a consortium member`, {
        details: { issuer, account },
      });
    }
    // the issuer DID's key (the wallet's), in the agent's key manager, signs every credential
    const kid = (wallet.signer as VeramoSigner).kid;
    const sign = (data: string | Uint8Array) =>
      context.agent.keyManagerSign({
        keyRef: kid,
        algorithm: "ES256K",
        ...(typeof data === "string"
          ? { data }
          : { data: Buffer.from(data).toString("hex"), encoding: "hex" }),
      });
    const first = await this.#options.store.allocateIndexes(account, items.length);
    const records: IssuedRecord[] = [];
    for (const [i, item] of items.entries()) {
      const issuance = {
        issuer,
        statusIndex: first + i,
        deployment: this.#options.deployment,
        ...(windows[i] as Window),
        ...(item.id !== undefined ? { id: item.id } : {}),
      };
      records.push(await signedRecord(item, issuance, { account, now, sign }));
    }
    return { wallet, account, records };
  }

  private async issueOne(
    args: IssueCredentialArgs | ({ issuer: string } & DraftItem),
    context: IssuerContext,
  ): Promise<IssuedCredential> {
    const { issuer, ...item } = args;
    const { wallet, records } = await this.sign(issuer, [item], context);
    const record = records[0] as IssuedRecord;
    await this.#options.store.save([record]);
    const outcome = await anchorCredential(wallet, { credentialId: record.credentialId });
    await this.#options.store.markAnchored(
      { credentialId: record.credentialId },
      outcome.blockNumber,
      outcome.transactionHash,
    );
    return {
      jwt: record.jwt,
      credentialId: record.credentialId,
      statusIndex: record.statusIndex,
      anchor: {
        blockNumber: outcome.blockNumber,
        transactionHash: outcome.transactionHash,
        root: null,
        proof: [],
      },
    };
  }

  private async issueBatch(
    args: { issuer: string; credentials: (IssueItem | DraftItem)[] },
    context: IssuerContext,
  ): Promise<IssuedCredential[]> {
    const items = args?.credentials;
    if (!Array.isArray(items) || items.length === 0 || items.length > MAX_BATCH) {
      throw invalid(`credentials must list 1 to ${MAX_BATCH} credentials`);
    }
    const { wallet, account, records } = await this.sign(args.issuer, items, context);
    const tree = buildMerkleTree(records.map((r) => r.credentialId));
    for (const r of records) {
      r.anchorRoot = tree.root;
      r.anchorProof = tree.proofs.get(r.credentialId) ?? [];
    }
    await this.#options.store.save(records, {
      root: tree.root,
      issuer: args.issuer,
      issuerAccount: account,
      count: records.length,
      createdAt: (records[0] as IssuedRecord).issuedAt,
    });
    const outcome = await anchorBatch(wallet, { root: tree.root, count: records.length });
    await this.#options.store.markAnchored({ root: tree.root }, outcome.blockNumber, outcome.transactionHash);
    return records.map((r) => ({
      jwt: r.jwt,
      credentialId: r.credentialId,
      statusIndex: r.statusIndex,
      anchor: {
        blockNumber: outcome.blockNumber,
        transactionHash: outcome.transactionHash,
        root: tree.root,
        proof: r.anchorProof,
      },
    }));
  }

  /**
   * Anchors what was recorded but not anchored. A key the chain already shows anchored by
   * this issuer (the transaction went through before the crash) is only marked, never sent
   * twice; another member's anchor of the same key is not this issuer's and does not count.
   */
  private async resume(context: IssuerContext): Promise<{ credentials: number; batches: number }> {
    const { credentials, batches } = await this.#options.store.pending();
    const jobs = [
      ...credentials.map((c) => ({
        key: c.credentialId,
        issuer: c.issuer,
        count: 0,
        mark: { credentialId: c.credentialId },
      })),
      ...batches.map((b) => ({ key: b.root, issuer: b.issuer, count: b.count, mark: { root: b.root } })),
    ];
    for (const job of jobs) {
      const wallet = await this.wallet(job.issuer, context);
      const anchored = await getAnchor(wallet, { issuer: parseDidEthr(job.issuer).account, key: job.key });
      if (anchored) {
        await this.#options.store.markAnchored(job.mark, anchored.blockNumber, "");
        continue;
      }
      const outcome =
        job.count > 0
          ? await anchorBatch(wallet, { root: job.key, count: job.count })
          : await anchorCredential(wallet, { credentialId: job.key });
      await this.#options.store.markAnchored(job.mark, outcome.blockNumber, outcome.transactionHash);
    }
    return { credentials: credentials.length, batches: batches.length };
  }

  private async record(credentialId: string): Promise<IssuedRecord> {
    const record = typeof credentialId === "string" ? await this.#options.store.get(credentialId) : undefined;
    if (!record) {
      throw new KPartyError("not_found", `no credential ${String(credentialId)} issued by this agent`, {
        details: { credentialId },
      });
    }
    return record;
  }

  private async changeStatus(
    args: { credentialId: string },
    context: IssuerContext,
    action: (wallet: WalletClient, args: { index: number }) => Promise<TransactionOutcome>,
  ): Promise<StatusChange> {
    const record = await this.record(args?.credentialId);
    const wallet = await this.wallet(record.issuer, context);
    const outcome = await action(wallet, { index: record.statusIndex });
    return {
      credentialId: record.credentialId,
      statusIndex: record.statusIndex,
      transactionHash: outcome.transactionHash,
      blockNumber: outcome.blockNumber,
    };
  }
}
