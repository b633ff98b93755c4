import type { KeyObject } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Command } from "commander";
import { decodeJwt } from "../../credential/index.ts";
import { isKPartyError, KPartyError } from "../../errors/index.ts";
import { createGatewayClient, type GatewayClient } from "../../gateway/client.ts";
import { writeFileAtomic } from "../../util/atomic-file.ts";
import { AGENT_DATABASE, identityOf } from "../context.ts";
import { answerOid4vpRequest } from "../oid4vp.ts";
import { run } from "../run.ts";
import { createSessionKey, SESSION_KEY_ALGS } from "../session-key.ts";
import { readBundle } from "./credential.ts";

/** An access token kept for the model commands (the data dir's `session.json`, mode 0600). */
export interface Session {
  gateway: string;
  accessToken: string;
  /** The `token_type` the gateway answered: "DPoP" (bound to the session's key) or "Bearer". */
  tokenType: string;
  /** The JWK thumbprint of the session's DPoP key (`session-key.json`), for a DPoP token. */
  dpopJkt?: string;
  /**
   * When the token ends (ISO 8601): the gateway's `expires_in`, capped at the credential's and
   * the presentation's expiry, counted from the whole second the request was sent — never
   * later than the gateway's own `exp` on the same clock.
   */
  expiresAt: string;
  /** The presented credential's `exp` (ISO 8601): no token of it lives longer. */
  credentialExpiresAt: string;
  scope: string;
  holder: string;
  credentialId: string;
}

export function sessionFile(dataDir: string): string {
  return join(dataDir, "session.json");
}

/**
 * A gateway client whose network failures are `unreachable` errors instead of bare `fetch
 * failed`, proving possession of `dpopKey` (a bearer client with `null`).
 */
export function gatewayClient(url: string, dpopKey: KeyObject | null): GatewayClient {
  return createGatewayClient(url, {
    dpopKey,
    fetch: async (input, init) => {
      try {
        // bounded, so a gateway that accepts and never answers cannot hang the command; long
        // enough for a large model to stream
        return await fetch(input, { ...init, signal: AbortSignal.timeout(300_000) });
      } catch (cause) {
        throw new KPartyError("unreachable", `no answer from the gateway at ${url}`, { cause });
      }
    },
  });
}

/**
 * The saved session; `token_invalid` when there is none or it has expired, `credential_expired`
 * when it ended because the credential behind it did.
 */
export async function loadSession(dataDir: string, now = Date.now()): Promise<Session> {
  let session: Session;
  try {
    session = JSON.parse(await readFile(sessionFile(dataDir), "utf8")) as Session;
  } catch (cause) {
    throw new KPartyError("token_invalid", `no access token in ${dataDir}`, { cause });
  }
  if (typeof session.accessToken === "string" && Date.parse(session.credentialExpiresAt) <= now) {
    throw new KPartyError(
      "credential_expired",
      `the credential behind the access token in ${dataDir} expired at ${session.credentialExpiresAt}`,
    );
  }
  if (typeof session.accessToken !== "string" || !(Date.parse(session.expiresAt) > now)) {
    throw new KPartyError("token_invalid", `the access token in ${dataDir} has expired`);
  }
  return session;
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

export function registerPresent(program: Command): void {
  program
    .command("present")
    .description(
      "present a credential to a gateway (challenge → signed presentation → access token), or answer an OID4VP request",
    )
    .requiredOption("--credential <file>", "the bundle file `kparty credential issue` wrote")
    .option(...AGENT_DATABASE)
    .option("--gateway <url>", "the gateway (default: gateway.url of the config)")
    .option("--scope <scope>", 'ask for less than the credential grants, e.g. "model:read"')
    .option(
      "--oid4vp <request>",
      "answer an OpenID4VP 1.0 request instead (an openid4vp:// URL or its request URI); the token goes to whoever opened it",
    )
    .option(
      "--dpop-alg <alg>",
      `the session's DPoP proof key: ${SESSION_KEY_ALGS.join(" or ")}`,
      (v) => {
        if (!(SESSION_KEY_ALGS as readonly string[]).includes(v))
          throw new KPartyError(
            "invalid_argument",
            `--dpop-alg must be ${SESSION_KEY_ALGS.join(" or ")}, got "${v}"`,
          );
        return v;
      },
      "EdDSA",
    )
    .addHelpText(
      "after",
      `
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
  $ kparty present --credential alice.json --gateway http://127.0.0.1:8080 --scope model:read --json`,
    )
    .action(
      run(
        async (
          ctx,
          options: {
            credential: string;
            gateway?: string;
            scope?: string;
            oid4vp?: string;
            dpopAlg: "EdDSA" | "ES256";
          },
        ) => {
          const bundle = readBundle(options.credential);
          const credentialExpiresAt = credentialExpiry(bundle.jwt);
          if (
            options.oid4vp !== undefined &&
            (options.gateway !== undefined || options.scope !== undefined)
          ) {
            throw new KPartyError(
              "invalid_argument",
              "--oid4vp takes its verifier and scope from the request: drop --gateway and --scope",
            );
          }
          const url = (options.gateway ?? ctx.config.gateway.url).replace(/\/+$/, "");
          if (options.oid4vp === undefined && !/^https?:\/\/[^\s/]+/.test(url)) {
            throw new KPartyError("invalid_argument", `--gateway must be an http(s) URL, got "${url}"`);
          }
          const { agent } = await ctx.agent("holder");
          const { did } = await identityOf(agent, bundle.subject, ctx.config.dataDir).catch(
            (error: unknown) => {
              if (isKPartyError(error, "not_found")) {
                throw new KPartyError(
                  "not_found",
                  `the credential's subject ${bundle.subject} is not a DID of ${ctx.config.dataDir}`,
                  {
                    details: { hint: "present from the data dir of the DID the credential was issued to" },
                  },
                );
              }
              throw error;
            },
          );
          if (options.oid4vp !== undefined) {
            const answered = await answerOid4vpRequest({
              request: options.oid4vp,
              credentialJwt: bundle.jwt,
              present: ({ nonce, clientId }) =>
                agent.kpartyCreatePresentation({
                  holder: did,
                  credentials: [bundle.jwt],
                  challenge: nonce,
                  domain: clientId,
                  ...(bundle.anchor.root ? { anchorProof: bundle.anchor.proof } : {}),
                }),
            });
            ctx.out.result({ presented: true, holder: did, credentialId: bundle.credentialId, ...answered }, [
              `presented to ${answered.clientId}`,
              `  response    ${answered.responseUri} accepted`,
              "  the access token goes to whoever opened the request",
            ]);
            return;
          }
          const proofKey = createSessionKey(ctx.config.dataDir, await ctx.keyringKey(), options.dpopAlg);
          const gw = gatewayClient(url, proofKey.key);
          const { challenge, domain } = await gw.challenge();
          const presentation = await agent.kpartyCreatePresentation({
            holder: did,
            credentials: [bundle.jwt],
            challenge,
            domain,
            ...(bundle.anchor.root ? { anchorProof: bundle.anchor.proof } : {}),
          });
          // expires_in counts from the gateway's grant, which is no earlier than this whole second
          const sentAt = Math.floor(Date.now() / 1000);
          const token = await gw.token(presentation, options.scope);
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
          const file = sessionFile(ctx.config.dataDir);
          await mkdir(dirname(file), { recursive: true, mode: 0o700 });
          // the key first: a session is never saved without the key its token is bound to
          await proofKey.save();
          await writeFileAtomic(file, JSON.stringify(session), 0o600);
          const { accessToken: _secret, ...shown } = session;
          ctx.out.result({ ...shown, models: token.models, sessionFile: file, dpopKeyFile: proofKey.file }, [
            `access granted by ${url}: ${token.scope}`,
            `  models      ${token.models.join(", ")}`,
            `  token       ${session.tokenType}, expires ${session.expiresAt}`,
            `  DPoP key    ${options.dpopAlg}, ${proofKey.file} (encrypted)`,
            `  credential  expires ${session.credentialExpiresAt} (no token of it lives longer)`,
            `  token saved in ${file}`,
          ]);
        },
      ),
    );
}
