import { randomBytes } from "node:crypto";
import { type FileHandle, open, rename, rm } from "node:fs/promises";

/** The new content: bytes or text, or a function that writes it to the (temporary) file. */
export type AtomicContent = string | Uint8Array | ((handle: FileHandle) => Promise<void>);

const pending = new Map<string, Promise<void>>();

async function writeOnce(file: string, data: AtomicContent, mode: number): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    const handle = await open(tmp, "w", mode);
    try {
      if (typeof data === "function") await data(handle);
      else await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
}

/**
 * Writes `data` to `file` so that a crash leaves either the old or the new content:
 * write a sibling temp file, fsync it, rename it over the target. Writes to one file from
 * this process happen one at a time in call order, so an older snapshot never replaces a
 * newer one. `data` may be a function that streams the content into the temp file.
 */
export function writeFileAtomic(file: string, data: AtomicContent, mode = 0o600): Promise<void> {
  const previous = pending.get(file) ?? Promise.resolve();
  const next = previous.catch(() => undefined).then(() => writeOnce(file, data, mode));
  pending.set(file, next);
  void next
    .finally(() => {
      if (pending.get(file) === next) pending.delete(file);
    })
    .catch(() => undefined);
  return next;
}
