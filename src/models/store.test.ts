import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Readable } from "node:stream";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { spyOnDatasync } from "../../test/fixtures/datasync.ts";
import { errorCodeOf } from "../../test/fixtures/errors.ts";
import { SYNC_EVERY_BYTES } from "../util/atomic-file.ts";
import { prng } from "./logreg.ts";
import { FileModelStore, OWN_METADATA_FILE } from "./store.ts";

let dir: string;
let store: FileModelStore;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "kparty-models-"));
  store = new FileModelStore(dir);
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

/** Streams `values` as float32 in uneven chunks (so floats straddle chunk boundaries). */
function body(values: Float32Array | number[], chunk = 7): Readable {
  const bytes = Buffer.from(Float32Array.from(values).buffer);
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunk) parts.push(bytes.subarray(i, i + chunk));
  return Readable.from(parts);
}

async function weights(id: string): Promise<Float32Array> {
  const { stream } = await store.openWeights(id);
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  const all = Buffer.concat(chunks);
  return new Float32Array(all.buffer, all.byteOffset, all.length / 4);
}

describe("FileModelStore rounds", () => {
  it("syncs a large update and the new version as they are written, every 8 MiB (so no sync holds a pool thread long)", async () => {
    const parameters = (2 * SYNC_EVERY_BYTES + 4096) / 4;
    await store.register({ id: "big", description: "d", shape: [parameters] });
    const datasync = await spyOnDatasync();
    try {
      const values = new Float32Array(parameters).fill(2);
      await store.submitUpdate("big", {
        round: 1,
        participant: "did:a",
        sampleCount: 1,
        body: body(values, 65536),
      });
      expect(datasync).toHaveBeenCalledTimes(2);
      await store.closeRound("big", 1);
      expect(datasync).toHaveBeenCalledTimes(4);
      const next = await weights("big");
      expect([next.length, next[0], next[parameters - 1]]).toEqual([parameters, 2, 2]);
    } finally {
      datasync.mockRestore();
    }
  });

  it("aggregates a round with sample-weighted FedAvg into the next version", async () => {
    expect(await store.register({ id: "m", description: "d", shape: [2, 2] })).toMatchObject({
      version: 1,
      openRound: 1,
      updates: 0,
      parameterCount: 4,
    });
    await store.submitUpdate("m", {
      round: 1,
      participant: "did:a",
      sampleCount: 1,
      body: body([1, 2, 3, 4]),
    });
    await store.submitUpdate("m", {
      round: 1,
      participant: "did:b",
      sampleCount: 3,
      body: body([5, 6, 7, 8]),
    });
    expect((await store.get("m")).updates).toBe(2);
    const closed = await store.closeRound("m", 1);
    expect(closed).toMatchObject({ version: 2, openRound: 2, updates: 0, aggregated: 2, samples: 4 });
    expect([...(await weights("m"))]).toEqual([4, 5, 6, 7]);
  });

  it("aggregates exactly across many blocks of a larger model", async () => {
    const n = 300_000;
    await store.register({ id: "big", description: "d", shape: [n] });
    const a = new Float32Array(n).map((_, i) => i % 97);
    const b = new Float32Array(n).map((_, i) => -(i % 89));
    await store.submitUpdate("big", {
      round: 1,
      participant: "did:a",
      sampleCount: 2,
      body: body(a, 65_537),
    });
    await store.submitUpdate("big", {
      round: 1,
      participant: "did:b",
      sampleCount: 2,
      body: body(b, 65_537),
    });
    await store.closeRound("big", 1);
    const w = await weights("big");
    expect(w.length).toBe(n);
    const mismatches = w.filter(
      (v, i) => v !== Math.fround(((a[i] as number) + (b[i] as number)) / 2),
    ).length;
    expect(mismatches).toBe(0);
  });

  it("refuses bad updates with exact codes and writes nothing", async () => {
    await store.register({ id: "m", description: "d", shape: [4] });
    const submit = (
      values: number[],
      extra: Partial<{ round: number; participant: string; sampleCount: number }> = {},
    ) =>
      errorCodeOf(
        store.submitUpdate("m", {
          round: 1,
          participant: "did:x",
          sampleCount: 5,
          ...extra,
          body: body(values),
        }),
      );
    expect(await submit([1, 2, 3, 4, 5])).toBe("payload_too_large");
    expect(await submit([1, 2, 3])).toBe("invalid_update");
    expect(await submit([1, Number.NaN, 3, 4])).toBe("invalid_update");
    expect(await submit([1, Number.POSITIVE_INFINITY, 3, 4])).toBe("invalid_update");
    expect(await submit([1, 2, 3, 4], { sampleCount: 0 })).toBe("invalid_update");
    expect(await submit([1, 2, 3, 4], { round: 2 })).toBe("conflict");
    expect(await readdir(join(dir, "m", "rounds", "1"))).toEqual([]);
    expect(await submit([1, 2, 3, 4])).toBe("no error");
    expect(await submit([9, 9, 9, 9])).toBe("conflict");
    // one update file; its receipt is a row of the metadata store
    const files = await readdir(join(dir, "m", "rounds", "1"));
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^[0-9a-f]{32}\.[0-9a-f]{12}\.f32$/);
    const receipts = await store.receipts("m", 1);
    expect(receipts).toEqual([
      {
        model: "m",
        round: 1,
        participant: "did:x",
        sampleCount: 5,
        bytes: 16,
        receivedAt: expect.any(String),
      },
    ]);
  });

  it("refuses to close a round that is not open or has no updates", async () => {
    await store.register({ id: "m", description: "d", shape: [1] });
    expect(await errorCodeOf(store.closeRound("m", 1))).toBe("conflict");
    expect(await errorCodeOf(store.closeRound("m", 2))).toBe("conflict");
    expect(await errorCodeOf(store.closeRound("nope", 1))).toBe("not_found");
    expect((await store.get("m")).version).toBe(1);
  });

  it("refuses invalid registrations", async () => {
    expect(await errorCodeOf(store.register({ id: "bad id", description: "d", shape: [1] }))).toBe(
      "invalid_argument",
    );
    expect(await errorCodeOf(store.register({ id: "m", description: "d", shape: [0] }))).toBe(
      "invalid_argument",
    );
    expect(
      await errorCodeOf(
        store.register({ id: "m", description: "d", shape: [2], weights: new Float32Array(3) }),
      ),
    ).toBe("invalid_argument");
    await store.register({ id: "m", description: "d", shape: [1] });
    expect(await errorCodeOf(store.register({ id: "m", description: "d", shape: [1] }))).toBe("conflict");
  });
});

/** Submits `values` for round `round` of `id` as `participant`, claiming `sampleCount` samples. */
function submit(id: string, participant: string, values: number[], sampleCount = 100, round = 1) {
  return store.submitUpdate(id, { round, participant, sampleCount, body: body(values) });
}

/** Closes round `round` of `id` and returns the new global weights. */
async function close(id: string, round = 1): Promise<number[]> {
  await store.closeRound(id, round);
  return [...(await weights(id))];
}

describe("bounded sample counts", () => {
  it("refuses an update claiming more samples than the model's cap (invalid_update), writing nothing", async () => {
    await store.register({ id: "m", description: "d", shape: [2], maxSamplesPerUpdate: 100 });
    expect((await store.get("m")).maxSamplesPerUpdate).toBe(100);
    for (const claim of [1e12, 101]) {
      const error = await store
        .submitUpdate("m", { round: 1, participant: "did:rogue", sampleCount: claim, body: body([5, 5]) })
        .catch((e: unknown) => e);
      expect(error).toMatchObject({
        code: "invalid_update",
        shortMessage: `the sample count ${claim} exceeds this model's cap of 100 per update`,
        details: { field: "x-kparty-sample-count", maxSamplesPerUpdate: 100 },
      });
    }
    expect((await store.get("m")).updates).toBe(0);
    expect((await readdir(join(dir, "m"))).sort()).toEqual(["v1.f32"]);
    expect((await submit("m", "did:a", [1, 1], 100)).sampleCount).toBe(100);
  });

  it("caps a model registered without maxSamplesPerUpdate at 1,000,000 samples per update", async () => {
    const info = await store.register({ id: "m", description: "d", shape: [1] });
    expect(info).toMatchObject({ maxSamplesPerUpdate: 1_000_000, aggregation: { rule: "fedavg" } });
    expect(await errorCodeOf(submit("m", "did:rogue", [1], 1e12))).toBe("invalid_update");
    expect(await errorCodeOf(submit("m", "did:rogue", [1], 1_000_001))).toBe("invalid_update");
    expect(await errorCodeOf(submit("m", "did:rogue", [1], 1_000_000))).toBe("no error");
  });

  it("bounds a capped participant's FedAvg weight by cap / (cap + honest samples)", async () => {
    // three honest updates of 100 samples at 1; a rogue claiming the cap (100) at 5:
    // its weight is 100 / (100 + 300) = 1/4, so the model moves 1/4 · (5 − 1) = 1 from the honest mean
    await store.register({ id: "m", description: "d", shape: [2], maxSamplesPerUpdate: 100 });
    for (const p of ["did:a", "did:b", "did:c"]) await submit("m", p, [1, 1], 100);
    expect(await errorCodeOf(submit("m", "did:rogue", [5, 5], 1e12))).toBe("invalid_update");
    await submit("m", "did:rogue", [5, 5], 100);
    expect(await close("m")).toEqual([2, 2]);
  });

  it("treats a model.json written before caps and rules as FedAvg with the default cap", async () => {
    await mkdir(join(dir, "m"));
    await writeFile(join(dir, "m", "v1.f32"), Buffer.alloc(4));
    const old = { id: "m", description: "d", version: 1, shape: [1], dtype: "float32", updatedAt: "x" };
    await writeFile(join(dir, "m", "model.json"), JSON.stringify(old));
    await store.close();
    store = new FileModelStore(dir);
    expect(await store.get("m")).toMatchObject({
      maxSamplesPerUpdate: 1_000_000,
      aggregation: { rule: "fedavg" },
    });
    expect(await errorCodeOf(submit("m", "did:rogue", [1], 1e12))).toBe("invalid_update");
  });
});

describe("robust aggregation rules", () => {
  const honest = [
    [1, 2, 3],
    [2, 3, 4],
    [3, 4, 5],
    [4, 5, 6],
  ];
  const scaled = (values: number[], by = 1e30) => values.map((v) => v * by);

  it("FedAvg without clipping is captured by one update scaled by 1e30 (why the robust rules exist)", async () => {
    await store.register({ id: "m", description: "d", shape: [3] });
    for (const [k, h] of honest.entries()) await submit("m", `did:${k}`, h);
    await submit("m", "did:rogue", scaled([1, 2, 3]));
    const next = await close("m");
    expect(next[0]).toBeGreaterThan(1e29);
  });

  it("median: one update scaled by 1e30 among four honest ones leaves the coordinate-wise median of the honest values", async () => {
    await store.register({ id: "m", description: "d", shape: [3], aggregation: { rule: "median" } });
    for (const [k, h] of honest.entries()) await submit("m", `did:${k}`, h);
    await submit("m", "did:rogue", scaled([1, 2, 3]), 1_000_000);
    // per coordinate, sorted: [1,2,3,4,1e30] → 3; [2,3,4,5,2e30] → 4; [3,4,5,6,3e30] → 5
    expect(await close("m")).toEqual([3, 4, 5]);
  });

  it("median of an even count is the mean of the two middle values, ignoring sample counts", async () => {
    await store.register({ id: "m", description: "d", shape: [2], aggregation: { rule: "median" } });
    await submit("m", "did:a", [1, -8], 1);
    await submit("m", "did:b", [2, 0], 1000);
    await submit("m", "did:c", [4, 1], 1);
    await submit("m", "did:rogue", [1e30, -1e30], 1_000_000);
    // [1,2,4,1e30] → (2+4)/2 = 3; [-1e30,-8,0,1] → (-8+0)/2 = -4
    expect(await close("m")).toEqual([3, -4]);
  });

  it("median with clipping: the rogue's delta from the current weights is clipped, then the median taken", async () => {
    await store.register({
      id: "m",
      description: "d",
      shape: [3],
      weights: Float32Array.from([10, 10, 10]),
      aggregation: { rule: "median", clipNorm: 3 },
    });
    // deltas [1,0,0], [0,1,0], [0,0,1] (norm 1) and the rogue's 1e30·[1,2,2] → clipped to [1,2,2]
    await submit("m", "did:a", [11, 10, 10]);
    await submit("m", "did:b", [10, 11, 10]);
    await submit("m", "did:c", [10, 10, 11]);
    await submit("m", "did:rogue", scaled([1, 2, 2]));
    // per coordinate the four deltas sort to [0,0,1,1] or [0,0,1,2]: medians 0.5, 0.5, 0.5
    const closed = await store.closeRound("m", 1);
    expect(closed.clipped).toBe(1);
    expect([...(await weights("m"))]).toEqual([10.5, 10.5, 10.5]);
  });

  it("trimmed mean (β = 0.2) drops one update scaled by 1e30 among five honest ones, with clipping on", async () => {
    await store.register({
      id: "m",
      description: "d",
      shape: [3],
      aggregation: { rule: "trimmed-mean", trimFraction: 0.2, clipNorm: 3 },
    });
    // six updates: ⌊0.2 · 6⌋ = 1 dropped at each end of every coordinate, the mean of four kept
    const five = [
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 1],
      [1, 1, 0],
      [0, 1, 1],
    ];
    for (const [k, h] of five.entries()) await submit("m", `did:${k}`, h);
    await submit("m", "did:rogue", scaled([1, 2, 2]));
    // coordinate 0: [0,0,0,1,1,≈1] → [0,0,1,1] → 0.5; 1: [0,0,1,1,1,2] → [0,1,1,1] → 0.75; 2: [0,0,0,1,1,2] → [0,0,1,1] → 0.5
    const closed = await store.closeRound("m", 1);
    expect({ clipped: closed.clipped, weights: [...(await weights("m"))] }).toEqual({
      clipped: 1,
      weights: [0.5, 0.75, 0.5],
    });
  });

  it("trimmed mean that trims nothing (⌊0.2 · 4⌋ = 0) still bounds the rogue by clipping: its share is C / n", async () => {
    await store.register({
      id: "m",
      description: "d",
      shape: [3],
      aggregation: { rule: "trimmed-mean", trimFraction: 0.2, clipNorm: 3 },
    });
    for (const p of ["did:a", "did:b", "did:c"]) await submit("m", p, [1, 1, 1]);
    await submit("m", "did:rogue", scaled([1, 2, 2])); // norm 3e30 → clipped to [1, 2, 2] (norm 3)
    // (3 · [1,1,1] + [1,2,2]) / 4: the rogue's own share is ‖[1,2,2]‖ / 4 = C / n
    expect(await close("m")).toEqual([1, 1.25, 1.25]);
  });

  it("FedAvg with clipping: the rogue's term is its weight times at most C", async () => {
    await store.register({
      id: "m",
      description: "d",
      shape: [3],
      weights: Float32Array.from([10, 10, 10]),
      aggregation: { rule: "fedavg", clipNorm: 3 },
      maxSamplesPerUpdate: 100,
    });
    for (const p of ["did:a", "did:b", "did:c"]) await submit("m", p, [11, 11, 11], 100);
    await submit("m", "did:rogue", [10 + 1e30, 10 + 2e30, 10 + 2e30], 100); // delta ≈ 1e30·[1,2,2] → [1,2,2]
    // 10 + 3/4 · [1,1,1] + 1/4 · [1,2,2]: the rogue's term has norm 1/4 · C
    expect(await close("m")).toEqual([11, 11.25, 11.25]);
  });

  it("clips against the current global weights of each round", async () => {
    await store.register({
      id: "m",
      description: "d",
      shape: [1],
      aggregation: { rule: "median", clipNorm: 1 },
    });
    await submit("m", "did:a", [4]); // delta 4 → clipped to 1
    expect(await close("m")).toEqual([1]);
    await submit("m", "did:a", [1.5], 100, 2); // delta 0.5 from version 2, within C
    await store.closeRound("m", 2);
    expect([...(await weights("m"))]).toEqual([1.5]);
  });

  it("aggregates exactly across blocks with the order-statistic rules", async () => {
    const n = 300_000;
    await store.register({ id: "big", description: "d", shape: [n], aggregation: { rule: "median" } });
    const a = new Float32Array(n).map((_, i) => i % 97);
    const b = new Float32Array(n).map((_, i) => -(i % 89));
    const c = new Float32Array(n).map((_, i) => (i % 13) - 6);
    for (const [k, v] of [a, b, c].entries()) {
      await store.submitUpdate("big", {
        round: 1,
        participant: `did:${k}`,
        sampleCount: 1,
        body: body(v, 65_537),
      });
    }
    await store.closeRound("big", 1);
    const w = await weights("big");
    const expected = (i: number) =>
      [a[i] as number, b[i] as number, c[i] as number].sort((x, y) => x - y)[1] as number;
    expect(w.length).toBe(n);
    expect(w.filter((v, i) => v !== expected(i)).length).toBe(0);
  });

  it("refuses invalid aggregation settings and caps at registration (invalid_argument)", async () => {
    const register = (extra: Record<string, unknown>) =>
      errorCodeOf(store.register({ id: "m", description: "d", shape: [1], ...extra }));
    for (const bad of [
      { aggregation: { rule: "mode" } },
      { aggregation: "median" },
      { aggregation: { rule: "trimmed-mean", trimFraction: 0.5 } },
      { aggregation: { rule: "trimmed-mean", trimFraction: 0 } },
      { aggregation: { rule: "median", trimFraction: 0.1 } },
      { aggregation: { rule: "median", clipNorm: 0 } },
      { aggregation: { rule: "median", clipNorm: Number.POSITIVE_INFINITY } },
      { aggregation: { rule: "median", extra: 1 } },
      { maxSamplesPerUpdate: 0 },
      { maxSamplesPerUpdate: 1.5 },
      { maxSamplesPerUpdate: 1e12 + 1 },
      { maxSamplesPerUpdate: "100" },
    ]) {
      expect({ bad, code: await register(bad) }).toEqual({ bad, code: "invalid_argument" });
    }
    expect(await store.list()).toEqual([]);
    expect(
      await store.register({ id: "m", description: "d", shape: [1], aggregation: { rule: "trimmed-mean" } }),
    ).toMatchObject({
      aggregation: { rule: "trimmed-mean", trimFraction: 0.2 },
      maxSamplesPerUpdate: 1_000_000,
    });
  });
});

describe("documented bounds under clipping", () => {
  const norm = (a: ArrayLike<number>, b: ArrayLike<number>) =>
    Math.sqrt(Array.from(a).reduce((s, v, i) => s + (v - (b[i] as number)) ** 2, 0));

  it("one round moves the weights by at most C (fedavg), √2·C (median), C/√(1−2β) (trimmed mean), whatever is sent", async () => {
    let model = 0;
    // near the bounds (small values) or anywhere (every finite float32, 1e30 included)
    const value = fc.oneof(
      fc.float({ min: -4, max: 4, noNaN: true }),
      fc.float({ noNaN: true, noDefaultInfinity: true }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 5 }).chain((d) =>
          fc.record({
            current: fc.array(fc.float({ min: -2, max: 2, noNaN: true }), { minLength: d, maxLength: d }),
            updates: fc.array(
              fc.record({
                values: fc.array(value, { minLength: d, maxLength: d }),
                samples: fc.integer({ min: 1, max: 1000 }),
              }),
              { minLength: 1, maxLength: 7 },
            ),
            rule: fc.constantFrom("fedavg", "median", "trimmed-mean"),
            trimFraction: fc.constantFrom(0.1, 0.2, 0.25, 0.4),
            clipNorm: fc.constantFrom(0.5, 1, 3, 1e6),
          }),
        ),
        async ({ current, updates, rule, trimFraction, clipNorm }) => {
          const id = `p${model++}`;
          const aggregation =
            rule === "trimmed-mean"
              ? { rule, trimFraction, clipNorm }
              : { rule: rule as "fedavg" | "median", clipNorm };
          const g = Float32Array.from(current);
          await store.register({ id, description: "d", shape: [g.length], weights: g, aggregation });
          for (const [k, u] of updates.entries()) await submit(id, `did:${k}`, u.values, u.samples);
          const next = Float32Array.from(await close(id));
          const bound =
            rule === "fedavg"
              ? clipNorm
              : rule === "median"
                ? Math.SQRT2 * clipNorm
                : clipNorm / Math.sqrt(1 - 2 * trimFraction);
          // float32 rounding of the result adds at most half an ulp of |g| + bound per coordinate
          const slack = Math.sqrt(g.length) * (2 + bound) * 2 ** -23;
          expect(norm(next, g)).toBeLessThanOrEqual(bound + slack);
        },
      ),
      { numRuns: 80 },
    );
  });
});

describe("FedAvg stays byte-identical", () => {
  it("equals Σ (nₖ / Σn) · updateₖ summed in float64 in submission order, rounded once to float32", async () => {
    const n = 70_000; // two blocks
    await store.register({ id: "m", description: "d", shape: [n] });
    const rand = prng(7);
    const updates = [3, 1000, 17].map((samples, k) => ({
      participant: `did:${k}`,
      samples,
      values: new Float32Array(n).map(() => (rand() - 0.5) * 2 ** (Math.floor(rand() * 40) - 20)),
    }));
    for (const u of updates) {
      await store.submitUpdate("m", {
        round: 1,
        participant: u.participant,
        sampleCount: u.samples,
        body: body(u.values, 65_536),
      });
    }
    await store.closeRound("m", 1);
    // the store sums the updates in the order it accepted them
    expect((await store.receipts("m", 1)).map((r) => r.participant)).toEqual(["did:0", "did:1", "did:2"]);
    const sorted = updates;
    const total = sorted.reduce((s, u) => s + u.samples, 0);
    const expected = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let acc = 0;
      for (const u of sorted) acc = acc + (u.samples / total) * (u.values[i] as number);
      expected[i] = acc;
    }
    expect(Buffer.from((await weights("m")).slice().buffer).equals(Buffer.from(expected.buffer))).toBe(true);
  });
});

describe("a model directory of a store that kept its metadata in files", () => {
  it("is imported once: the model, the open round's receipts (aggregated at close), model.json renamed", async () => {
    const participant = "did:legacy";
    const name = createHash("sha256").update(participant).digest("hex").slice(0, 32);
    const round = join(dir, "m", "rounds", "2");
    await mkdir(round, { recursive: true });
    await writeFile(join(dir, "m", "v2.f32"), Buffer.from(Float32Array.from([0, 0]).buffer));
    const info = { id: "m", description: "old", version: 2, shape: [2], dtype: "float32", updatedAt: "x" };
    await writeFile(join(dir, "m", "model.json"), JSON.stringify(info));
    await writeFile(join(round, `${name}.f32`), Buffer.from(Float32Array.from([3, 5]).buffer));
    const receipt = { model: "m", round: 2, participant, sampleCount: 7, bytes: 8, receivedAt: "y" };
    await writeFile(join(round, `${name}.json`), JSON.stringify(receipt));
    await store.close();
    store = new FileModelStore(dir);
    expect(await store.get("m")).toMatchObject({ version: 2, openRound: 2, updates: 1, description: "old" });
    expect(await store.receipts("m", 2)).toEqual([receipt]);
    expect((await readdir(join(dir, "m"))).sort()).toEqual(["model.json.imported", "rounds", "v2.f32"]);
    expect(await errorCodeOf(submit("m", participant, [1, 1], 1, 2))).toBe("conflict");
    expect(await store.closeRound("m", 2)).toMatchObject({ version: 3, aggregated: 1, samples: 7 });
    expect([...(await weights("m"))]).toEqual([3, 5]);
    // a second store on the directory finds nothing left to import: the metadata stays where it is
    await store.close();
    store = new FileModelStore(dir);
    expect(await store.get("m")).toMatchObject({ version: 3, updates: 0 });
  });
});

describe("orphan files", () => {
  it("removes the files of a closed round that no receipt names (a crash between file and row), keeping the named ones", async () => {
    await store.register({ id: "m", description: "d", shape: [1] });
    await submit("m", "did:a", [2]);
    const round = join(dir, "m", "rounds", "1");
    const [named] = await readdir(round);
    await writeFile(join(round, "0123.abcd.f32"), Buffer.alloc(4)); // synced, but no row: a crash
    await writeFile(join(round, "0123.abcd.f32.tmp"), Buffer.alloc(2)); // an upload cut short
    expect(await store.closeRound("m", 1)).toMatchObject({ aggregated: 1, samples: 100 });
    expect(await readdir(round)).toEqual([named]);
    expect([...(await weights("m"))]).toEqual([2]);
  });

  it("refuses a model.json it cannot read with config_invalid, naming the file", async () => {
    await mkdir(join(dir, "bad"));
    await writeFile(join(dir, "bad", "model.json"), "{ not json");
    await store.close();
    store = new FileModelStore(dir);
    const error = await store.get("bad").catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "config_invalid" });
    expect(String((error as Error).message)).toContain(join(dir, "bad", "model.json"));
  });
});

describe("FileModelStore metadata: derived, not stored", () => {
  it("stores neither the parameter count nor the open round, and derives both, also from files that held them", async () => {
    await store.register({ id: "m", description: "", shape: [3, 2] });
    expect(await store.get("m")).toMatchObject({ version: 1, openRound: 1, parameterCount: 6, updates: 0 });
    await store.close();
    const db = new DatabaseSync(join(dir, OWN_METADATA_FILE));
    try {
      const columns = (
        db.prepare("SELECT name FROM pragma_table_info('models')").all() as { name: string }[]
      ).map((c) => c.name);
      expect(columns).not.toContain("parameter_count");
      expect(columns).not.toContain("open_round");
    } finally {
      db.close();
    }
    // a model.json written before: its stored copies are ignored at the import, the values derived
    await mkdir(join(dir, "old"));
    await writeFile(
      join(dir, "old", "model.json"),
      JSON.stringify({
        id: "old",
        description: "",
        version: 3,
        shape: [3, 2],
        dtype: "float32",
        updatedAt: "x",
        parameterCount: 99,
        openRound: 7,
      }),
    );
    store = new FileModelStore(dir);
    expect(await store.get("old")).toMatchObject({ version: 3, openRound: 3, parameterCount: 6 });
  });
});
