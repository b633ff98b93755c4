import type { IAgentContext, IAgentPlugin, ICredentialIssuer, IPluginMethodMap } from "@veramo/core";
import { KPartyError } from "../../src/errors/index.ts";

export interface CreatePresentationArgs {
  /** The holder's DID (managed by this agent; the credentials' subject). */
  holder: string;
  /** K-th Party token JWTs to present. */
  credentials: string[];
  /** The gateway's single-use challenge (JWT `nonce`). */
  challenge: string;
  /** The gateway's domain (JWT `aud`). */
  domain: string;
  /**
   * For a credential anchored in a batch: its inclusion proof (`IssuedCredential.anchor.proof`),
   * carried as `kpartyAnchorProof` in the holder-signed presentation payload.
   */
  anchorProof?: string[];
}

/** kparty's holder methods. */
export interface IKPartyHolder extends IPluginMethodMap {
  /** Signs a Verifiable Presentation (JWT) of K-th Party tokens for one gateway challenge. */
  kpartyCreatePresentation(args: CreatePresentationArgs, context: HolderContext): Promise<string>;
}

export type HolderContext = IAgentContext<Pick<ICredentialIssuer, "createVerifiablePresentation">>;

/**
 * The kparty holder plugin: presentations bound to a gateway's challenge and domain.
 * @example
 * ```ts
 * const vp = await agent.kpartyCreatePresentation({ holder, credentials: [jwt], challenge, domain });
 * ```
 */
export class KPartyHolder implements IAgentPlugin {
  readonly methods: IKPartyHolder = {
    kpartyCreatePresentation: async (args, context) => {
      if (!Array.isArray(args.credentials) || args.credentials.length === 0) {
        throw new KPartyError("invalid_argument", "at least one credential is required");
      }
      if (!args.challenge || !args.domain)
        throw new KPartyError("invalid_argument", "challenge and domain are required");
      const vp = await context.agent.createVerifiablePresentation({
        presentation: {
          holder: args.holder,
          verifiableCredential: args.credentials,
          // Veramo lifts unknown presentation fields into the signed JWT payload.
          ...(args.anchorProof ? { kpartyAnchorProof: args.anchorProof } : {}),
        },
        proofFormat: "jwt",
        challenge: args.challenge,
        domain: args.domain,
      });
      const jwt = (vp.proof as { jwt?: string }).jwt;
      if (typeof jwt !== "string")
        throw new KPartyError("internal", "the credential plugin returned no JWT proof");
      return jwt;
    },
  };
}
