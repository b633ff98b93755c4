import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IssuedCredential } from "../agent/index.ts";
import { createParticipant, type Participant } from "../src/devnet/index.ts";
import { createGatewayClient, type GatewayClient } from "../src/gateway/index.ts";
import { errorCodeOf } from "./fixtures/errors.ts";
import { presentation, waitForSync } from "./fixtures/http.ts";
import { issue } from "./fixtures/issue.ts";
import { createWorld, type KPartyWorld, PASSPHRASE } from "./fixtures/kparty.ts";

const MODEL = "fl-model";
let world: KPartyWorld;
let gw: GatewayClient;
let aliceCred: IssuedCredential;
let alice: string;
let coordinator: string;

async function tokenFor(holder: Participant, cred: IssuedCredential): Promise<string> {
  const vp = await presentation(world, holder, cred.jwt);
  return (await gw.token(vp)).access_token;
}

async function post(
  path: string,
  init: { token: string; headers?: Record<string, string>; body?: Uint8Array | string },
) {
  const url = `${world.base}${path}`;
  // the tokens of `gw` are bound to its DPoP key: each request with a fresh proof of it
  const res = await fetch(url, {
    method: "POST",
    headers: { ...gw.authHeaders("POST", url, init.token), ...(init.headers ?? {}) },
    ...(init.body !== undefined ? { body: init.body } : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

const f32 = (values: number[]) => new Uint8Array(Float32Array.from(values).buffer);
const updateHeaders = (round: string, samples = "10") => ({
  "content-type": "application/octet-stream",
  "x-kparty-round": round,
  "x-kparty-sample-count": samples,
});

beforeAll(async () => {
  world = await createWorld();
  gw = createGatewayClient(world.base);
  aliceCred = await issue(world.orgA, world.alice, {
    models: [MODEL],
    actions: ["model:read", "model:contribute"],
  });
  const coordinatorCred = await issue(world.orgB, world.mallory, {
    role: "coordinator",
    models: [MODEL],
    actions: ["model:read", "round:aggregate"],
  });
  alice = await tokenFor(world.alice, aliceCred);
  coordinator = await tokenFor(world.mallory, coordinatorCred);
});
afterAll(async () => {
  await world?.close();
});

describe("model registration", () => {
  it("lets a coordinator register a model within its grant, once", async () => {
    const info = await gw.register({ id: MODEL, description: "test", shape: [2, 2] }, coordinator);
    expect(info).toMatchObject({
      id: MODEL,
      version: 1,
      openRound: 1,
      updates: 0,
      parameterCount: 4,
      shape: [2, 2],
    });
    expect(await errorCodeOf(gw.register({ id: MODEL, description: "again", shape: [1] }, coordinator))).toBe(
      "conflict",
    );
    expect(
      await errorCodeOf(gw.register({ id: "other-model", description: "x", shape: [1] }, coordinator)),
    ).toBe("scope_denied");
    expect(await errorCodeOf(gw.register({ id: "p-model", description: "x", shape: [1] }, alice))).toBe(
      "scope_denied",
    );
    expect((await gw.models(coordinator)).map((m) => m.id)).toEqual([MODEL]);
  });
});

describe("updates and rounds", () => {
  it("refuses bad updates with exact codes and statuses, and accepts nothing from them", async () => {
    const path = `/models/${MODEL}/updates`;
    const cases: [string, Parameters<typeof post>[1], number, string][] = [
      [
        "NaN value",
        { token: alice, headers: updateHeaders("1"), body: f32([1, Number.NaN, 3, 4]) },
        400,
        "invalid_update",
      ],
      [
        "too few bytes",
        { token: alice, headers: updateHeaders("1"), body: f32([1, 2, 3]) },
        400,
        "invalid_update",
      ],
      [
        "too many bytes",
        { token: alice, headers: updateHeaders("1"), body: f32([1, 2, 3, 4, 5]) },
        413,
        "payload_too_large",
      ],
      [
        "zero samples",
        { token: alice, headers: updateHeaders("1", "0"), body: f32([1, 2, 3, 4]) },
        400,
        "malformed",
      ],
      [
        "no round header",
        { token: alice, headers: { "content-type": "application/octet-stream" }, body: f32([1, 2, 3, 4]) },
        400,
        "malformed",
      ],
      [
        "round not open",
        { token: alice, headers: updateHeaders("2"), body: f32([1, 2, 3, 4]) },
        409,
        "conflict",
      ],
      [
        "JSON body",
        {
          token: alice,
          headers: { ...updateHeaders("1"), "content-type": "application/json" },
          body: "[1,2,3,4]",
        },
        400,
        "malformed",
      ],
      [
        "text body",
        { token: alice, headers: { ...updateHeaders("1"), "content-type": "text/plain" }, body: "1 2 3 4" },
        400,
        "malformed",
      ],
      [
        "coordinator has no model:contribute",
        { token: coordinator, headers: updateHeaders("1"), body: f32([1, 2, 3, 4]) },
        403,
        "scope_denied",
      ],
      [
        "forged token",
        { token: `${alice}x`, headers: updateHeaders("1"), body: f32([1, 2, 3, 4]) },
        401,
        "token_invalid",
      ],
    ];
    for (const [what, init, status, code] of cases) {
      const res = await post(path, init);
      expect({ what, status: res.status, code: res.body.error?.code }).toEqual({ what, status, code });
    }
    expect((await gw.model(MODEL, coordinator)).updates).toBe(0);
  });

  it("accepts one update per participant, aggregates on close, and opens the next round", async () => {
    const receipt = await gw.submitUpdate(
      MODEL,
      { round: 1, sampleCount: 10, weights: Float32Array.from([1, 2, 3, 4]) },
      alice,
    );
    expect(receipt).toMatchObject({
      model: MODEL,
      round: 1,
      participant: world.alice.did,
      sampleCount: 10,
      bytes: 16,
    });
    const again = await post(`/models/${MODEL}/updates`, {
      token: alice,
      headers: updateHeaders("1"),
      body: f32([4, 3, 2, 1]),
    });
    expect({ status: again.status, code: again.body.error.code }).toEqual({ status: 409, code: "conflict" });
    expect((await gw.model(MODEL, alice)).updates).toBe(1);

    const byParticipant = await post(`/models/${MODEL}/rounds/1/close`, { token: alice });
    expect({ status: byParticipant.status, code: byParticipant.body.error.code }).toEqual({
      status: 403,
      code: "scope_denied",
    });
    const closed = await gw.closeRound(MODEL, 1, coordinator);
    expect(closed).toMatchObject({ version: 2, openRound: 2, aggregated: 1, samples: 10, updates: 0 });
    const { weights, version } = await gw.weights(MODEL, alice);
    expect({ version, weights: [...weights] }).toEqual({ version: 2, weights: [1, 2, 3, 4] });
    expect(await errorCodeOf(gw.closeRound(MODEL, 1, coordinator))).toBe("conflict");
    expect(await errorCodeOf(gw.closeRound(MODEL, 2, coordinator))).toBe("conflict");
  });

  it("audits a refused update after access was granted, with its code", async () => {
    await post(`/models/${MODEL}/updates`, {
      token: alice,
      headers: updateHeaders("2"),
      body: f32([Number.NaN, 0, 0, 0]),
    });
    const last = world.db
      .prepare("SELECT route, holder, action, model, outcome, code FROM audit ORDER BY seq DESC LIMIT 1")
      .get();
    expect(last).toEqual({
      route: "/models/:id/updates",
      holder: world.alice.did,
      action: "model:contribute",
      model: MODEL,
      outcome: "denied",
      code: "invalid_update",
    });
  });

  it("refuses updates from a participant whose credential was revoked, writing nothing", async () => {
    const revoked = await world.orgA.handle.agent.kpartyRevokeCredential({
      credentialId: aliceCred.credentialId,
    });
    await waitForSync(world.base, revoked.blockNumber);
    const res = await post(`/models/${MODEL}/updates`, {
      token: alice,
      headers: updateHeaders("2"),
      body: f32([1, 1, 1, 1]),
    });
    expect({ status: res.status, code: res.body.error.code }).toEqual({ status: 403, code: "revoked" });
    expect((await gw.model(MODEL, coordinator)).updates).toBe(0);
  });
});

describe("bounded sample counts and robust rules through the gateway", () => {
  const MEDIAN = "robust-median";
  const TRIMMED = "robust-trimmed";
  let coordinatorToken: string;
  let honest: string[];
  let rogue: string;
  let rogueDid: string;
  const extra: Participant[] = [];

  beforeAll(async () => {
    for (const name of ["carol", "dave", "erin", "rogue"]) {
      extra.push(
        await createParticipant({
          provider: world.chain.provider,
          deployment: world.deployment,
          dataDir: join(world.dir, name),
          passphrase: PASSPHRASE,
        }),
      );
    }
    const tokens: string[] = [];
    for (const p of extra) {
      const cred = await issue(world.orgA, p, {
        models: [MEDIAN, TRIMMED],
        actions: ["model:read", "model:contribute"],
      });
      tokens.push(await tokenFor(p, cred));
    }
    honest = tokens.slice(0, 3);
    rogue = tokens[3] as string;
    rogueDid = (extra[3] as Participant).did;
    const coordinatorCred = await issue(world.orgB, world.mallory, {
      role: "coordinator",
      models: [MEDIAN, TRIMMED],
      actions: ["model:read", "round:aggregate"],
    });
    coordinatorToken = await tokenFor(world.mallory, coordinatorCred);
  });
  afterAll(async () => {
    for (const p of extra) await p.handle.close();
  });

  const postJson = (path: string, token: string, body: unknown) =>
    post(path, { token, headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

  it("registers a model with its sample cap and rule, refusing invalid settings with exact codes", async () => {
    const refused: [unknown, number, string][] = [
      [{ id: MEDIAN, shape: [4], aggregation: { rule: "mode" } }, 400, "invalid_argument"],
      [
        { id: MEDIAN, shape: [4], aggregation: { rule: "trimmed-mean", trimFraction: 0.5 } },
        400,
        "invalid_argument",
      ],
      [{ id: MEDIAN, shape: [4], aggregation: { rule: "median", clipNorm: -1 } }, 400, "invalid_argument"],
      [{ id: MEDIAN, shape: [4], maxSamplesPerUpdate: 0 }, 400, "invalid_argument"],
      [{ id: MEDIAN, shape: [4], maxSamplesPerUpdate: 1e13 }, 400, "invalid_argument"],
      [{ id: MEDIAN, shape: [4], weightedBy: "nothing" }, 400, "malformed"],
    ];
    for (const [body, status, code] of refused) {
      const res = await postJson("/models", coordinatorToken, body);
      expect({ body, status: res.status, code: res.body.error?.code }).toEqual({ body, status, code });
    }
    const median = await postJson("/models", coordinatorToken, {
      id: MEDIAN,
      description: "median",
      shape: [2, 2],
      maxSamplesPerUpdate: 1000,
      aggregation: { rule: "median" },
    });
    expect({ status: median.status, body: median.body }).toMatchObject({
      status: 201,
      body: { id: MEDIAN, maxSamplesPerUpdate: 1000, aggregation: { rule: "median" } },
    });
    const trimmed = await gw.register(
      { id: TRIMMED, description: "trimmed", shape: [3], aggregation: { rule: "trimmed-mean", clipNorm: 3 } },
      coordinatorToken,
    );
    expect({ cap: trimmed.maxSamplesPerUpdate, aggregation: trimmed.aggregation }).toEqual({
      cap: 1_000_000,
      aggregation: { rule: "trimmed-mean", trimFraction: 0.2, clipNorm: 3 },
    });
    expect((await gw.model(TRIMMED, honest[0] as string)).aggregation).toEqual(trimmed.aggregation);
  });

  it("refuses an update claiming 1e12 samples (400 invalid_update) and keeps the median of the honest updates against one scaled by 1e30", async () => {
    const path = `/models/${MEDIAN}/updates`;
    for (const claim of ["1000000000000", "1001"]) {
      const res = await post(path, {
        token: rogue,
        headers: updateHeaders("1", claim),
        body: f32([1, 2, 3, 4]),
      });
      expect({ status: res.status, body: res.body }).toEqual({
        status: 400,
        body: {
          error: {
            code: "invalid_update",
            message: `the sample count ${claim} exceeds this model's cap of 1000 per update`,
            field: "x-kparty-sample-count",
          },
        },
      });
    }
    expect((await gw.model(MEDIAN, coordinatorToken)).updates).toBe(0);
    const honestUpdates = [
      [1, 2, 3, 4],
      [2, 3, 4, 5],
      [4, 5, 6, 7],
    ];
    for (const [k, values] of honestUpdates.entries()) {
      await gw.submitUpdate(
        MEDIAN,
        { round: 1, sampleCount: 10, weights: Float32Array.from(values) },
        honest[k] as string,
      );
    }
    const receipt = await gw.submitUpdate(
      MEDIAN,
      { round: 1, sampleCount: 1000, weights: Float32Array.from([1e30, 2e30, 3e30, 4e30]) },
      rogue,
    );
    expect({ participant: receipt.participant, sampleCount: receipt.sampleCount }).toEqual({
      participant: rogueDid,
      sampleCount: 1000,
    });
    const closed = await gw.closeRound(MEDIAN, 1, coordinatorToken);
    expect(closed).toMatchObject({ version: 2, aggregated: 4, samples: 1030, clipped: 0 });
    // per coordinate [a, b, c, 1e30·a] → (b + c) / 2
    expect([...(await gw.weights(MEDIAN, coordinatorToken)).weights]).toEqual([3, 4, 5, 6]);
  });

  it("bounds an update scaled by 1e30 by clipping under a trimmed mean that trims nothing", async () => {
    for (const token of honest) {
      await gw.submitUpdate(
        TRIMMED,
        { round: 1, sampleCount: 10, weights: Float32Array.from([1, 1, 1]) },
        token,
      );
    }
    await gw.submitUpdate(
      TRIMMED,
      { round: 1, sampleCount: 10, weights: Float32Array.from([1e30, 2e30, 2e30]) },
      rogue,
    );
    const closed = await gw.closeRound(TRIMMED, 1, coordinatorToken);
    expect(closed).toMatchObject({ version: 2, aggregated: 4, clipped: 1 });
    // ⌊0.2 · 4⌋ = 0 trimmed; the rogue's delta is clipped to [1, 2, 2] (norm C = 3): (3 · [1,1,1] + [1,2,2]) / 4
    expect([...(await gw.weights(TRIMMED, coordinatorToken)).weights]).toEqual([1, 1.25, 1.25]);
  });
});
