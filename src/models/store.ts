import { createHash, randomBytes } from "node:crypto";
import { createReadStream, type ReadStream } from "node:fs";
import { type FileHandle, mkdir, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { MODEL_ID } from "../credential/index.ts";
import { KPartyError } from "../errors/index.ts";
import type { ModelLock } from "../state/port.ts";
import { syncingWriter, writeFileAtomic } from "../util/atomic-file.ts";
import {
  type Aggregation,
  aggregateFiles,
  DEFAULT_MAX_SAMPLES_PER_UPDATE,
  parseAggregation,
  parseMaxSamples,
} from "./aggregation.ts";

/** Public metadata of a shared model. */
export interface ModelInfo {
  id: string;
  description: string;
  /** Version of the current global weights (1 for the initial weights). */
  version: number;
  /** Shape of the weight tensor. */
  shape: number[];
  /** The product of `shape` (derived, not stored). */
  parameterCount: number;
  dtype: "float32";
  /** The round accepting updates, always the current `version` (derived, not stored); closing it produces version `openRound + 1`. */
  openRound: number;
  /** Updates received for the open round. */
  updates: number;
  /** The largest sample count one update may claim; an update claiming more is refused. */
  maxSamplesPerUpdate: number;
  /** How rounds are aggregated (see {@link Aggregation}). */
  aggregation: Aggregation;
  updatedAt: string;
}

/** One participant's accepted update. */
export interface UpdateReceipt {
  model: string;
  round: number;
  participant: string;
  sampleCount: number;
  bytes: number;
  receivedAt: string;
}

/** What `model.json` holds: the rest of {@link ModelInfo} is derived from it (see {@link derive}). */
type StoredInfo = Omit<ModelInfo, "updates" | "parameterCount" | "openRound">;

/** A model's metadata without the count of updates, which is read from the round's directory. */
type KnownInfo = Omit<ModelInfo, "updates">;

/** The parameter count is the product of the shape; the open round is the current version's. */
function derive(stored: StoredInfo): KnownInfo {
  return { ...stored, parameterCount: stored.shape.reduce((a, b) => a * b, 1), openRound: stored.version };
}

/** The part of `info` that is stored (files written before these were derived held them too). */
function storedPart(info: StoredInfo & Partial<KnownInfo>): StoredInfo {
  const { parameterCount: _count, openRound: _round, ...stored } = info;
  return stored;
}

/** What `closeRound` returns: the new metadata and what went into it. */
export interface RoundResult extends ModelInfo {
  /** Updates aggregated. */
  aggregated: number;
  /** The sum of their sample counts. */
  samples: number;
  /** Updates whose delta was scaled down to the model's `clipNorm` (0 without clipping). */
  clipped: number;
}

/** `conflict` unless `round` is the model's open round. */
function checkOpenRound(info: Pick<ModelInfo, "openRound">, round: number): void {
  if (round !== info.openRound) {
    throw new KPartyError("conflict", `round ${round} is not open (round ${info.openRound} is)`, {
      details: { openRound: info.openRound },
    });
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
}

/** A file name for a participant (DIDs contain characters file systems dislike). */
function participantFile(participant: string): string {
  return createHash("sha256").update(participant).digest("hex").slice(0, 32);
}

/**
 * Streams an update to a new file `tmp` (synced), checking every value as it arrives: exactly
 * the model's `parameterCount` float32 values, all finite. The bytes received; on any error
 * the file is removed.
 */
async function receiveUpdate(tmp: string, body: Readable, info: KnownInfo): Promise<number> {
  const expected = info.parameterCount * 4;
  const handle = await open(tmp, "wx", 0o600);
  const write = syncingWriter(handle);
  let bytes = 0;
  try {
    let carry = Buffer.alloc(0);
    for await (const chunk of body as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      if (bytes > expected) {
        throw new KPartyError("payload_too_large", `the update exceeds the model's ${expected} bytes`);
      }
      const data = carry.length ? Buffer.concat([carry, chunk]) : chunk;
      const whole = data.length - (data.length % 4);
      for (let off = 0; off < whole; off += 4) {
        if (!Number.isFinite(data.readFloatLE(off))) {
          throw new KPartyError(
            "invalid_update",
            `value ${(bytes - data.length + off) / 4} is not a finite number`,
          );
        }
      }
      await write(data.subarray(0, whole));
      carry = Buffer.from(data.subarray(whole));
    }
    if (bytes !== expected) {
      throw new KPartyError(
        "invalid_update",
        `the update has ${bytes} bytes; the model needs ${expected} (shape ${info.shape.join("×")} float32)`,
      );
    }
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(tmp, { force: true });
    throw error;
  }
  await handle.close();
  return bytes;
}

/**
 * The shared model store on the local file system. Per model: `model.json` (metadata), one
 * immutable `v<version>.f32` (little-endian float32) per version, and
 * `rounds/<round>/<participant>.f32|.json` for the updates of the open round. Writes are
 * atomic (temp file, fsync, rename), and weights are synced every 8 MiB as they are written
 * (see `syncingWriter`); weights stream to and from disk, and aggregation works block by
 * block, so no model is ever held whole in memory.
 *
 * Replicas: gateways that share one model store put `dir` on a file system they all mount
 * (NFS, a cloud file share) and pass the state backend's `lock` (`GatewayState.modelLock()`,
 * a PostgreSQL advisory lock per model): accepting an update and closing a round then never
 * interleave across replicas, so an update accepted at one replica is aggregated at another.
 * Weights stay files rather than database rows because they are streamed (up to 1 GiB a
 * version) and never held whole in memory; the metadata stays next to them so that one
 * directory is one consistent store (backed up and restored together).
 *
 * @example
 * ```ts
 * const store = new FileModelStore(".kparty/models");
 * await store.register({
 *   id: "mnist-logreg", description: "…", shape: [785, 10],
 *   maxSamplesPerUpdate: 10_000, aggregation: { rule: "trimmed-mean", trimFraction: 0.2, clipNorm: 5 },
 * });
 * await store.submitUpdate("mnist-logreg", { round: 1, participant: did, sampleCount: 600, body: stream });
 * const next = await store.closeRound("mnist-logreg", 1); // → version 2
 * ```
 */
export class FileModelStore {
  readonly #dir: string;
  /** Per-model queue: round closing and the final step of accepting an update never interleave. */
  readonly #locks = new Map<string, Promise<unknown>>();

  readonly #lock: ModelLock | null;

  constructor(dir: string, options: { lock?: ModelLock | null } = {}) {
    if (!dir) throw new TypeError("model store directory is required");
    this.#dir = dir;
    this.#lock = options.lock ?? null;
  }

  #modelDir(id: string): string {
    if (typeof id !== "string" || !MODEL_ID.test(id))
      throw new KPartyError("not_found", `no model ${String(id)}`);
    return join(this.#dir, id);
  }

  #roundDir(id: string, round: number): string {
    return join(this.#modelDir(id), "rounds", String(round));
  }

  #locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(id) ?? Promise.resolve();
    const lock = this.#lock;
    const next = previous.catch(() => undefined).then(() => (lock ? lock(id, fn) : fn()));
    this.#locks.set(id, next);
    void next
      .finally(() => {
        if (this.#locks.get(id) === next) this.#locks.delete(id);
      })
      .catch(() => undefined);
    return next;
  }

  /**
   * Registers a model with its initial weights (zeros unless given) as version 1, round 1
   * open. `maxSamplesPerUpdate` caps the sample count an update may claim (default
   * 1,000,000; at most 1e12); `aggregation` chooses the rule (default `{rule: "fedavg"}`).
   * Both are fixed for the model's life. Errors: `invalid_argument`, `conflict`.
   */
  async register(args: {
    id: string;
    description: string;
    shape: number[];
    weights?: Float32Array;
    maxSamplesPerUpdate?: number;
    aggregation?: Aggregation;
  }): Promise<ModelInfo> {
    if (typeof args.id !== "string" || !MODEL_ID.test(args.id)) {
      throw new KPartyError("invalid_argument", `invalid model id ${String(args.id)}`);
    }
    if (
      !Array.isArray(args.shape) ||
      args.shape.length === 0 ||
      args.shape.length > 8 ||
      !args.shape.every((d) => Number.isSafeInteger(d) && d > 0)
    ) {
      throw new KPartyError("invalid_argument", "shape must be 1 to 8 positive integers");
    }
    const parameterCount = args.shape.reduce((a, b) => a * b, 1);
    if (parameterCount > 2 ** 28)
      throw new KPartyError("invalid_argument", "a model has at most 2^28 parameters");
    const weights = args.weights ?? new Float32Array(parameterCount);
    if (weights.length !== parameterCount) {
      throw new KPartyError(
        "invalid_argument",
        `weights have ${weights.length} values, shape needs ${parameterCount}`,
      );
    }
    if (!weights.every(Number.isFinite)) throw new KPartyError("invalid_argument", "weights must be finite");
    if (typeof args.description !== "string" || args.description.length > 1000) {
      throw new KPartyError("invalid_argument", "description must be a string of at most 1000 characters");
    }
    const maxSamplesPerUpdate = parseMaxSamples(args.maxSamplesPerUpdate);
    const aggregation = parseAggregation(args.aggregation);
    const dir = this.#modelDir(args.id);
    return this.#locked(args.id, async () => {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      if (await exists(join(dir, "model.json"))) {
        throw new KPartyError("conflict", `model ${args.id} already exists`);
      }
      const info: StoredInfo = {
        id: args.id,
        description: args.description,
        version: 1,
        shape: [...args.shape],
        dtype: "float32",
        maxSamplesPerUpdate,
        aggregation,
        updatedAt: new Date().toISOString(),
      };
      const bytes = new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength);
      await writeFileAtomic(join(dir, "v1.f32"), bytes);
      await writeFileAtomic(join(dir, "model.json"), `${JSON.stringify(info, null, 2)}\n`);
      return { ...derive(info), updates: 0 };
    });
  }

  async #stored(id: string): Promise<KnownInfo> {
    try {
      const stored = JSON.parse(await readFile(join(this.#modelDir(id), "model.json"), "utf8"));
      // a model registered before caps and rules existed gets the defaults
      return derive(
        storedPart({
          maxSamplesPerUpdate: DEFAULT_MAX_SAMPLES_PER_UPDATE,
          aggregation: { rule: "fedavg" },
          ...stored,
        }),
      );
    } catch (error) {
      if (error instanceof KPartyError) throw error;
      if ((error as NodeJS.ErrnoException).code === "ENOENT")
        throw new KPartyError("not_found", `no model ${id}`);
      throw error;
    }
  }

  async #updateFiles(id: string, round: number): Promise<string[]> {
    try {
      return (await readdir(this.#roundDir(id, round))).filter((f) => f.endsWith(".json")).sort();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw error;
    }
  }

  /** Metadata of one model; throws `not_found`. */
  async get(id: string): Promise<ModelInfo> {
    const info = await this.#stored(id);
    return { ...info, updates: (await this.#updateFiles(id, info.openRound)).length };
  }

  /** Metadata of every model. */
  async list(): Promise<ModelInfo[]> {
    let entries: string[];
    try {
      entries = await readdir(this.#dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw error;
    }
    const infos: ModelInfo[] = [];
    for (const id of entries.sort()) {
      if (!MODEL_ID.test(id)) continue;
      try {
        infos.push(await this.get(id));
      } catch (error) {
        if (!(error instanceof KPartyError && error.code === "not_found")) throw error;
      }
    }
    return infos;
  }

  /** The current global weights as a stream of little-endian float32 bytes. */
  async openWeights(id: string): Promise<{ info: ModelInfo; size: number; stream: ReadStream }> {
    const info = await this.get(id);
    const file = join(this.#modelDir(id), `v${info.version}.f32`);
    const { size } = await stat(file);
    return { info, size, stream: createReadStream(file) };
  }

  /**
   * Accepts one participant's update for the open round: exactly `parameterCount` float32
   * values, all finite, streamed to disk as they arrive (never buffered whole), claiming
   * 1 to the model's `maxSamplesPerUpdate` samples. One update per participant and round.
   * Errors: `not_found`; `conflict` (another round is open, or this participant already
   * submitted); `payload_too_large` (more bytes than the model has); `invalid_update`
   * (too few bytes, a value that is not finite, a sample count that is not a positive
   * integer or exceeds the model's cap).
   */
  async submitUpdate(
    id: string,
    args: { round: number; participant: string; sampleCount: number; body: Readable },
  ): Promise<UpdateReceipt> {
    const { round, participant, sampleCount, body } = args;
    if (!Number.isSafeInteger(sampleCount) || sampleCount < 1) {
      throw new KPartyError("invalid_update", "the sample count must be a positive integer");
    }
    const info = await this.#stored(id);
    if (sampleCount > info.maxSamplesPerUpdate) {
      throw new KPartyError(
        "invalid_update",
        `the sample count ${sampleCount} exceeds this model's cap of ${info.maxSamplesPerUpdate} per update`,
        { details: { field: "x-kparty-sample-count", maxSamplesPerUpdate: info.maxSamplesPerUpdate } },
      );
    }
    checkOpenRound(info, round);
    const dir = this.#roundDir(id, round);
    const name = participantFile(participant);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (await exists(join(dir, `${name}.json`))) {
      throw new KPartyError("conflict", `this participant already submitted an update for round ${round}`);
    }
    const tmp = join(dir, `${name}.${randomBytes(4).toString("hex")}.tmp`);
    const bytes = await receiveUpdate(tmp, body, info);
    const receipt: Omit<UpdateReceipt, "receivedAt"> = { model: id, round, participant, sampleCount, bytes };
    return this.#locked(id, () => this.#commitUpdate(tmp, join(dir, name), receipt));
  }

  /**
   * Keeps a received update (its temporary file `tmp`) as `<base>.f32` with its receipt in
   * `<base>.json` — unless its round closed meanwhile or the participant's marker appeared
   * (`conflict`; the file is removed). Runs under the model's lock.
   */
  async #commitUpdate(
    tmp: string,
    base: string,
    received: Omit<UpdateReceipt, "receivedAt">,
  ): Promise<UpdateReceipt> {
    const { model, round } = received;
    const current = await this.#stored(model);
    if (current.openRound !== round) {
      await rm(tmp, { force: true });
      throw new KPartyError("conflict", `round ${round} closed while the update was uploading`);
    }
    const receipt: UpdateReceipt = { ...received, receivedAt: new Date().toISOString() };
    let marker: FileHandle;
    try {
      marker = await open(`${base}.json`, "wx", 0o600); // one update per participant, atomically
    } catch (error) {
      await rm(tmp, { force: true });
      if ((error as NodeJS.ErrnoException).code === "EEXIST") {
        throw new KPartyError("conflict", `this participant already submitted an update for round ${round}`);
      }
      throw error;
    }
    await rename(tmp, `${base}.f32`);
    await marker.writeFile(JSON.stringify(receipt));
    await marker.sync();
    await marker.close();
    return receipt;
  }

  /**
   * Closes the open round: the round's updates are aggregated under the model's rule
   * (sample-weighted FedAvg by default; coordinate-wise median or trimmed mean; each
   * optionally with per-update L2 clipping of the delta from the current weights) into
   * version `round + 1`; the next round opens.
   * Errors: `not_found`; `conflict` (not the open round, or no update received).
   */
  async closeRound(id: string, round: number): Promise<RoundResult> {
    return this.#locked(id, async () => {
      const info = await this.#stored(id);
      checkOpenRound(info, round);
      const dir = this.#roundDir(id, round);
      const receipts = await Promise.all(
        (await this.#updateFiles(id, round)).map(
          async (f) => JSON.parse(await readFile(join(dir, f), "utf8")) as UpdateReceipt,
        ),
      );
      if (receipts.length === 0)
        throw new KPartyError("conflict", `round ${round} has no updates to aggregate`);
      const samples = receipts.reduce((sum, r) => sum + r.sampleCount, 0);
      const version = info.version + 1;
      const { clipped } = await aggregateFiles({
        inputs: receipts.map((r) => ({
          file: join(dir, `${participantFile(r.participant)}.f32`),
          samples: r.sampleCount,
        })),
        current: join(this.#modelDir(id), `v${info.version}.f32`),
        parameterCount: info.parameterCount,
        out: join(this.#modelDir(id), `v${version}.f32`),
        aggregation: info.aggregation,
      });
      const next: StoredInfo = { ...storedPart(info), version, updatedAt: new Date().toISOString() };
      await writeFileAtomic(join(this.#modelDir(id), "model.json"), `${JSON.stringify(next, null, 2)}\n`);
      return { ...derive(next), updates: 0, aggregated: receipts.length, samples, clipped };
    });
  }
}
