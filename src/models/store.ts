import { createReadStream, type ReadStream } from "node:fs";
import { mkdir, readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { MODEL_ID } from "../credential/index.ts";
import { KPartyError } from "../errors/index.ts";
import { writeFileAtomic } from "../util/atomic-file.ts";

/** Public metadata of a shared model. */
export interface ModelInfo {
  id: string;
  description: string;
  /** Version of the current global weights (1 for the initial weights). */
  version: number;
  /** Shape of the weight tensor; `parameterCount` is its product. */
  shape: number[];
  parameterCount: number;
  dtype: "float32";
  /** The round accepting updates (issue #4 adds federated rounds); equals `version` for now. */
  openRound: number;
  updatedAt: string;
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

/**
 * The shared model store on the local file system: one folder per model with `model.json`
 * (metadata) and one immutable `v<version>.f32` file (little-endian float32) per version.
 * Writes are atomic (temp file, fsync, rename); reads stream from disk.
 *
 * @example
 * ```ts
 * const store = new FileModelStore(".kparty/models");
 * await store.register({ id: "mnist-logreg", description: "…", shape: [785, 10], weights: new Float32Array(7850) });
 * const { info, stream } = await store.openWeights("mnist-logreg");
 * ```
 */
export class FileModelStore {
  readonly #dir: string;

  constructor(dir: string) {
    if (!dir) throw new TypeError("model store directory is required");
    this.#dir = dir;
  }

  #modelDir(id: string): string {
    if (typeof id !== "string" || !MODEL_ID.test(id))
      throw new KPartyError("not_found", `no model ${String(id)}`);
    return join(this.#dir, id);
  }

  /** Registers a model with its initial weights (version 1). */
  async register(args: {
    id: string;
    description: string;
    shape: number[];
    weights: Float32Array;
  }): Promise<ModelInfo> {
    if (!MODEL_ID.test(args.id)) throw new KPartyError("invalid_argument", `invalid model id ${args.id}`);
    if (!args.shape.length || !args.shape.every((d) => Number.isSafeInteger(d) && d > 0)) {
      throw new KPartyError("invalid_argument", "shape must be a list of positive integers");
    }
    const parameterCount = args.shape.reduce((a, b) => a * b, 1);
    if (args.weights.length !== parameterCount) {
      throw new KPartyError(
        "invalid_argument",
        `weights have ${args.weights.length} values, shape needs ${parameterCount}`,
      );
    }
    if (!args.weights.every(Number.isFinite))
      throw new KPartyError("invalid_argument", "weights must be finite");
    const dir = this.#modelDir(args.id);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (await exists(join(dir, "model.json")))
      throw new KPartyError("invalid_argument", `model ${args.id} already exists`);
    const info: ModelInfo = {
      id: args.id,
      description: args.description,
      version: 1,
      shape: [...args.shape],
      parameterCount,
      dtype: "float32",
      openRound: 1,
      updatedAt: new Date().toISOString(),
    };
    const bytes = new Uint8Array(args.weights.buffer, args.weights.byteOffset, args.weights.byteLength);
    await writeFileAtomic(join(dir, "v1.f32"), bytes);
    await writeFileAtomic(join(dir, "model.json"), `${JSON.stringify(info, null, 2)}\n`);
    return info;
  }

  /** Metadata of one model; throws `not_found`. */
  async get(id: string): Promise<ModelInfo> {
    try {
      return JSON.parse(await readFile(join(this.#modelDir(id), "model.json"), "utf8")) as ModelInfo;
    } catch (error) {
      if (error instanceof KPartyError) throw error;
      if ((error as NodeJS.ErrnoException).code === "ENOENT")
        throw new KPartyError("not_found", `no model ${id}`);
      throw error;
    }
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
}
