import type {
  CredentialStatus,
  IAgentPlugin,
  ICheckCredentialStatusArgs,
  ICredentialStatusVerifier,
} from "@veramo/core";
import { type ChainClient, getCredentialState } from "../../src/chain/index.ts";
import { credentialIdOf, parseDidEthr, parseStatusEntries, STATUS_TYPE } from "../../src/credential/index.ts";
import { KPartyError } from "../../src/errors/index.ts";

/** What the kparty status method reports (Veramo reads `revoked` and `verified`). */
export interface KPartyCredentialStatus extends CredentialStatus {
  revoked: boolean;
  suspended: boolean;
  verified: boolean;
  /** Block the status was read at. */
  blockNumber: number;
}

/**
 * A Veramo credential-status method for `KPartyRegistryStatus`: plug it into any Veramo
 * agent and `verifyCredential` refuses revoked and suspended K-th Party tokens. It fails
 * closed: a status that cannot be read from the chain, a status entry that points at
 * another registry, or a credential without kparty status throws (Veramo then does not
 * report the credential verified).
 *
 * Note: Veramo only consults a status method for credentials passed as objects (with
 * `proof.jwt`); pass credentials that way, or call `checkCredentialStatus` yourself.
 *
 * @example
 * ```ts
 * const agent = createAgent({ plugins: [resolver, new CredentialPlugin([…]), new KPartyStatusVerifier({ chain })] });
 * const { verified } = await agent.verifyCredential({ credential: vc }); // false once revoked
 * ```
 */
export class KPartyStatusVerifier implements IAgentPlugin {
  readonly methods: ICredentialStatusVerifier;
  readonly #chain: ChainClient;

  constructor(options: { chain: ChainClient }) {
    if (!options?.chain?.deployment) throw new TypeError("chain client is required");
    this.#chain = options.chain;
    this.methods = { checkCredentialStatus: (args) => this.check(args) };
  }

  private async check({ credential }: ICheckCredentialStatusArgs): Promise<KPartyCredentialStatus> {
    const entries = credential?.credentialStatus as unknown;
    const list = Array.isArray(entries) ? entries : [entries];
    if (!list.every((e) => (e as { type?: unknown } | undefined)?.type === STATUS_TYPE)) {
      throw new KPartyError("malformed", `credentialStatus is not ${STATUS_TYPE}`);
    }
    const { revocationIndex, suspensionIndex } = parseStatusEntries(entries, this.#chain.deployment);
    const issuer = typeof credential.issuer === "string" ? credential.issuer : credential.issuer?.id;
    const { account } = parseDidEthr(issuer);
    const jwt = (credential.proof as { jwt?: unknown } | undefined)?.jwt;
    const state = await getCredentialState(this.#chain, {
      // the anchor is not judged here, only the status bits of the issuer's lists
      anchorKey: typeof jwt === "string" ? credentialIdOf(jwt) : `0x${"00".repeat(32)}`,
      issuer: account,
      revocationIndex,
      suspensionIndex,
    });
    return {
      revoked: state.revoked,
      suspended: state.suspended,
      verified: !state.revoked && !state.suspended,
      blockNumber: state.blockNumber,
    };
  }
}
