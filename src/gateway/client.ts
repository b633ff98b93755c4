import { generateKeyPairSync, type KeyObject } from "node:crypto";
import { KPartyError, SERVICE_ERROR_CODES, type ServiceErrorCode } from "../errors/index.ts";
import type { Aggregation } from "../models/index.ts";
import { createDpopProof, dpopAlgorithmOf } from "./dpop.ts";
import type { TokenIntrospection } from "./routes/oauth.ts";
import type {
  AccessTokenResponse,
  ChallengeResponse,
  ModelResponse,
  ReceiptResponse,
  RoundResponse,
  TransactionResponse,
} from "./schemas.ts";

/**
 * What `POST /auth/token` answers. This client's answer types are those of the routes' response
 * schemas (`schemas.ts`, `INTROSPECTION_SCHEMA`), derived from them: one definition of each.
 */
export type TokenResponse = AccessTokenResponse;

export interface GatewayClientOptions {
  fetch?: typeof fetch;
  /**
   * The DPoP proof key (RFC 9449): Ed25519, P-256 or secp256k1. Tokens are asked for with a
   * proof of it (so they come back bound to it, `token_type: "DPoP"`) and every call with a
   * token sends `Authorization: DPoP` and a fresh proof. Default: a fresh Ed25519 key for this
   * client; `null` for bearer tokens (a gateway in `bearer` mode only).
   */
  dpopKey?: KeyObject | null;
  /** Clock for the proofs' `iat`, in milliseconds (default `Date.now`). */
  now?: () => number;
}

type Init = RequestInit & { token?: string };

const isServiceCode = (code: unknown): code is ServiceErrorCode =>
  typeof code === "string" && (SERVICE_ERROR_CODES as readonly string[]).includes(code);

const unexpected = (what: string, status: number) =>
  new KPartyError("unexpected_response", `the gateway's answer is not its contract: ${what}`, {
    details: { status },
  });

/**
 * A refusal as the gateway's `KPartyError`: its code and message, `details.status`. A body
 * that is not the gateway's error (not JSON, no error object, a code the gateway does not
 * have) is `unexpected_response`: a client never passes on a code it does not know.
 */
async function refusal(response: Response): Promise<KPartyError> {
  const type = response.headers.get("content-type") ?? "";
  const line = `${response.status} ${response.statusText}`.trim();
  if (!type.includes("application/json")) {
    await response.body?.cancel();
    return unexpected(`${line} with ${type || "no content type"}`, response.status);
  }
  let body: { error?: { code?: unknown; message?: unknown } } | undefined;
  try {
    body = (await response.json()) as typeof body;
  } catch {
    return unexpected(`${line} with a body that is not JSON`, response.status);
  }
  const code = body?.error?.code;
  if (!isServiceCode(code))
    return unexpected(`${line} with error code ${JSON.stringify(code ?? null)}`, response.status);
  const message = typeof body?.error?.message === "string" ? body.error.message : line;
  return new KPartyError(code, message, { details: { status: response.status } });
}

/** The body of a successful answer, which must be of the `expected` media type. */
async function bodyOf(response: Response, expected: "json" | "bytes"): Promise<unknown> {
  const type = response.headers.get("content-type") ?? "";
  const wanted = expected === "json" ? "application/json" : "application/octet-stream";
  if (!type.includes(wanted)) {
    await response.body?.cancel();
    return Promise.reject(
      unexpected(`${response.status} with ${type || "no content type"}, not ${wanted}`, response.status),
    );
  }
  if (expected === "bytes") return new Uint8Array(await response.arrayBuffer());
  try {
    return await response.json();
  } catch {
    throw unexpected(`${response.status} with a body that is not JSON`, response.status);
  }
}

/**
 * The client's HTTP: DPoP proofs (and the latest `DPoP-Nonce`, with one retry when refused
 * for it), `Authorization`, and the checks of every answer (`refusal`, `bodyOf`).
 */
function createTransport(base: string, options: GatewayClientOptions) {
  const fetchFn = options.fetch ?? fetch;
  const root = base.replace(/\/$/, "");
  const dpopKey = options.dpopKey === undefined ? generateKeyPairSync("ed25519").privateKey : options.dpopKey;
  if (dpopKey) dpopAlgorithmOf(dpopKey); // TypeError for a key of another kind
  const now = options.now ?? Date.now;
  let nonce: string | undefined;

  /** A proof for one request (`undefined` without a key). */
  function proof(method: string, url: string, accessToken?: string): string | undefined {
    if (!dpopKey) return undefined;
    return createDpopProof({
      key: dpopKey,
      htm: method,
      htu: url,
      now,
      ...(accessToken !== undefined ? { accessToken } : {}),
      ...(nonce !== undefined ? { nonce } : {}),
    });
  }

  async function send(path: string, init: Init): Promise<Response> {
    const url = `${root}${path}`;
    const headers = new Headers(init.headers);
    const p = proof(init.method ?? "GET", url, init.token);
    if (p) headers.set("dpop", p);
    if (init.token) headers.set("authorization", `${dpopKey ? "DPoP" : "Bearer"} ${init.token}`);
    const { token: _token, ...rest } = init;
    const response = await fetchFn(url, { ...rest, headers });
    const next = response.headers.get("dpop-nonce");
    if (next) nonce = next;
    return response;
  }

  /** One call: the answer's body of the `expected` type and its headers, or the refusal thrown. */
  async function call<T>(path: string, init: Init = {}, expected: "json" | "bytes" = "json") {
    let response = await send(path, init);
    if (
      dpopKey &&
      (response.status === 400 || response.status === 401) &&
      /error="use_dpop_nonce"/.test(response.headers.get("www-authenticate") ?? "") &&
      !(init.body instanceof ReadableStream)
    ) {
      await response.body?.cancel();
      response = await send(path, init); // once, with the nonce it just sent
    }
    if (!response.ok) throw await refusal(response);
    return { body: (await bodyOf(response, expected)) as T, headers: response.headers };
  }

  return { dpopKey, proof, call };
}

const form = (fields: Record<string, string>, headers: Record<string, string> = {}): Init => ({
  method: "POST",
  headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
  body: new URLSearchParams(fields).toString(),
});

const json = (method: string, body: unknown, token?: string): Init => ({
  method,
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
  ...(token ? { token } : {}),
});

/**
 * A small client for the kparty gateway's HTTP API. Refusals become `KPartyError`s with the
 * gateway's code (and `details.status`). Speaks DPoP by default: it keeps the gateway's latest
 * `DPoP-Nonce` and, refused with `use_dpop_nonce`, retries once with the new nonce.
 *
 * @example
 * ```ts
 * const gw = createGatewayClient("http://127.0.0.1:8080");
 * const { challenge, domain } = await gw.challenge();
 * const { access_token } = await gw.token(await holder.kpartyCreatePresentation({ …, challenge, domain }));
 * const weights = await gw.weights("mnist-logreg", access_token); // Authorization: DPoP + DPoP proof
 * ```
 */
export function createGatewayClient(base: string, options: GatewayClientOptions = {}) {
  const { dpopKey, proof, call } = createTransport(base, options);
  return {
    ...accessCalls(dpopKey, proof, call),
    ...modelCalls(call),
  };
}

type Call = ReturnType<typeof createTransport>["call"];

/** Challenges, tokens, OID4VP transactions and request headers. */
function accessCalls(
  dpopKey: KeyObject | null,
  proof: ReturnType<typeof createTransport>["proof"],
  call: Call,
) {
  return {
    /** The DPoP key's algorithm, or `null` for a bearer client. */
    dpopAlgorithm: dpopKey ? dpopAlgorithmOf(dpopKey) : null,
    /**
     * Headers for a request made without this client (e.g. prepared bytes): `authorization`
     * and, for a DPoP client, a fresh `dpop` proof for `method` and `url` (`url` absolute).
     */
    authHeaders(method: string, url: string, token: string): Record<string, string> {
      const p = proof(method, url, token);
      return p ? { authorization: `DPoP ${token}`, dpop: p } : { authorization: `Bearer ${token}` };
    },
    async challenge(): Promise<ChallengeResponse> {
      return (await call<ChallengeResponse>("/auth/challenge", json("POST", {}))).body;
    },
    async token(presentation: string, scope?: string): Promise<TokenResponse> {
      return (
        await call<TokenResponse>(
          "/auth/token",
          json("POST", scope ? { presentation, scope } : { presentation }),
        )
      ).body;
    },
    /**
     * The state of an OID4VP transaction this client's caller opened; once the wallet has
     * answered, the access token, bound to this client's DPoP key (collected once).
     */
    async oid4vpTransaction(transactionId: string): Promise<TransactionResponse> {
      const path = `/oid4vp/transactions/${encodeURIComponent(transactionId)}`;
      return (await call<TransactionResponse>(path, { method: "GET" })).body;
    },
    /**
     * Revokes `token` (RFC 7009, `POST /oauth/revoke`) as its holder, authenticated with `as`
     * (by default `token` itself; another token of the same holder works too).
     */
    async revoke(token: string, as: string = token): Promise<void> {
      await call("/oauth/revoke", { ...form({ token }), token: as });
    },
    /** Introspects `token` (RFC 7662) as the gateway client `client` (`kparty gateway clients add`). */
    async introspect(token: string, client: { id: string; secret: string }): Promise<TokenIntrospection> {
      const basic = Buffer.from(`${client.id}:${client.secret}`).toString("base64");
      const init = form({ token }, { authorization: `Basic ${basic}` });
      return (await call<TokenIntrospection>("/oauth/introspect", init)).body;
    },
  };
}

/** The model store's calls (each with an access token). */
function modelCalls(call: Call) {
  return {
    async models(token: string): Promise<ModelResponse[]> {
      return (await call<{ models: ModelResponse[] }>("/models", { token })).body.models;
    },
    async model(id: string, token: string): Promise<ModelResponse> {
      return (await call<ModelResponse>(`/models/${encodeURIComponent(id)}`, { token })).body;
    },
    async register(
      model: {
        id: string;
        description: string;
        shape: number[];
        maxSamplesPerUpdate?: number;
        aggregation?: Aggregation;
      },
      token: string,
    ): Promise<ModelResponse> {
      return (await call<ModelResponse>("/models", json("POST", model, token))).body;
    },
    /** The current global weights and their version. */
    async weights(id: string, token: string): Promise<{ weights: Float32Array; version: number }> {
      const path = `/models/${encodeURIComponent(id)}/weights`;
      const { body, headers } = await call<Uint8Array>(path, { token }, "bytes");
      const copy = body.slice();
      return {
        weights: new Float32Array(copy.buffer, copy.byteOffset, copy.byteLength / 4),
        version: Number(headers.get("x-kparty-model-version")),
      };
    },
    async submitUpdate(
      id: string,
      update: { round: number; sampleCount: number; weights: Float32Array },
      token: string,
    ): Promise<ReceiptResponse> {
      const bytes = new Uint8Array(
        update.weights.buffer,
        update.weights.byteOffset,
        update.weights.byteLength,
      );
      const { body } = await call<ReceiptResponse>(`/models/${encodeURIComponent(id)}/updates`, {
        method: "POST",
        token,
        headers: {
          "content-type": "application/octet-stream",
          "x-kparty-round": String(update.round),
          "x-kparty-sample-count": String(update.sampleCount),
        },
        body: bytes,
      });
      return body;
    },
    async closeRound(id: string, round: number, token: string): Promise<RoundResponse> {
      const path = `/models/${encodeURIComponent(id)}/rounds/${round}/close`;
      return (await call<RoundResponse>(path, { method: "POST", token })).body;
    },
  };
}

export type GatewayClient = ReturnType<typeof createGatewayClient>;
