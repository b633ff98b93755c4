import { randomBytes } from "node:crypto";
import { type FileHandle, open, rename, rm } from "node:fs/promises";

/** Appends bytes to a file being written (see {@link syncingWriter}). */
export type Write = (bytes: Uint8Array) => Promise<void>;

/** The new content: bytes or text, or a function that streams it into the (temporary) file. */
export type AtomicContent = string | Uint8Array | ((write: Write) => Promise<void>);

/** Data written to a file between two syncs of it, at most (see {@link syncingWriter}). */
export const SYNC_EVERY_BYTES = 8 * 1024 * 1024;

/**
 * Appends to `handle`, syncing the file's data each time another {@link SYNC_EVERY_BYTES} have
 * been written, so that no sync, the caller's last one included, has more than that to flush.
 * Syncs run on libuv's thread pool, where the gateway also checks signatures: syncs of whole
 * large files, as when participants upload their updates at the end of a round, would hold its
 * threads, and every check queued behind them, for as long as the disk takes to write the files
 * (docs/performance.md: four 128 MiB uploads at once beside signature checks on 2 pool threads,
 * checks p99 92-106 ms with one sync per file, 13-16 ms with one every 8 MiB).
 */
export function syncingWriter(handle: FileHandle): Write {
  let unsynced = 0;
  return async (bytes) => {
    for (let off = 0; off < bytes.length; ) {
      const part = bytes.subarray(off, off + SYNC_EVERY_BYTES - unsynced);
      const { bytesWritten } = await handle.write(part);
      if (bytesWritten === 0) throw new Error("write() wrote nothing");
      off += bytesWritten;
      unsynced += bytesWritten;
      if (unsynced >= SYNC_EVERY_BYTES) {
        await handle.datasync();
        unsynced = 0;
      }
    }
  };
}

const pending = new Map<string, Promise<void>>();

async function writeOnce(file: string, data: AtomicContent, mode: number): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    const handle = await open(tmp, "w", mode);
    try {
      const write = syncingWriter(handle);
      if (typeof data === "function") await data(write);
      else await write(typeof data === "string" ? Buffer.from(data) : data);
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
 * newer one. `data` may be a function that streams the content into the temp file. A large file
 * is synced as it is written, every {@link SYNC_EVERY_BYTES}.
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
