import { createHash, randomBytes } from "node:crypto";
import { createReadStream, type ReadStream } from "node:fs";
import { mkdir, open, readdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { Readable } from "node:stream";
import { MODEL_ID } from "../credential/index.ts";
import { KPartyError } from "../errors/index.ts";
import { sqliteModelMetadata } from "../state/embedded/models.ts";
import type { GatewayState, ModelLock, ModelMetadataStore, ModelUpdateRecord } from "../state/port.ts";
import { syncingWriter, writeFileAtomic } from "../util/atomic-file.ts";
import { type Aggregation, aggregateFiles, parseAggregation, parseMaxSamples } from "./aggregation.ts";
import { importLegacyModels } from "./import.ts";

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

/** What the metadata store holds per model: the rest of {@link ModelInfo} is derived from it (see {@link derive}). */
type StoredInfo = Omit<ModelInfo, "updates" | "parameterCount" | "openRound">;

/** A model's metadata without the count of updates, which is counted in the metadata store. */
type KnownInfo = Omit<ModelInfo, "updates">;

/** The parameter count is the product of the shape; the open round is the current version's. */
function derive(stored: StoredInfo): KnownInfo {
  return { ...stored, parameterCount: stored.shape.reduce((a, b) => a * b, 1), openRound: stored.version };
}

/** The part of `info` that is stored (`model.json` files written before these were derived held them too). */
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

/** What `register` is given. */
export interface Registration {
  id: string;
  description: string;
  shape: number[];
  weights?: Float32Array;
  maxSamplesPerUpdate?: number;
  aggregation?: Aggregation;
}

/** Checks a registration (`invalid_argument`); the record to store and the initial weights. */
function validRegistration(args: Registration): { info: StoredInfo; weights: Float32Array } {
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
  const info: StoredInfo = {
    id: args.id,
    description: args.description,
    version: 1,
    shape: [...args.shape],
    dtype: "float32",
    maxSamplesPerUpdate: parseMaxSamples(args.maxSamplesPerUpdate),
    aggregation: parseAggregation(args.aggregation),
    updatedAt: new Date().toISOString(),
  };
  return { info, weights };
}

/** The model directory's own metadata file, for a store without a state backend (one process). */
export const OWN_METADATA_FILE = ".metadata.sqlite";

/** Opens {@link OWN_METADATA_FILE} in `dir` (a name no model id can take: ids start with a letter or digit). */
async function ownMetadata(dir: string): Promise<{ store: ModelMetadataStore; db: DatabaseSync }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const db = new DatabaseSync(join(dir, OWN_METADATA_FILE));
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;");
  return { store: sqliteModelMetadata(db), db };
}

const roundClosed = (round: number) =>
  new KPartyError("conflict", `round ${round} closed while the update was uploading`);
const alreadySubmitted = (round: number) =>
  new KPartyError("conflict", `this participant already submitted an update for round ${round}`);

/**
 * The shared model store: metadata (models, versions, update receipts) in the state backend's
 * {@link ModelMetadataStore}, weights as files in `dir`. Per model: one immutable
 * `v<version>.f32` (little-endian float32) per version, and `rounds/<round>/<participant>.<random>.f32`
 * per accepted update, named by its receipt row. Files are written atomically (temp file,
 * fsync, rename) and synced every 8 MiB as they are written (see `syncingWriter`); weights
 * stream to and from disk, and aggregation works block by block, so no model is ever held
 * whole in memory.
 *
 * A file is always complete before the row that names it is written: a crash between the two
 * leaves an orphan file (never a row without its file), and the orphans of a round are removed
 * when it closes. One update per participant and round is the metadata store's unique key.
 *
 * Replicas: gateways that share one model store pass `state` (a PostgreSQL backend, whose
 * metadata every replica reads and writes, and whose `modelLock` serialises accepting an
 * update and closing a round of one model across replicas) and put `dir` on a file system
 * they all mount (NFS, a cloud file share). Weights stay files rather than rows because they
 * are streamed (up to 1 GiB a version) and never held whole in memory. Without `state`, the
 * metadata is kept in `dir/.metadata.sqlite` (one process). A `model.json` left by a store
 * that kept its metadata in files is imported once (see `importLegacyModels`).
 *
 * @example
 * ```ts
 * const store = new FileModelStore(".kparty/models", { state });
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
  readonly #given: ModelMetadataStore | null;
  #ready: Promise<ModelMetadataStore> | null = null;
  #db: DatabaseSync | null = null;

  constructor(dir: string, options: { state?: Pick<GatewayState, "modelMetadata" | "modelLock"> } = {}) {
    if (!dir) throw new TypeError("model store directory is required");
    this.#dir = dir;
    this.#given = options.state?.modelMetadata() ?? null;
    this.#lock = options.state?.modelLock() ?? null;
  }

  /** The metadata store, once: opened (without a state backend) and with files of an older store imported. */
  #meta(): Promise<ModelMetadataStore> {
    this.#ready ??= (async () => {
      let store = this.#given;
      if (!store) {
        const own = await ownMetadata(this.#dir);
        this.#db = own.db;
        store = own.store;
      }
      await importLegacyModels(this.#dir, store);
      return store;
    })().catch((error) => {
      this.#ready = null; // tried again at the next call
      throw error;
    });
    return this.#ready;
  }

  /** Closes the model directory's own metadata file, if this store opened one. */
  async close(): Promise<void> {
    await this.#ready?.catch(() => undefined);
    this.#db?.close();
    this.#db = null;
    this.#ready = null;
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
  async register(args: Registration): Promise<ModelInfo> {
    const { info, weights } = validRegistration(args);
    const dir = this.#modelDir(args.id);
    const meta = await this.#meta();
    return this.#locked(args.id, async () => {
      if (await meta.get(args.id)) throw new KPartyError("conflict", `model ${args.id} already exists`);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const bytes = new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength);
      await writeFileAtomic(join(dir, "v1.f32"), bytes); // the weights before the row that names them
      if (!(await meta.insert(info))) throw new KPartyError("conflict", `model ${args.id} already exists`);
      return { ...derive(info), updates: 0 };
    });
  }

  async #stored(id: string): Promise<KnownInfo> {
    this.#modelDir(id); // not_found for an id no model can have
    const stored = await (await this.#meta()).get(id);
    if (!stored) throw new KPartyError("not_found", `no model ${id}`);
    return derive(storedPart(stored));
  }

  /** Metadata of one model; throws `not_found`. */
  async get(id: string): Promise<ModelInfo> {
    const info = await this.#stored(id);
    return { ...info, updates: await (await this.#meta()).countUpdates(id, info.openRound) };
  }

  /** Metadata of every model, by id. */
  async list(): Promise<ModelInfo[]> {
    const meta = await this.#meta();
    const infos: ModelInfo[] = [];
    for (const stored of await meta.list()) {
      const info = derive(storedPart(stored));
      infos.push({ ...info, updates: await meta.countUpdates(info.id, info.openRound) });
    }
    return infos;
  }

  /** The receipts of the updates accepted for `round`, in the order they were accepted. */
  async receipts(id: string, round: number): Promise<UpdateReceipt[]> {
    await this.#stored(id);
    return (await (await this.#meta()).updates(id, round)).map(({ blob: _blob, ...receipt }) => receipt);
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
    const meta = await this.#meta();
    if (await meta.hasUpdate(id, round, participant)) throw alreadySubmitted(round);
    const dir = this.#roundDir(id, round);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const blob = `${participantFile(participant)}.${randomBytes(6).toString("hex")}.f32`;
    const tmp = join(dir, `${blob}.tmp`);
    const bytes = await receiveUpdate(tmp, body, info);
    const receipt: Omit<UpdateReceipt, "receivedAt"> = { model: id, round, participant, sampleCount, bytes };
    return this.#locked(id, () => this.#commitUpdate(meta, tmp, { ...receipt, blob }));
  }

  /**
   * Keeps a received update (its temporary file `tmp`) as its blob, then records its row —
   * unless its round closed meanwhile or the participant's row appeared (`conflict`; the file
   * is removed). Runs under the model's lock.
   */
  async #commitUpdate(
    meta: ModelMetadataStore,
    tmp: string,
    received: Omit<ModelUpdateRecord, "receivedAt">,
  ): Promise<UpdateReceipt> {
    const { model, round, blob } = received;
    const current = await meta.get(model);
    if (current?.version !== round) {
      await rm(tmp, { force: true });
      throw roundClosed(round);
    }
    const file = join(this.#roundDir(model, round), blob);
    await rename(tmp, file); // the file is complete (synced) before the row that names it
    const row: ModelUpdateRecord = { ...received, receivedAt: new Date().toISOString() };
    let outcome: Awaited<ReturnType<ModelMetadataStore["addUpdate"]>>;
    try {
      outcome = await meta.addUpdate(row);
    } catch (error) {
      await rm(file, { force: true });
      throw error;
    }
    if (outcome !== "accepted") {
      await rm(file, { force: true });
      throw outcome === "duplicate" ? alreadySubmitted(round) : roundClosed(round);
    }
    const { blob: _blob, ...receipt } = row;
    return receipt;
  }

  /**
   * Closes the open round: the round's updates are aggregated under the model's rule
   * (sample-weighted FedAvg by default; coordinate-wise median or trimmed mean; each
   * optionally with per-update L2 clipping of the delta from the current weights) into
   * version `round + 1`; the next round opens. Files of the round no receipt names (orphans
   * of a crash, or of an upload cut short) are removed.
   * Errors: `not_found`; `conflict` (not the open round, no update received, or an update
   * accepted while closing — the round stays open; close it again).
   */
  async closeRound(id: string, round: number): Promise<RoundResult> {
    const meta = await this.#meta();
    return this.#locked(id, async () => {
      const info = await this.#stored(id);
      checkOpenRound(info, round);
      const dir = this.#roundDir(id, round);
      const updates = await meta.updates(id, round);
      if (updates.length === 0)
        throw new KPartyError("conflict", `round ${round} has no updates to aggregate`);
      const samples = updates.reduce((sum, r) => sum + r.sampleCount, 0);
      const version = info.version + 1;
      const { clipped } = await aggregateFiles({
        inputs: updates.map((r) => ({ file: join(dir, r.blob), samples: r.sampleCount })),
        current: join(this.#modelDir(id), `v${info.version}.f32`),
        parameterCount: info.parameterCount,
        out: join(this.#modelDir(id), `v${version}.f32`),
        aggregation: info.aggregation,
      });
      const updatedAt = new Date().toISOString();
      if (!(await meta.advance(id, round, updatedAt, updates.length)))
        throw await notAdvanced(meta, id, round);
      await removeOrphans(dir, new Set(updates.map((r) => r.blob)));
      const next: StoredInfo = { ...storedPart(info), version, updatedAt };
      return { ...derive(next), updates: 0, aggregated: updates.length, samples, clipped };
    });
  }
}

/**
 * Why the round did not advance: another closer closed it, or it accepted an update after its
 * updates were read (possible only if the model lock was lost, e.g. its connection dropped).
 * The second is a `conflict` to retry rather than a second aggregation here: the round is still
 * open with every accepted update, the next close aggregates them all, and the new version's
 * file this attempt wrote is named by no row (the retry writes it again).
 */
async function notAdvanced(meta: ModelMetadataStore, id: string, round: number): Promise<KPartyError> {
  if ((await meta.get(id))?.version !== round)
    return new KPartyError("conflict", `round ${round} was closed meanwhile`);
  return new KPartyError(
    "conflict",
    `round ${round} received updates while it was closing; it is still open: close it again`,
  );
}

/** Removes the update files (and temporary files) of a closed round that no receipt names. */
async function removeOrphans(dir: string, named: Set<string>): Promise<void> {
  for (const f of await readdir(dir).catch(() => [] as string[])) {
    if ((f.endsWith(".f32") || f.endsWith(".tmp")) && !named.has(f)) await rm(join(dir, f), { force: true });
  }
}
