import { createHash } from "node:crypto";
import type { DIDResolutionResult } from "did-resolver";
import { type ChainClient, type CredentialState, getCredentialState } from "../../chain/index.ts";
import {
  credentialIdOf,
  type DecodedJwt,
  decodeJwt,
  merkleRootOf,
  parseDidEthr,
} from "../../credential/index.ts";
import { KPartyError } from "../../errors/index.ts";
import { LruCache } from "../../util/lru.ts";
import type { StatusKey } from "../status-cache.ts";
import { CheckLog, type CheckResult, fail } from "./checks.ts";
import { es256kKeys, type Relationship } from "./did-keys.ts";
import { type Es256kKey, verifyEs256k } from "./es256k.ts";
import {
  judgeCredentialState,
  REMOVED_ISSUER_POLICIES,
  type RemovedIssuerPolicy,
  windowFailure,
} from "./judge.ts";
import {
  asToken,
  type CredentialClaims,
  checkHeader,
  numericDate,
  parseCredentialPayload,
  type TokenClaims,
} from "./structure.ts";
import { resolveClockSkew } from "./window.ts";

/** The DID resolution capability the verifier needs (a Veramo agent with `IResolver` has it). */
export interface DidResolver {
  resolveDid(args: { didUrl: string }): Promise<DIDResolutionResult>;
}

export interface VerifierOptions {
  resolver: DidResolver;
  /** ES256K verification (default `verifyEs256k` on this thread; see `createEs256kPool`). */
  verifySignature?: (
    signingInput: string,
    signature: Uint8Array,
    keys: Es256kKey[],
  ) => Es256kKey | null | Promise<Es256kKey | null>;
  chain: ChainClient;
  /** Clock in milliseconds (default `Date.now`). */
  now?: () => number;
  /** Tolerated clock difference for `nbf`/`exp`, in seconds (default `DEFAULT_CLOCK_SKEW_SECONDS`, 60). */
  clockSkewSeconds?: number;
  /** Credentials of issuers removed after issuance (default `deny`). */
  removedIssuerPolicy?: RemovedIssuerPolicy;
  /**
   * Where credential states come from: by default a fresh read of the chain each time; the
   * gateway passes its event-invalidated status cache.
   */
  states?: { get(key: StatusKey): Promise<CredentialState> };
  /**
   * Called once a verification's input is authenticated, with the DID URLs it resolved and the
   * credential states it read for it: the credential's signature verified (and, for a
   * presentation, the holder's signature too, by the credential's subject), whatever the
   * verdict on its window and state. The verifier reads before it can know whether its input
   * is authentic; a caching `resolver` or `states` should keep those reads apart (see
   * `createDidCache`, `createStatusCache`) until they are named here, so that forged input
   * never displaces what authentic input needs.
   */
  onAuthenticated?: (reads: AuthenticatedReads) => void;
  /** Credentials whose verified bytes are remembered (default 10,000; see `VerifierContext.known`). */
  maxKnownCredentials?: number;
}

/** What a verification read for its input (see `VerifierOptions.onAuthenticated`). */
export interface AuthenticatedReads {
  didUrls: string[];
  statusKeys: StatusKey[];
}

/** See `VerifierContext.known`. */
interface KnownCredential {
  claims: CredentialClaims;
  issuerAccount: string;
  credentialId: string;
  /** The anchoring block whose issuer key the signature verified against. */
  signatureBlock: number;
  /** The batch proof it came with then (as JSON) and the root it leads to. */
  proof: { key: string; root: string } | null;
}

/** A credential of a consortium member that passed every check, with its on-chain state. */
export interface VerifiedAnyCredential extends CredentialClaims {
  jwt: string;
  credentialId: string;
  /** The issuer's Ethereum account (owner of the status lists, anchoring account). */
  issuerAccount: string;
  /** What is anchored on chain for this credential: its id, or the root its proof leads to. */
  anchorKey: string;
  state: CredentialState;
  checks: CheckResult[];
}

/** A K-th Party token that passed every check, with its on-chain state. */
export type VerifiedCredential = VerifiedAnyCredential & TokenClaims;

export interface VerifiedPresentation {
  holder: string;
  /** The presentation's own `exp` (seconds), if it has one: an access token granted on it ends no later. */
  expires?: number;
  credential: VerifiedCredential;
  checks: CheckResult[];
}

export interface PresentationExpectations {
  /** The domain the VP's `aud` must name; `null` only for third-party verification that did not ask for it. */
  domain: string | null;
  /**
   * Checks (and for the gateway, consumes) the VP's `nonce`; throws `challenge_invalid` or
   * `challenge_reused`. `null` only for third-party verification that did not ask for a challenge.
   */
  consumeChallenge: ((nonce: string) => void | Promise<void>) | null;
  /**
   * A cheap look at the nonce before any DID resolution or signature check (same errors as
   * `consumeChallenge`), so made-up nonces cost the verifier nothing.
   */
  precheckChallenge?: (nonce: string) => void | Promise<void>;
}

/** What a verifier works with: its options resolved to defaults, and its memory of verified bytes. */
interface VerifierContext {
  resolver: DidResolver;
  chain: ChainClient;
  verifySignature: NonNullable<VerifierOptions["verifySignature"]>;
  now: () => number;
  skew: number;
  policy: RemovedIssuerPolicy;
  onAuthenticated: (reads: AuthenticatedReads) => void;
  states: { get(key: StatusKey): Promise<CredentialState> };
  /**
   * What a credential's bytes alone determine, remembered by their SHA-256: its parsed
   * claims and id, and the anchoring block whose issuer key its signature verified against.
   * A DID document as of a past block never changes, so the same bytes under the same key
   * verify the same way; a participant presenting its credential again pays for its own
   * (presentation) signature only. Only successes are remembered; windows, anchoring,
   * membership and status are checked on every presentation. The batch proof's root is
   * remembered with the exact proof it came from. Least recently presented out.
   */
  known: LruCache<string, KnownCredential>;
}

/** The options checked and resolved to their defaults (throws `TypeError` on a bad one). */
function verifierContext(options: VerifierOptions): VerifierContext {
  if (!options?.resolver || typeof options.resolver.resolveDid !== "function") {
    throw new TypeError("resolver with resolveDid is required");
  }
  if (!options.chain?.deployment) throw new TypeError("chain client is required");
  const { resolver, chain } = options;
  const policy = options.removedIssuerPolicy ?? "deny";
  if (!REMOVED_ISSUER_POLICIES.includes(policy)) {
    throw new TypeError(`removedIssuerPolicy must be one of ${REMOVED_ISSUER_POLICIES.join(", ")}`);
  }
  return {
    resolver,
    chain,
    verifySignature: options.verifySignature ?? verifyEs256k,
    now: options.now ?? Date.now,
    skew: resolveClockSkew(options.clockSkewSeconds),
    policy,
    onAuthenticated: options.onAuthenticated ?? (() => {}),
    states: options.states ?? {
      get: (key: StatusKey) => getCredentialState(chain, key),
    },
    known: new LruCache<string, KnownCredential>({ maxEntries: options.maxKnownCredentials ?? 10_000 }),
  };
}

/** Resolves `did` (recorded in `reads`): `registry_unavailable` when the chain cannot answer, `did_unresolvable` when it says no. */
async function resolveDid(
  ctx: VerifierContext,
  did: string,
  reads: AuthenticatedReads,
): Promise<DIDResolutionResult> {
  reads.didUrls.push(did);
  let result: DIDResolutionResult;
  try {
    result = await ctx.resolver.resolveDid({ didUrl: did });
  } catch (cause) {
    throw new KPartyError("registry_unavailable", `cannot resolve ${did}: the chain is unavailable`, {
      cause,
    });
  }
  const error = result.didResolutionMetadata?.error;
  if (error || !result.didDocument || result.didDocumentMetadata?.deactivated) {
    // the resolver's error is quoted only when it is a bare code ("notFound"), never free text
    const code = typeof error === "string" && /^[A-Za-z]{1,40}$/.test(error) ? ` (${error})` : "";
    fail("did_unresolvable", `${did} does not resolve${code}`);
  }
  return result;
}

/** Verifies `jwt`'s signature with `did`'s keys for `relationship`, as of block `atBlock` when given. */
async function checkSignature(
  ctx: VerifierContext,
  jwt: DecodedJwt,
  did: string,
  relationship: Relationship,
  what: string,
  reads: AuthenticatedReads,
  atBlock?: number,
) {
  parseDidEthr(did);
  const didUrl = atBlock === undefined ? did : `${did}?versionId=${atBlock}`;
  const { didDocument } = await resolveDid(ctx, didUrl, reads);
  const keys = es256kKeys(didDocument as NonNullable<typeof didDocument>, relationship);
  if (!(await ctx.verifySignature(jwt.signingInput, jwt.signature, keys))) {
    fail("invalid_signature", `${what} signature does not verify against ${did}`);
  }
}

function checkWindow(
  ctx: VerifierContext,
  notBefore: number | undefined,
  expires: number | undefined,
  what: string,
) {
  const at = Math.floor(ctx.now() / 1000);
  const failure = windowFailure(what, { at, notBefore, expires, skewSeconds: ctx.skew });
  if (failure) fail(...failure);
}

/** What a credential's bytes (and its proof) say, before any read of the chain. */
interface CredentialFacts {
  digest: string;
  seen: KnownCredential | undefined;
  decoded: DecodedJwt | undefined;
  claims: CredentialClaims;
  issuerAccount: string;
  credentialId: string;
  proofKey: string | null;
  key: StatusKey;
}

/** Runs the checks of a credential's format, claims, issuer DID and anchor proof (from `known` when these bytes passed before). */
async function credentialFacts(
  ctx: VerifierContext,
  jwt: string,
  log: CheckLog,
  kind: "any" | "token",
  anchorProof: unknown,
): Promise<CredentialFacts> {
  const digest = typeof jwt === "string" ? createHash("sha256").update(jwt).digest("base64") : "";
  const seen = ctx.known.get(digest);
  const decoded = await log.run("credential.format", () => {
    if (seen) return undefined; // these exact bytes passed before
    const d = decodeJwt(jwt);
    checkHeader(d, "credential");
    return d;
  });
  const claims = await log.run("credential.claims", () => {
    const parsed =
      seen?.claims ?? parseCredentialPayload((decoded as DecodedJwt).payload, ctx.chain.deployment);
    // only a K-th Party token grants access; other credentials are verified for VC-API callers
    return kind === "token" ? asToken(parsed) : parsed;
  });
  const issuerAccount = await log.run(
    "credential.issuer_did",
    () => seen?.issuerAccount ?? parseDidEthr(claims.issuer).account,
  );
  const credentialId = seen?.credentialId ?? credentialIdOf(jwt);
  // the root a proof leads to is a function of the id and the proof: remembered with them
  const proofKey = anchorProof === undefined ? null : JSON.stringify(anchorProof);
  const anchorKey = await log.run("credential.anchor_proof", () => {
    if (proofKey === null) return credentialId;
    if (seen?.proof?.key === proofKey) return seen.proof.root;
    return merkleRootOf(credentialId, anchorProof);
  });
  const key = {
    anchorKey,
    issuer: issuerAccount,
    revocationIndex: claims.revocationIndex,
    suspensionIndex: claims.suspensionIndex,
  };
  return { digest, seen, decoded, claims, issuerAccount, credentialId, proofKey, key };
}

/**
 * Verifies a credential in full. `holder`: the presentation's signer, already authenticated;
 * the credential's reads are reported authenticated only when its subject is that holder.
 */
async function verifyCredentialWith(
  ctx: VerifierContext,
  jwt: string,
  log: CheckLog,
  reads: AuthenticatedReads,
  kind: "any" | "token",
  anchorProof?: unknown,
  holder?: string,
): Promise<VerifiedAnyCredential> {
  const facts = await credentialFacts(ctx, jwt, log, kind, anchorProof);
  const { digest, seen, claims, issuerAccount, credentialId, proofKey, key } = facts;
  reads.statusKeys.push(key);
  const state = await log.run("credential.registry", () => ctx.states.get(key));
  // The key must have belonged to the issuer DID when the credential was anchored (its
  // trustworthy issuance time): resolve the DID document as of that block.
  const anchoredByIssuer = state.anchoredBy?.toLowerCase() === issuerAccount.toLowerCase();
  const atBlock = anchoredByIssuer ? (state.anchoredAt as number) : undefined;
  await log.run("credential.signature", async () => {
    if (atBlock !== undefined && seen?.signatureBlock === atBlock) return;
    const decoded = facts.decoded ?? decodeJwt(jwt);
    await checkSignature(ctx, decoded, claims.issuer, "assertionMethod", "credential", reads, atBlock);
    if (atBlock === undefined) return;
    const proof = proofKey === null ? null : { key: proofKey, root: key.anchorKey };
    ctx.known.set(digest, { claims, issuerAccount, credentialId, signatureBlock: atBlock, proof });
  });
  // authentic: its issuer signed it (and, in a presentation, its subject presented it)
  if (holder === undefined || holder === claims.subject) ctx.onAuthenticated(reads);
  await log.run("credential.validity", () =>
    checkWindow(ctx, claims.notBefore, claims.expires, "credential"),
  );
  await judgeCredentialState(state, issuerAccount, ctx.policy, (check, fn) => log.run(check, fn));
  const { anchorKey } = key;
  return { ...claims, jwt, credentialId, issuerAccount, anchorKey, state, checks: log.results };
}

/** A presentation's own claims: its holder, nonce, the one credential it carries and its anchor proof. */
function presentationClaims(payload: Record<string, unknown>) {
  const { iss, vp, nonce } = payload;
  if (typeof iss !== "string") fail("malformed", "presentation iss must be the holder's DID");
  if (nonce !== undefined && typeof nonce !== "string")
    fail("malformed", "presentation nonce must be a string");
  if (typeof vp !== "object" || vp === null || Array.isArray(vp))
    fail("malformed", "presentation vp claim is missing");
  const { type, verifiableCredential, holder } = vp as Record<string, unknown>;
  if (!Array.isArray(type) || !type.includes("VerifiablePresentation")) {
    fail("malformed", "vp type must include VerifiablePresentation");
  }
  if (holder !== undefined && holder !== iss) fail("malformed", "vp.holder differs from iss");
  if (!Array.isArray(verifiableCredential) || verifiableCredential.length !== 1) {
    fail("malformed", "a presentation carries exactly one K-th Party token");
  }
  const [credentialJwt] = verifiableCredential;
  if (typeof credentialJwt !== "string") fail("malformed", "the K-th Party token must be a JWT string");
  numericDate(payload, "nbf", false);
  numericDate(payload, "exp", false);
  return {
    holder: iss,
    nonce: nonce as string | undefined,
    credentialJwt,
    anchorProof: payload.kpartyAnchorProof,
  };
}

/** The challenge check: a nonce must be there, and `check` (a pre-check or the consumption) must pass it. */
function challengeCheck(nonce: string | undefined, check: (nonce: string) => void | Promise<void>) {
  return () => {
    if (typeof nonce !== "string" || nonce.length === 0)
      fail("challenge_invalid", "presentation has no challenge (nonce)");
    return check(nonce);
  };
}

/** The presentation's checks up to its embedded credential: format, claims, audience, challenge, signature, window. */
async function presentationFacts(
  ctx: VerifierContext,
  vpJwt: unknown,
  expect: PresentationExpectations,
  log: CheckLog,
  reads: AuthenticatedReads,
) {
  const decoded = await log.run("presentation.format", () => {
    const d = decodeJwt(vpJwt);
    checkHeader(d, "presentation");
    return d;
  });
  const { payload } = decoded;
  const claims = await log.run("presentation.claims", () => presentationClaims(payload));
  const { domain, consumeChallenge, precheckChallenge } = expect;
  if (domain !== null) {
    await log.run("presentation.audience", () => {
      const aud = payload.aud;
      const audiences = Array.isArray(aud) ? aud : [aud];
      if (!audiences.includes(domain)) {
        fail("domain_mismatch", `presentation audience must be ${domain}`, { audience: aud ?? null });
      }
    });
  }
  if (precheckChallenge && consumeChallenge !== null) {
    await log.run("presentation.challenge_known", challengeCheck(claims.nonce, precheckChallenge));
  }
  await log.run("presentation.signature", () =>
    checkSignature(ctx, decoded, claims.holder, "authentication", "presentation", reads),
  );
  await log.run("presentation.validity", () =>
    checkWindow(ctx, payload.nbf as number | undefined, payload.exp as number | undefined, "presentation"),
  );
  if (consumeChallenge !== null) {
    await log.run("presentation.challenge", challengeCheck(claims.nonce, consumeChallenge));
  }
  return { ...claims, expires: payload.exp as number | undefined };
}

/** See {@link createVerifier}'s `verifyPresentation`. */
async function verifyPresentationWith(
  ctx: VerifierContext,
  vpJwt: unknown,
  expect: PresentationExpectations,
): Promise<VerifiedPresentation> {
  const log = new CheckLog();
  const reads: AuthenticatedReads = { didUrls: [], statusKeys: [] };
  const { holder, credentialJwt, anchorProof, expires } = await presentationFacts(
    ctx,
    vpJwt,
    expect,
    log,
    reads,
  );
  // asToken in "token" mode: the claims are a K-th Party token's
  const credential = (await verifyCredentialWith(
    ctx,
    credentialJwt,
    log,
    reads,
    "token",
    anchorProof,
    holder,
  )) as VerifiedCredential;
  await log.run("presentation.holder_binding", () => {
    if (credential.subject !== holder) {
      fail("holder_mismatch", "the presentation is not signed by the credential's subject", {
        subject: credential.subject,
        holder,
      });
    }
  });
  return { holder, ...(expires !== undefined ? { expires } : {}), credential, checks: log.results };
}

/**
 * Verifies K-th Party tokens and presentations of them, checking everything itself:
 * JWS structure and algorithm, signatures against keys of DIDs resolved on the chain
 * (high-s rejected; the issuer's key as of the anchoring block), validity windows, holder
 * binding, audience, challenge, consortium, anchoring (id or batch root), issuer membership
 * now and at issuance, revocation and suspension. No option switches a check off.
 * Anything that cannot be checked (chain down) throws `registry_unavailable`.
 *
 * @example
 * ```ts
 * const verifier = createVerifier({ resolver: agent, chain });
 * const { holder, credential } = await verifier.verifyPresentation(vpJwt, { domain, consumeChallenge });
 * ```
 */
export function createVerifier(options: VerifierOptions) {
  const ctx = verifierContext(options);
  return {
    /** Credentials whose verified bytes are remembered now (at most `maxKnownCredentials`). */
    get knownCredentials(): number {
      return ctx.known.size;
    },

    /**
     * Verifies one credential of a consortium member on its own — a K-th Party token, or any
     * other credential its issuer anchored with status entries (kparty's issuer service signs
     * both): signature, window, anchoring, membership, status. `anchorProof` is its batch
     * inclusion proof, if it was anchored in a batch. Only a K-th Party token (`claims` not
     * null) grants access, through a presentation.
     */
    verifyCredential(jwt: unknown, anchorProof?: unknown): Promise<VerifiedAnyCredential> {
      const reads = { didUrls: [], statusKeys: [] };
      return verifyCredentialWith(ctx, jwt as string, new CheckLog(), reads, "any", anchorProof);
    },

    /**
     * Verifies a presentation (VP JWT) of exactly one K-th Party token: the holder's
     * signature, audience and challenge, then the embedded credential in full, then that
     * the credential's subject is the presentation's signer.
     */
    verifyPresentation(vpJwt: unknown, expect: PresentationExpectations): Promise<VerifiedPresentation> {
      return verifyPresentationWith(ctx, vpJwt, expect);
    },
  };
}

export type Verifier = ReturnType<typeof createVerifier>;
