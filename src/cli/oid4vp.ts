import { createPublicKey, verify } from "node:crypto";
import { setGlobalConfig } from "@openid4vc/oauth2";
import {
  createOpenid4vpAuthorizationResponse,
  parseOpenid4vpAuthorizationRequest,
  resolveOpenid4vpAuthorizationRequest,
  submitOpenid4vpAuthorizationResponse,
} from "@openid4vc/openid4vp";
import { DcqlQuery } from "dcql";
import { decodeJwt } from "../credential/index.ts";
import { KPartyError, type KPartyErrorCode } from "../errors/index.ts";

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);

/** https anywhere; plain http only to this machine (a gateway on loopback). */
function checkUrl(url: string, what: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new KPartyError("invalid_argument", `${what} is not a URL`);
  }
  if (parsed.protocol === "https:" || (parsed.protocol === "http:" && LOOPBACK.has(parsed.hostname)))
    return parsed;
  throw new KPartyError(
    "invalid_argument",
    `${what} must be https (or http on this machine), got ${parsed.origin}`,
  );
}

/**
 * Verifies a request object's signature for the library: only `did:jwk` signers (the key is
 * in the DID itself; EdDSA or ES256), so the wallet trusts no network lookup.
 */
async function verifyJwt(signer: { method: string; didUrl?: string; alg: string }, jwt: { compact: string }) {
  if (
    signer.method !== "did" ||
    !signer.didUrl?.startsWith("did:jwk:") ||
    !["EdDSA", "ES256"].includes(signer.alg)
  ) {
    return { verified: false as const };
  }
  try {
    const did = signer.didUrl.split("#")[0] as string;
    const jwk = JSON.parse(Buffer.from(did.slice("did:jwk:".length), "base64url").toString("utf8"));
    const [header, payload, signature] = jwt.compact.split(".") as [string, string, string];
    const key = createPublicKey({ key: jwk, format: "jwk" });
    const ok = verify(
      signer.alg === "ES256" ? "sha256" : null,
      Buffer.from(`${header}.${payload}`),
      { key, dsaEncoding: "ieee-p1363" },
      Buffer.from(signature, "base64url"),
    );
    return ok ? { verified: true as const, signerJwk: jwk } : { verified: false as const };
  } catch {
    return { verified: false as const };
  }
}

/** The authorization request's parameters from an `openid4vp://` URL or a bare request URI. */
async function requestParams(input: string): Promise<Record<string, unknown>> {
  if (/^https?:/.test(input)) {
    // a bare request_uri: fetch the request object; its signature is checked with its own client_id
    const url = checkUrl(input, "the request URI");
    let response: Response;
    try {
      response = await fetch(url, { headers: { accept: "application/oauth-authz-req+jwt" } });
    } catch (cause) {
      throw new KPartyError("unreachable", `no answer from ${url.origin}`, { cause });
    }
    if (!response.ok) throw new KPartyError("not_found", `the request URI answered ${response.status}`);
    const request = (await response.text()).trim();
    let clientId: unknown;
    try {
      clientId = decodeJwt(request).payload.client_id;
    } catch {
      throw new KPartyError("malformed", "the request URI did not return a request object (JWT)");
    }
    return { client_id: clientId, request };
  }
  try {
    return parseOpenid4vpAuthorizationRequest({ authorizationRequest: input }).params as Record<
      string,
      unknown
    >;
  } catch (cause) {
    throw new KPartyError("invalid_argument", "not an openid4vp:// authorization request", { cause });
  }
}

export interface Oid4vpAnswer {
  clientId: string;
  responseUri: string;
  credentialQueryId: string;
}

/** The library takes only https URLs unless told otherwise; kparty lets http through for loopback only (checkUrl). */
function allowLoopbackHttp(input: string): void {
  const search = URL.canParse(input) ? new URL(input).searchParams : new URLSearchParams();
  const urls = /^https?:/.test(input)
    ? [input]
    : [search.get("request_uri"), search.get("response_uri")].filter((u) => u !== null);
  for (const url of urls) {
    if (checkUrl(url, "the request's URL").protocol === "http:") setGlobalConfig({ allowInsecureUrls: true });
  }
}

const callbacks = { fetch, verifyJwt } as never;

/** A verified request: its payload (direct_post to a checked response URI) and its DCQL query. */
interface ResolvedRequest {
  request: Record<string, unknown> & { client_id: string; nonce: string; response_uri: string };
  dcql: unknown;
}

/** Resolves and verifies the signed request; `invalid_signature` or `invalid_argument` when it will not do. */
async function resolveRequest(input: string): Promise<ResolvedRequest> {
  const authorizationRequestPayload = await requestParams(input);
  let resolved: Awaited<ReturnType<typeof resolveOpenid4vpAuthorizationRequest>>;
  try {
    resolved = await resolveOpenid4vpAuthorizationRequest({
      authorizationRequestPayload: authorizationRequestPayload as never,
      callbacks,
    });
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new KPartyError("invalid_signature", `the authorization request does not verify: ${reason}`, {
      cause,
    });
  }
  if (!resolved.jar) throw new KPartyError("invalid_signature", "the authorization request is not signed");
  const request = resolved.authorizationRequestPayload as Record<string, unknown> & {
    client_id: string;
    nonce: string;
    response_uri?: string;
    response_mode?: string;
  };
  if (request.response_mode !== "direct_post" || typeof request.response_uri !== "string") {
    throw new KPartyError(
      "invalid_argument",
      "only response_mode direct_post with a response_uri is supported",
    );
  }
  checkUrl(request.response_uri, "response_uri");
  if (!resolved.dcql) throw new KPartyError("invalid_argument", "the request carries no DCQL query");
  return { request: request as ResolvedRequest["request"], dcql: resolved.dcql.query };
}

/** The id of the one credential query the credential satisfies; `dcql_unsatisfied` otherwise. */
function matchCredential(dcql: unknown, credentialJwt: string): string {
  const { payload } = decodeJwt(credentialJwt);
  const vc = payload.vc as Record<string, unknown>;
  const query = DcqlQuery.parse(dcql as never);
  DcqlQuery.validate(query);
  const result = DcqlQuery.query(query, [
    {
      credential_format: "jwt_vc_json",
      type: vc.type as string[],
      claims: { ...vc, credentialSubject: { ...(vc.credentialSubject as object), id: payload.sub } } as never,
      cryptographic_holder_binding: true,
    },
  ]);
  const matched = Object.entries(result.credential_matches)
    .filter(([, match]) => match.success)
    .map(([id]) => id);
  if (!result.can_be_satisfied || matched.length !== 1) {
    throw new KPartyError("dcql_unsatisfied", "the credential does not satisfy the request's DCQL query");
  }
  return matched[0] as string;
}

/** The verifier's refusal as a KPartyError: its own code and message when it sent one. */
async function refusal(response: Response): Promise<KPartyError> {
  let code: KPartyErrorCode = "internal";
  let message = `the verifier answered ${response.status}`;
  try {
    const body = (await response.json()) as {
      error?: { code?: KPartyErrorCode; message?: string } | string;
    };
    if (typeof body.error === "object") {
      code = body.error.code ?? code;
      message = body.error.message ?? message;
    }
  } catch {
    // not JSON: keep the status
  }
  return new KPartyError(code, message, { details: { status: response.status } });
}

/** Posts `vp_token` (keyed by the credential query id, an array) to the response URI (direct_post, OID4VP 1.0 §8.2). */
async function submit(request: ResolvedRequest["request"], credentialQueryId: string, vp: string) {
  const { authorizationResponsePayload } = await createOpenid4vpAuthorizationResponse({
    authorizationRequestPayload: request as never,
    authorizationResponsePayload: { vp_token: { [credentialQueryId]: [vp] } },
    callbacks,
  });
  let response: Response;
  try {
    // form-encoded, vp_token as a JSON string
    ({ response } = await submitOpenid4vpAuthorizationResponse({
      authorizationRequestPayload: { response_uri: request.response_uri },
      authorizationResponsePayload,
      callbacks,
    }));
  } catch (cause) {
    throw new KPartyError("unreachable", `no answer from ${new URL(request.response_uri).origin}`, { cause });
  }
  if (!response.ok) throw await refusal(response);
}

/**
 * Answers an OID4VP 1.0 authorization request (an `openid4vp://` URL or a request URI) with one
 * credential: resolves and verifies the signed request with the library (`decentralized_identifier:`
 * with `did:jwk`), checks the credential satisfies the DCQL query, has `present` sign a VP for
 * the request's nonce with `aud` = the full client_id, and posts `vp_token` (keyed by the
 * credential query id, an array) to the response URI (`direct_post`).
 */
export async function answerOid4vpRequest(params: {
  request: string;
  credentialJwt: string;
  present(args: { nonce: string; clientId: string }): Promise<string>;
}): Promise<Oid4vpAnswer> {
  allowLoopbackHttp(params.request);
  const { request, dcql } = await resolveRequest(params.request);
  const credentialQueryId = matchCredential(dcql, params.credentialJwt);
  const vp = await params.present({ nonce: request.nonce, clientId: request.client_id });
  await submit(request, credentialQueryId, vp);
  return { clientId: request.client_id, responseUri: request.response_uri, credentialQueryId };
}
