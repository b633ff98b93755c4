import { open, rename } from "node:fs/promises";

/**
 * Writes `data` to `file` so that a crash leaves either the old or the new content:
 * write a sibling temp file, fsync it, rename it over the target.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  const handle = await open(tmp, "w", mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, file);
}
