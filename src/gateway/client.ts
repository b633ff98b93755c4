import { KPartyError, type KPartyErrorCode } from "../errors/index.ts";
import type { Aggregation, ModelInfo, RoundResult, UpdateReceipt } from "../models/index.ts";

export interface TokenResponse {
  access_token: string;
  token_type: "Bearer";
  expires_in: number;
  scope: string;
  holder: string;
  models: string[];
  credential_id: string;
}

/**
 * A small client for the kparty gateway's HTTP API. Refusals become `KPartyError`s with the
 * gateway's code (and `details.status`).
 *
 * @example
 * ```ts
 * const gw = createGatewayClient("http://127.0.0.1:8080");
 * const { challenge, domain } = await gw.challenge();
 * const { access_token } = await gw.token(await holder.kpartyCreatePresentation({ …, challenge, domain }));
 * const weights = await gw.weights("mnist-logreg", access_token);
 * ```
 */
export function createGatewayClient(base: string, options: { fetch?: typeof fetch } = {}) {
  const fetchFn = options.fetch ?? fetch;
  const root = base.replace(/\/$/, "");

  async function call<T>(
    path: string,
    init: RequestInit & { token?: string } = {},
  ): Promise<{ body: T; headers: Headers }> {
    const headers = new Headers(init.headers);
    if (init.token) headers.set("authorization", `Bearer ${init.token}`);
    const response = await fetchFn(`${root}${path}`, { ...init, headers });
    if (!response.ok) {
      let code: KPartyErrorCode = "internal";
      let message = `${response.status} ${response.statusText}`;
      try {
        const body = (await response.json()) as { error?: { code?: KPartyErrorCode; message?: string } };
        code = body.error?.code ?? code;
        message = body.error?.message ?? message;
      } catch {
        // not JSON: keep the status line
      }
      throw new KPartyError(code, message, { details: { status: response.status } });
    }
    const type = response.headers.get("content-type") ?? "";
    const body = type.includes("application/json")
      ? ((await response.json()) as T)
      : (new Uint8Array(await response.arrayBuffer()) as T);
    return { body, headers: response.headers };
  }

  const json = (method: string, body: unknown, token?: string) => ({
    method,
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    ...(token ? { token } : {}),
  });

  return {
    async challenge(): Promise<{ challenge: string; domain: string; expiresAt: string }> {
      return (
        await call<{ challenge: string; domain: string; expiresAt: string }>(
          "/auth/challenge",
          json("POST", {}),
        )
      ).body;
    },
    async token(presentation: string, scope?: string): Promise<TokenResponse> {
      return (
        await call<TokenResponse>(
          "/auth/token",
          json("POST", scope ? { presentation, scope } : { presentation }),
        )
      ).body;
    },
    async models(token: string): Promise<ModelInfo[]> {
      return (await call<{ models: ModelInfo[] }>("/models", { token })).body.models;
    },
    async model(id: string, token: string): Promise<ModelInfo> {
      return (await call<ModelInfo>(`/models/${encodeURIComponent(id)}`, { token })).body;
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
    ): Promise<ModelInfo> {
      return (await call<ModelInfo>("/models", json("POST", model, token))).body;
    },
    /** The current global weights and their version. */
    async weights(id: string, token: string): Promise<{ weights: Float32Array; version: number }> {
      const { body, headers } = await call<Uint8Array>(`/models/${encodeURIComponent(id)}/weights`, {
        token,
      });
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
    ): Promise<UpdateReceipt> {
      const bytes = new Uint8Array(
        update.weights.buffer,
        update.weights.byteOffset,
        update.weights.byteLength,
      );
      const { body } = await call<UpdateReceipt>(`/models/${encodeURIComponent(id)}/updates`, {
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
    async closeRound(id: string, round: number, token: string): Promise<RoundResult> {
      const path = `/models/${encodeURIComponent(id)}/rounds/${round}/close`;
      return (await call<RoundResult>(path, { method: "POST", token })).body;
    },
  };
}

export type GatewayClient = ReturnType<typeof createGatewayClient>;
