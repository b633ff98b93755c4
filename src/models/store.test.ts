import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { spyOnDatasync } from "../../test/fixtures/datasync.ts";
import { errorCodeOf } from "../../test/fixtures/errors.ts";
import { SYNC_EVERY_BYTES } from "../util/atomic-file.ts";
import { FileModelStore } from "./store.ts";

let dir: string;
let store: FileModelStore;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "kparty-models-"));
  store = new FileModelStore(dir);
});
afterEach(async () => {
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
    const files = await readdir(join(dir, "m", "rounds", "1"));
    expect(files.length).toBe(2);
    expect(
      JSON.parse(
        await readFile(
          join(dir, "m", "rounds", "1", files.find((f) => f.endsWith(".json")) as string),
          "utf8",
        ),
      ),
    ).toMatchObject({
      participant: "did:x",
      sampleCount: 5,
      bytes: 16,
    });
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
