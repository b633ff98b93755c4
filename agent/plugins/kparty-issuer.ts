import type {
  CredentialPayload,
  IAgentContext,
  IAgentPlugin,
  ICredentialIssuer,
  IDataStore,
  IDIDManager,
  IKeyManager,
  IPluginMethodMap,
  TAgent,
} from "@veramo/core";
import { computeAddress, type Provider } from "ethers";
import {
  anchorCredential,
  createWalletClient,
  type Deployment,
  getMember,
  reinstateCredential,
  revokeCredential,
  suspendCredential,
  type TransactionOutcome,
  type WalletClient,
} from "../../src/chain/index.ts";
import {
  type Action,
  credentialIdOf,
  grantProblem,
  kpartyCredential,
  type Role,
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
}

export interface IssuedCredential {
  jwt: string;
  credentialId: string;
  statusIndex: number;
  anchor: { blockNumber: number; transactionHash: string };
}

export interface StatusChange {
  credentialId: string;
  statusIndex: number;
  transactionHash: string;
  blockNumber: number;
}

/** kparty's issuer methods: issue and anchor K-th Party tokens, change their status. */
export interface IKPartyIssuer extends IPluginMethodMap {
  /** Signs a K-th Party token for `subject`, records it, anchors its id on the registry. */
  kpartyIssueCredential(args: IssueCredentialArgs, context: IssuerContext): Promise<IssuedCredential>;
  /** Sets the credential's revocation bit (final). */
  kpartyRevokeCredential(args: { credentialId: string }, context: IssuerContext): Promise<StatusChange>;
  /** Sets the credential's suspension bit. */
  kpartySuspendCredential(args: { credentialId: string }, context: IssuerContext): Promise<StatusChange>;
  /** Clears the credential's suspension bit. */
  kpartyReinstateCredential(args: { credentialId: string }, context: IssuerContext): Promise<StatusChange>;
  /** The issuer's record of a credential it issued. */
  kpartyGetIssuedCredential(args: { credentialId: string }, context: IssuerContext): Promise<IssuedRecord>;
  /** All credentials this agent issued, optionally for one issuer DID. */
  kpartyListIssuedCredentials(args: { issuer?: string }, context: IssuerContext): Promise<IssuedRecord[]>;
}

export type IssuerContext = IAgentContext<
  Pick<ICredentialIssuer, "createVerifiableCredential"> &
    Pick<IDIDManager, "didManagerGet"> &
    Pick<IKeyManager, "keyManagerSignEthTX"> &
    Pick<IDataStore, "dataStoreSaveVerifiableCredential">
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

function validateClaims(args: IssueCredentialArgs): void {
  if (typeof args.subject !== "string" || !/^did:[a-z0-9]+:\S+$/.test(args.subject)) {
    throw invalid("subject must be a DID");
  }
  const problem = grantProblem(args);
  if (problem) throw invalid(problem);
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
      kpartyIssueCredential: this.issue.bind(this),
      kpartyRevokeCredential: (args, context) => this.changeStatus(args, context, revokeCredential),
      kpartySuspendCredential: (args, context) => this.changeStatus(args, context, suspendCredential),
      kpartyReinstateCredential: (args, context) => this.changeStatus(args, context, reinstateCredential),
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

  private async issue(args: IssueCredentialArgs, context: IssuerContext): Promise<IssuedCredential> {
    validateClaims(args);
    const now = this.#options.now?.() ?? new Date();
    const validFrom = args.validFrom ?? now;
    const validUntil = args.validUntil ?? new Date(validFrom.getTime() + DEFAULT_VALIDITY_MS);
    if (Number.isNaN(validFrom.getTime()) || Number.isNaN(validUntil.getTime()) || validUntil <= validFrom) {
      throw invalid("validUntil must be a date after validFrom");
    }
    const wallet = await this.wallet(args.issuer, context);
    const account = (wallet.signer as VeramoSigner).address;
    const member = await getMember(wallet, account);
    if (!member.active) {
      throw new KPartyError(
        "issuer_not_member",
        `issuer ${args.issuer} (${account}) is not a consortium member`,
        {
          details: { issuer: args.issuer, account },
        },
      );
    }
    const statusIndex = await this.#options.store.allocateIndex(account);
    const credential = kpartyCredential({
      issuer: args.issuer,
      subject: args.subject,
      claims: {
        role: args.role,
        models: args.models,
        actions: args.actions,
        ...(args.quota ? { quota: args.quota } : {}),
      },
      statusIndex,
      deployment: this.#options.deployment,
      validFrom,
      validUntil,
    });
    const vc = await context.agent.createVerifiableCredential({
      // Veramo types credentialStatus as one object; a list (one entry per purpose) is valid VCDM.
      credential: credential as unknown as CredentialPayload,
      proofFormat: "jwt",
    });
    const jwt = (vc.proof as { jwt?: string }).jwt;
    if (typeof jwt !== "string")
      throw new KPartyError("internal", "the credential plugin returned no JWT proof");
    const credentialId = credentialIdOf(jwt);
    await this.#options.store.save({
      credentialId,
      issuer: args.issuer,
      issuerAccount: account,
      subject: args.subject,
      statusIndex,
      jwt,
      issuedAt: now.toISOString(),
      anchoredBlock: null,
      anchorTx: null,
    });
    await context.agent.dataStoreSaveVerifiableCredential({ verifiableCredential: vc });
    const outcome = await anchorCredential(wallet, { credentialId });
    await this.#options.store.markAnchored(credentialId, outcome.blockNumber, outcome.transactionHash);
    return {
      jwt,
      credentialId,
      statusIndex,
      anchor: { blockNumber: outcome.blockNumber, transactionHash: outcome.transactionHash },
    };
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
