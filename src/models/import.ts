import { readdir, readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import { MODEL_ID } from "../credential/index.ts";
import { KPartyError } from "../errors/index.ts";
import type { ModelMetadataStore, ModelRecord, ModelUpdateRecord } from "../state/port.ts";
import { DEFAULT_MAX_SAMPLES_PER_UPDATE } from "./aggregation.ts";

/** What a `model.json` renamed after its import is called (kept for the operator, never read again). */
export const IMPORTED_SUFFIX = ".imported";

function missing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ENOTDIR";
}

/** A `model.json` as a record: defaults for files from before caps and rules, derived fields dropped. */
function recordOf(stored: Record<string, unknown>): ModelRecord {
  const { parameterCount: _count, openRound: _round, updates: _updates, ...rest } = stored;
  return {
    maxSamplesPerUpdate: DEFAULT_MAX_SAMPLES_PER_UPDATE,
    aggregation: { rule: "fedavg" },
    ...rest,
  } as ModelRecord;
}

/** The receipts `<participant>.json` of a round's directory, with the `.f32` next to each, by file name. */
async function legacyUpdates(roundDir: string): Promise<ModelUpdateRecord[]> {
  let files: string[];
  try {
    files = (await readdir(roundDir)).filter((f) => f.endsWith(".json")).sort();
  } catch (error) {
    if (missing(error)) return [];
    throw error;
  }
  const updates: ModelUpdateRecord[] = [];
  for (const f of files) {
    const r = JSON.parse(await readFile(join(roundDir, f), "utf8")) as Omit<ModelUpdateRecord, "blob">;
    updates.push({ ...r, blob: `${f.slice(0, -".json".length)}.f32` });
  }
  return updates;
}

/**
 * Imports the metadata a model store kept in files before it moved to the state backend: for
 * each `<id>/model.json` in `dir`, the model and the receipts of its open round
 * (`rounds/<version>/<participant>.json`, whose `.f32` files stay where they are) are added in
 * one transaction unless the backend has the model already, and the file is then renamed
 * `model.json.imported` so that it is imported once. Receipts of closed rounds are history the
 * store never read again, and are left as they are. Returns the ids imported.
 */
export async function importLegacyModels(dir: string, metadata: ModelMetadataStore): Promise<string[]> {
  let entries: string[];
  try {
    entries = (await readdir(dir)).sort();
  } catch (error) {
    if (missing(error)) return [];
    throw error;
  }
  const imported: string[] = [];
  for (const id of entries) {
    if (!MODEL_ID.test(id)) continue;
    const file = join(dir, id, "model.json");
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (error) {
      if (missing(error)) continue;
      throw error;
    }
    let model: ModelRecord;
    let updates: ModelUpdateRecord[];
    try {
      model = { ...recordOf(JSON.parse(text) as Record<string, unknown>), id };
      updates = await legacyUpdates(join(dir, id, "rounds", String(model.version)));
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      throw new KPartyError(
        "config_invalid",
        `cannot import the model metadata in ${file} (or its receipts): ${error.message}; repair the file or move the model's directory out of the model store`,
      );
    }
    if (await metadata.importModel(model, updates)) imported.push(id);
    // imported now or by another replica before: the file is not read again
    await rename(file, `${file}${IMPORTED_SUFFIX}`).catch((error) => {
      if (!missing(error)) throw error;
    });
  }
  return imported;
}
