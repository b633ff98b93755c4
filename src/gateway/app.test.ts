import { existsSync, renameSync, symlinkSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { offlineGatewayOptions } from "../../test/fixtures/offline-gateway.ts";
import { buildGateway } from "./app.ts";
import { openGatewayDatabase } from "./state.ts";

const base = offlineGatewayOptions;

describe("buildGateway misconfiguration", () => {
  it.each([
    ["no domain", { domain: "" }],
    ["a negative staleness bound", { maxStalenessMs: -1 }],
    ["a zero token freshness", { tokenFreshnessMs: 0 }],
    ["a non-finite polling interval", { statusPollingIntervalMs: Number.POSITIVE_INFINITY }],
    ["a token lifetime of zero", { tokenTtlSeconds: 0 }],
    ["a challenge lifetime below zero", { challengeTtlSeconds: -5 }],
    ["an unknown removed-issuer policy", { removedIssuerPolicy: "trust-everyone" as never }],
    ["a negative clock skew", { clockSkewSeconds: -1 }],
    ["a zero in-flight bound", { maxInFlight: 0 }],
    ["a fractional in-flight bound", { maxInFlight: 1.5 }],
    ["a zero event-loop delay bound", { maxEventLoopDelayMs: 0 }],
    ["a negative number of verification threads", { verifyThreads: -1 }],
    ["a negative confirmation depth", { confirmations: -1 }],
    ["a fractional confirmation depth", { confirmations: 1.5 }],
    ["an empty reorganisation window", { reorgWindowBlocks: 0 }],
    ["an unknown token binding", { tokenBinding: "none" as never }],
    ["a public URL that is not http(s)", { publicUrl: "ftp://gw.example" }],
    ["a public URL with a query", { publicUrl: "https://gw.example/?a=1" }],
    ["a zero DPoP nonce lifetime", { requireDpopNonce: true, dpopNonceLifetimeSeconds: 0 }],
    ["a short DPoP nonce secret", { requireDpopNonce: true, dpopNonceSecret: Buffer.alloc(8) }],
  ])("throws TypeError for %s", async (_what, patch) => {
    await expect(buildGateway({ ...base(), ...patch })).rejects.toThrow(TypeError);
  });
});

describe("client errors from the HTTP layer", () => {
  it("maps a body that does not match its Content-Length to 400 malformed, not a 500", async () => {
    const app = await buildGateway(base());
    const res = await app.inject({
      method: "POST",
      url: "/auth/token",
      payload: '{"presentation":"x"}',
      headers: { "content-type": "application/json", "content-length": "5" },
    });
    expect({ status: res.statusCode, code: res.json().error?.code }).toEqual({
      status: 400,
      code: "malformed",
    });
    await app.close();
  });
});

describe("cacheBounds", () => {
  it("bounds the rate limiter's buckets as configured: challenges from five addresses leave three", async () => {
    const app = await buildGateway({ ...base(), cacheBounds: { rateLimitBuckets: 3 } });
    const statuses: number[] = [];
    for (let i = 1; i <= 5; i++) {
      const res = await app.inject({
        method: "POST",
        url: "/auth/challenge",
        payload: {},
        remoteAddress: `192.0.2.${i}`,
      });
      statuses.push(res.statusCode);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200]);
    expect(app.kpartyCacheSizes().rateLimitBuckets).toBe(3);
    await app.close();
  });
});

describe("load shedding", () => {
  it("refuses requests past maxInFlight with 503 overloaded before any work, and admits again once one ends", async () => {
    const app = await buildGateway({ ...base(), maxInFlight: 1 });
    // runs after the gateway's own onRequest hooks: once it runs, the shedder has admitted the request
    let onAdmitted = () => {};
    const slowAdmitted = new Promise<void>((r) => (onAdmitted = r));
    app.addHook("onRequest", (request, _reply, done) => {
      if (request.url === "/auth/challenge") onAdmitted();
      done();
    });
    const body = new PassThrough();
    // a request whose body is still arriving stays in flight
    const slow = app.inject({
      method: "POST",
      url: "/auth/challenge",
      payload: body,
      headers: { "content-type": "application/json" },
    });
    await slowAdmitted;
    const shed = await app.inject({ method: "GET", url: "/openapi.json" });
    expect({ status: shed.statusCode, retry: shed.headers["retry-after"], body: shed.json() }).toEqual({
      status: 503,
      retry: "1",
      body: { error: { code: "overloaded", message: "the gateway is at capacity; retry shortly" } },
    });
    body.end("{}");
    expect((await slow).statusCode).toBe(200);
    const admitted = await app.inject({ method: "GET", url: "/openapi.json" });
    expect(admitted.statusCode).toBe(200);
    await app.close();
  });
});

describe("a failed sync of the audit log", () => {
  it("refuses the decision waiting on it and every later one with 503 audit_unavailable, and /healthz reports it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "kparty-app-"));
    const file = join(dir, "gateway.sqlite");
    const db = openGatewayDatabase(file);
    const operatorLog: string[] = [];
    const app = await buildGateway({
      ...base(),
      db,
      operatorLog: { write: (l: string) => operatorLog.push(l) },
    });
    try {
      // A real fault: the log's write-ahead file turns out to be a device that cannot be synced
      // (fdatasync answers EINVAL). SQLite keeps writing through the descriptor it holds.
      expect(existsSync(`${file}-wal`)).toBe(true);
      renameSync(`${file}-wal`, `${file}-wal.real`);
      symlinkSync("/dev/null", `${file}-wal`);
      const token = () =>
        app.inject({
          method: "POST",
          url: "/auth/token",
          payload: { presentation: "not-a-jwt" },
          headers: { "content-type": "application/json" },
        });
      const refused = {
        status: 503,
        body: {
          error: {
            code: "audit_unavailable",
            message:
              "the audit log could not be synced to disk, so no decision is recorded until the gateway restarts",
          },
        },
      };
      for (const res of [await token(), await token()])
        expect({ status: res.statusCode, body: res.json() }).toEqual(refused);
      // the first decision was committed before its sync failed; the second was refused before any commit
      const audited = db.prepare("SELECT route, outcome, code FROM audit").all();
      expect(audited.map((r) => ({ ...r }))).toEqual([
        { route: "/auth/token", outcome: "denied", code: "invalid_dpop_proof" },
      ]);
      const health = await app.inject({ method: "GET", url: "/healthz" });
      expect({ status: health.statusCode, body: health.json() }).toEqual({
        status: 503,
        body: { status: "unavailable", chainId: 31337, blockNumber: null, syncedBlock: 0, ...refused.body },
      });
      // the operator is told once why, and once per route within 10 s that requests are refused
      const refusal = `audit_unavailable: ${refused.body.error.message} <- EINVAL: invalid argument, fdatasync\n`;
      expect(operatorLog).toEqual([
        "kparty gateway: audit log sync failed (EINVAL: invalid argument, fdatasync); refusing every decision until restarted\n",
        `kparty gateway: POST /auth/token: ${refusal}`,
        `kparty gateway: GET /healthz: ${refusal}`,
      ]);
    } finally {
      await app.close();
      db.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
