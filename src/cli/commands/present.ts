import type { Command } from "commander";
import type { HolderAgent } from "../../../agent/index.ts";
import { decodeJwt } from "../../credential/index.ts";
import { isKPartyError, KPartyError } from "../../errors/index.ts";
import { type CredentialBundle, readBundle } from "../bundle.ts";
import { AGENT_DATABASE, type CliContext, identityOf } from "../context.ts";
import { gatewayClient } from "../gateway-session.ts";
import { answerOid4vpRequest } from "../oid4vp.ts";
import { run } from "../run.ts";
import { type Session, saveSession } from "../session.ts";
import { createSessionKey, SESSION_KEY_ALGS } from "../session-key.ts";

interface PresentOptions {
  credential: string;
  gateway?: string;
  scope?: string;
  oid4vp?: string;
  dpopAlg: "EdDSA" | "ES256";
}

/** What presenting needs once the options are checked: the holder's agent, DID and bundle. */
interface Holder {
  agent: HolderAgent;
  did: string;
  bundle: CredentialBundle;
}

/** The credential's `exp` as ISO 8601 (only reported here: the gateway judges it). */
function credentialExpiry(jwt: string): string {
  const exp = decodeJwt(jwt).payload.exp;
  const date = new Date(typeof exp === "number" ? exp * 1000 : Number.NaN);
  if (!Number.isSafeInteger(exp) || Number.isNaN(date.getTime())) {
    throw new KPartyError("invalid_argument", "the credential's exp is not a date");
  }
  return date.toISOString();
}

/** The gateway URL to present to (without trailing slashes); `invalid_argument` for a bad mix of options. */
function gatewayUrl(ctx: CliContext, options: PresentOptions): string {
  if (options.oid4vp !== undefined && (options.gateway !== undefined || options.scope !== undefined)) {
    throw new KPartyError(
      "invalid_argument",
      "--oid4vp takes its verifier and scope from the request: drop --gateway and --scope",
    );
  }
  const url = (options.gateway ?? ctx.config.gateway.url).replace(/\/+$/, "");
  if (options.oid4vp === undefined && !/^https?:\/\/[^\s/]+/.test(url)) {
    throw new KPartyError("invalid_argument", `--gateway must be an http(s) URL, got "${url}"`);
  }
  return url;
}

/** The holder's agent and the bundle's subject DID in it; `not_found` when the data dir lacks it. */
async function openHolder(ctx: CliContext, bundle: CredentialBundle): Promise<Holder> {
  const { agent } = await ctx.agent("holder");
  const { did } = await identityOf(agent, bundle.subject, ctx.config.dataDir).catch((error: unknown) => {
    if (isKPartyError(error, "not_found")) {
      throw new KPartyError(
        "not_found",
        `the credential's subject ${bundle.subject} is not a DID of ${ctx.config.dataDir}`,
        { details: { hint: "present from the data dir of the DID the credential was issued to" } },
      );
    }
    throw error;
  });
  return { agent, did, bundle };
}

/** A verifiable presentation of the bundle's credential for `challenge` and `domain`. */
function presentation(h: Holder, challenge: string, domain: string): Promise<string> {
  return h.agent.kpartyCreatePresentation({
    holder: h.did,
    credentials: [h.bundle.jwt],
    challenge,
    domain,
    ...(h.bundle.anchor.root ? { anchorProof: h.bundle.anchor.proof } : {}),
  });
}

/** `--oid4vp`: answers the request; nothing is saved (the token goes to whoever opened it). */
async function presentOid4vp(ctx: CliContext, h: Holder, request: string): Promise<void> {
  const answered = await answerOid4vpRequest({
    request,
    credentialJwt: h.bundle.jwt,
    present: ({ nonce, clientId }) => presentation(h, nonce, clientId),
  });
  ctx.out.result({ presented: true, holder: h.did, credentialId: h.bundle.credentialId, ...answered }, [
    `presented to ${answered.clientId}`,
    `  response    ${answered.responseUri} accepted`,
    "  the access token goes to whoever opened the request",
  ]);
}

/** Challenge → presentation → access token, bound to a fresh DPoP key; saves the session. */
async function presentToGateway(
  ctx: CliContext,
  h: Holder,
  options: PresentOptions & { url: string; credentialExpiresAt: string },
) {
  const { url, credentialExpiresAt } = options;
  const proofKey = createSessionKey(ctx.config.dataDir, await ctx.keyringKey(), options.dpopAlg);
  const gw = gatewayClient(url, proofKey.key);
  const { challenge, domain } = await gw.challenge();
  const vp = await presentation(h, challenge, domain);
  // expires_in counts from the gateway's grant, which is no earlier than this whole second
  const sentAt = Math.floor(Date.now() / 1000);
  const token = await gw.token(vp, options.scope);
  const session: Session = {
    gateway: url,
    accessToken: token.access_token,
    tokenType: token.token_type,
    ...(token.token_type === "DPoP" ? { dpopJkt: proofKey.jkt } : {}),
    expiresAt: new Date((sentAt + token.expires_in) * 1000).toISOString(),
    credentialExpiresAt,
    scope: token.scope,
    holder: token.holder,
    credentialId: token.credential_id,
  };
  const file = await saveSession(ctx.config.dataDir, session, () => proofKey.save());
  const { accessToken: _secret, ...shown } = session;
  ctx.out.result({ ...shown, models: token.models, sessionFile: file, dpopKeyFile: proofKey.file }, [
    `access granted by ${url}: ${token.scope}`,
    `  models      ${token.models.join(", ")}`,
    `  token       ${session.tokenType}, expires ${session.expiresAt}`,
    `  DPoP key    ${options.dpopAlg}, ${proofKey.file} (encrypted)`,
    `  credential  expires ${session.credentialExpiresAt} (no token of it lives longer)`,
    `  token saved in ${file}`,
  ]);
}

async function present(ctx: CliContext, options: PresentOptions): Promise<void> {
  const bundle = readBundle(options.credential);
  const credentialExpiresAt = credentialExpiry(bundle.jwt);
  const url = gatewayUrl(ctx, options);
  const holder = await openHolder(ctx, bundle);
  if (options.oid4vp !== undefined) return presentOid4vp(ctx, holder, options.oid4vp);
  return presentToGateway(ctx, holder, { ...options, url, credentialExpiresAt });
}

function dpopAlgOption(v: string): string {
  if (!(SESSION_KEY_ALGS as readonly string[]).includes(v))
    throw new KPartyError(
      "invalid_argument",
      `--dpop-alg must be ${SESSION_KEY_ALGS.join(" or ")}, got "${v}"`,
    );
  return v;
}

const PRESENT_HELP = `
The access token is saved in the data dir (session.json, readable only by you) for the
\`kparty model\` commands; it is never printed. It ends no later than the credential
(expiresAt <= credentialExpiresAt), whatever the gateway's --token-ttl. It is bound to a
DPoP key made for the session (RFC 9449, tokenType DPoP), kept beside it in session-key.json,
encrypted with the data dir's passphrase like the agent's keys: a copied token is useless
without it.

With --oid4vp the signed request is verified (client id decentralized_identifier:did:jwk:…),
the credential must satisfy its DCQL query, and the presentation (nonce and audience of the
request) is posted to its response URI; nothing is saved: the access token goes to whoever
opened the request (GET /oid4vp/transactions/:id at the gateway).

Examples:
  $ kparty present --credential alice.json --data-dir .kparty/alice
  $ kparty present --credential alice.json --oid4vp 'openid4vp://?client_id=…&request_uri=…' --data-dir .kparty/alice
  $ kparty present --credential alice.json --gateway http://127.0.0.1:8080 --scope model:read --json`;

export function registerPresent(program: Command): void {
  program
    .command("present")
    .description(
      "present a credential to a gateway (challenge → signed presentation → access token), or answer an OID4VP request",
    )
    .option(...AGENT_DATABASE)
    .requiredOption("--credential <file>", "the bundle file `kparty credential issue` wrote")
    .option("--gateway <url>", "the gateway (default: gateway.url of the config)")
    .option("--scope <scope>", 'ask for less than the credential grants, e.g. "model:read"')
    .option(
      "--oid4vp <request>",
      "answer an OpenID4VP 1.0 request instead (an openid4vp:// URL or its request URI); the token goes to whoever opened it",
    )
    .option(
      "--dpop-alg <alg>",
      `the session's DPoP proof key: ${SESSION_KEY_ALGS.join(" or ")}`,
      dpopAlgOption,
      "EdDSA",
    )
    .addHelpText("after", PRESENT_HELP)
    .action(run(present));
}
