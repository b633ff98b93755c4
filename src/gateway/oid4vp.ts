import { createPublicKey, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import {
  createOpenid4vpAuthorizationRequest,
  parseOpenid4vpAuthorizationResponse,
} from "@openid4vc/openid4vp";
import { DcqlPresentationResult, DcqlQuery } from "dcql";
import { type Action, decodeJwt } from "../credential/index.ts";
import { KPartyError } from "../errors/index.ts";

/** The DCQL credential query id under which a wallet answers with its K-th Party token. */
export const KPARTY_QUERY_ID = "kparty";

/**
 * The gateway as an OID4VP verifier: an Ed25519 key whose `did:jwk` is the client identifier
 * (`decentralized_identifier:did:jwk:…`, OID4VP 1.0 §5.9.3), and which signs the request objects
 * (JAR, `typ: oauth-authz-req+jwt`). A wallet resolves `did:jwk` offline from the identifier itself.
 */
export interface Oid4vpSigner {
  did: string;
  clientId: string;
  kid: string;
  signJwt(header: Record<string, unknown>, payload: Record<string, unknown>): string;
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

/**
 * The verifier identity of OID4VP requests, from an Ed25519 private key (a fresh one by default:
 * request objects are stored when created, so a restart does not invalidate open requests).
 */
export function createOid4vpSigner(
  privateKey: KeyObject = generateKeyPairSync("ed25519").privateKey,
): Oid4vpSigner {
  if (privateKey.asymmetricKeyType !== "ed25519")
    throw new TypeError("the OID4VP key must be an Ed25519 key");
  const { x } = createPublicKey(privateKey).export({ format: "jwk" });
  const did = `did:jwk:${b64({ crv: "Ed25519", kty: "OKP", x })}`;
  return {
    did,
    clientId: `decentralized_identifier:${did}`,
    kid: `${did}#0`,
    signJwt(header, payload) {
      const input = `${b64(header)}.${b64(payload)}`;
      return `${input}.${sign(null, Buffer.from(input), privateKey).toString("base64url")}`;
    },
  };
}

/**
 * The DCQL query for a scope: one `jwt_vc_json` credential of type `KPartyCredential` whose
 * `kParty.actions` contain every requested action and whose `kParty.models` contain every
 * requested model (or `"*"`).
 */
export function dcqlQueryFor(scope: { actions: Action[]; models: string[] }) {
  const kParty = ["credentialSubject", "kParty"];
  const query = {
    credentials: [
      {
        id: KPARTY_QUERY_ID,
        format: "jwt_vc_json" as const,
        meta: { type_values: [["VerifiableCredential", "KPartyCredential"]] },
        claims: [
          ...scope.actions.map((action, i) => ({
            id: `action_${i}`,
            path: [...kParty, "actions", null],
            values: [action],
          })),
          ...scope.models.map((model, i) => ({
            id: `model_${i}`,
            path: [...kParty, "models", null],
            values: model === "*" ? ["*"] : [model, "*"],
          })),
        ],
      },
    ],
  };
  DcqlQuery.validate(DcqlQuery.parse(query));
  return query;
}

/** What the gateway keeps of a request: the client_id, the scope, the signed request object and its payload. */
export interface StoredRequest {
  clientId: string;
  scope: { actions: Action[]; models: string[] };
  requestObject: string;
  payload: Record<string, unknown>;
}

/**
 * Builds a signed OID4VP 1.0 authorization request with the library: `response_type=vp_token`,
 * `response_mode=direct_post` to `responseUri`, the DCQL query, `nonce` and `state`, delivered by
 * value (`request`) and by reference (`request_uri`, GET).
 */
export async function createAuthorizationRequest(params: {
  signer: Oid4vpSigner;
  scope: { actions: Action[]; models: string[] };
  nonce: string;
  state: string;
  responseUri: string;
  requestUri: string;
  ttlSeconds: number;
  now: Date;
}) {
  const { signer } = params;
  const payload = {
    response_type: "vp_token" as const,
    client_id: signer.clientId,
    response_uri: params.responseUri,
    response_mode: "direct_post" as const,
    nonce: params.nonce,
    state: params.state,
    dcql_query: dcqlQueryFor(params.scope),
    client_metadata: { vp_formats_supported: { jwt_vc_json: { alg_values: ["ES256K"] as [string] } } },
  };
  const created = await createOpenid4vpAuthorizationRequest({
    authorizationRequestPayload: payload,
    jar: {
      requestUri: params.requestUri,
      jwtSigner: { method: "did", didUrl: signer.kid, alg: "EdDSA" },
      expiresInSeconds: params.ttlSeconds,
      // static discovery (OID4VP 1.0 §5.8): the wallet is not known in advance; iat and exp
      // from the gateway's clock (the library's JAR step reads the system clock)
      additionalJwtPayload: {
        aud: "https://self-issued.me/v2",
        iat: Math.floor(params.now.getTime() / 1000),
        exp: Math.floor(params.now.getTime() / 1000) + params.ttlSeconds,
      },
    },
    now: params.now,
    callbacks: {
      signJwt: async (_signer, { header, payload }) => ({
        jwt: signer.signJwt(header, payload),
        signerJwk: { kty: "OKP" },
      }),
      encryptJwe: () => {
        throw new TypeError("request objects are not encrypted");
      },
    },
  });
  const requestObject = created.jar?.authorizationRequestJwt as string;
  const byValue = new URL("openid4vp://");
  byValue.search = new URLSearchParams({ client_id: signer.clientId, request: requestObject }).toString();
  return {
    stored: { clientId: signer.clientId, scope: params.scope, requestObject, payload } as StoredRequest,
    byReference: created.authorizationRequest,
    byValue: byValue.toString(),
  };
}

/**
 * The one VP JWT of a `direct_post` response, read with the library (state compared, DCQL
 * response shape) and held to OID4VP 1.0 exactly: `vp_token` is a JSON object whose only key is
 * the credential query id, holding an array of exactly one presentation string. No `direct_post.jwt`.
 */
export async function presentationOfResponse(
  body: Record<string, unknown>,
  request: StoredRequest,
): Promise<string> {
  if (body.response !== undefined)
    throw new KPartyError("malformed", "encrypted responses (direct_post.jwt) are not supported");
  let vpToken: unknown = body.vp_token;
  if (typeof vpToken === "string") {
    try {
      vpToken = JSON.parse(vpToken);
    } catch {
      throw new KPartyError("malformed", "vp_token must be a JSON object keyed by credential query id");
    }
  }
  if (typeof vpToken !== "object" || vpToken === null || Array.isArray(vpToken)) {
    throw new KPartyError("malformed", "vp_token must be a JSON object keyed by credential query id");
  }
  const keys = Object.keys(vpToken);
  const entries = (vpToken as Record<string, unknown>)[KPARTY_QUERY_ID];
  if (keys.length !== 1 || !Array.isArray(entries)) {
    throw new KPartyError(
      "malformed",
      `vp_token must hold exactly the credential query "${KPARTY_QUERY_ID}", as an array`,
    );
  }
  if (entries.length !== 1 || typeof entries[0] !== "string") {
    throw new KPartyError("malformed", `vp_token.${KPARTY_QUERY_ID} must hold exactly one VP JWT`);
  }
  try {
    await parseOpenid4vpAuthorizationResponse({
      authorizationResponse: { vp_token: vpToken, state: body.state },
      authorizationRequestPayload: request.payload as never,
      callbacks: {
        decryptJwe: () => {
          throw new TypeError("no encrypted responses");
        },
        verifyJwt: () => {
          throw new TypeError("no signed responses");
        },
      },
    });
  } catch (cause) {
    throw new KPartyError("malformed", "the response is not an OID4VP 1.0 response to this request", {
      cause,
    });
  }
  return entries[0];
}

/**
 * Whether the verified credential (its signed bytes, as the W3C credential the JWT encodes)
 * satisfies the request's DCQL query; `dcql_unsatisfied` otherwise.
 */
export function checkDcql(credentialJwt: string, request: StoredRequest): void {
  const { payload } = decodeJwt(credentialJwt);
  const vc = payload.vc as Record<string, unknown>;
  const subject = { ...(vc.credentialSubject as Record<string, unknown>), id: payload.sub };
  const query = DcqlQuery.parse(request.payload.dcql_query as never);
  let satisfied = false;
  try {
    const result = DcqlPresentationResult.fromDcqlPresentation(
      {
        [KPARTY_QUERY_ID]: [
          {
            credential_format: "jwt_vc_json",
            type: vc.type as string[],
            claims: { ...vc, credentialSubject: subject } as never,
            cryptographic_holder_binding: true,
          },
        ],
      },
      { dcqlQuery: query },
    );
    satisfied = result.can_be_satisfied;
  } catch {
    satisfied = false;
  }
  if (!satisfied) {
    throw new KPartyError(
      "dcql_unsatisfied",
      "the presented credential does not satisfy the request's DCQL query",
    );
  }
}
