import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { spyOnDatasync } from "../../test/fixtures/datasync.ts";
import { SYNC_EVERY_BYTES, writeFileAtomic } from "./atomic-file.ts";

/** Bytes whose every 4 KiB differ, so that a part written twice or skipped changes the hash. */
function pattern(length: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let off = 0; off < length; off += 4) bytes.writeUInt32LE(off / 4, off);
  return bytes;
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

describe("writeFileAtomic", () => {
  let dir: string;
  let datasync: Awaited<ReturnType<typeof spyOnDatasync>>;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "kparty-atomic-"));
    datasync = await spyOnDatasync();
  });

  afterEach(async () => {
    datasync.mockRestore();
    await rm(dir, { recursive: true, force: true });
  });

  it("syncs a large file's data every SYNC_EVERY_BYTES as it writes it, and leaves no temp file", async () => {
    const bytes = pattern(2 * SYNC_EVERY_BYTES + 4096);
    await writeFileAtomic(join(dir, "big.f32"), bytes);
    expect(datasync).toHaveBeenCalledTimes(2);
    expect(sha256(await readFile(join(dir, "big.f32")))).toBe(sha256(bytes));
    expect(await readdir(dir)).toEqual(["big.f32"]);
  });

  it("counts streamed parts across calls, splitting a part that crosses the mark", async () => {
    const bytes = pattern(SYNC_EVERY_BYTES * 3);
    const part = 3 * 1024 * 1024; // 8 MiB falls inside the third part, 16 inside the sixth, 24 at the end
    await writeFileAtomic(join(dir, "streamed.f32"), async (write) => {
      for (let off = 0; off < bytes.length; off += part) await write(bytes.subarray(off, off + part));
    });
    expect(datasync).toHaveBeenCalledTimes(3);
    expect(sha256(await readFile(join(dir, "streamed.f32")))).toBe(sha256(bytes));
  });

  it("does not sync a small file's data on its own (one fsync at the end covers it)", async () => {
    await writeFileAtomic(join(dir, "small.json"), '{"a":1}\n');
    expect(datasync).not.toHaveBeenCalled();
    expect(await readFile(join(dir, "small.json"), "utf8")).toBe('{"a":1}\n');
  });

  it("leaves the old content and no temp file when the writer throws", async () => {
    await writeFileAtomic(join(dir, "model.json"), "old\n");
    await expect(
      writeFileAtomic(join(dir, "model.json"), async (write) => {
        await write(Buffer.from("new, half"));
        throw new Error("source failed");
      }),
    ).rejects.toThrow("source failed");
    expect(await readFile(join(dir, "model.json"), "utf8")).toBe("old\n");
    expect(await readdir(dir)).toEqual(["model.json"]);
  });
});
