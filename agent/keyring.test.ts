import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { KPartyError } from "../src/errors/index.ts";
import { writeLegacyKeyring } from "../test/fixtures/legacy-keyring.ts";
import { KEYRING_KDF, openKeyring } from "./keyring.ts";

// Every scrypt call of the keyring is recorded, and a write can be cut short as a crash before
// the rename would leave it (the temporary file written in full, the keyring not replaced).
const hooks = vi.hoisted(() => ({
  scryptCalls: [] as { N: number; r: number; p: number; maxmem: number }[],
  crashBeforeRename: false,
}));
vi.mock("node:crypto", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:crypto")>();
  return {
    ...real,
    scrypt: (...args: Parameters<typeof real.scrypt>) => {
      hooks.scryptCalls.push(args[3] as (typeof hooks.scryptCalls)[number]);
      return (real.scrypt as (...a: unknown[]) => void)(...args);
    },
  };
});
vi.mock("../src/util/atomic-file.ts", async (importOriginal) => {
  const real = await importOriginal<typeof import("../src/util/atomic-file.ts")>();
  return {
    ...real,
    writeFileAtomic: async (file: string, data: string, mode?: number) => {
      if (!hooks.crashBeforeRename) return real.writeFileAtomic(file, data, mode);
      await writeFile(`${file}.crashed.tmp`, data, { mode });
      throw new Error("simulated crash between writing the new keyring and renaming it");
    },
  };
});

const PASSPHRASE = "correct horse battery staple";
let dir: string;
let n = 0;
const nextFile = () => join(dir, `keyring-${++n}.json`);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "kparty-keyring-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => {
  hooks.scryptCalls.length = 0;
  hooks.crashBeforeRename = false;
});

async function failure(
  promise: Promise<unknown>,
): Promise<{ code: string; field?: unknown; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (!(error instanceof KPartyError)) throw error;
    return {
      code: error.code,
      message: error.shortMessage,
      ...(error.details.field === undefined ? {} : { field: error.details.field }),
    };
  }
  throw new Error("no error");
}

const json = async (file: string) => JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;

describe("new keyrings", () => {
  it("wrap a random key with scrypt N = 2^17, r = 8, p = 1 (maxmem 256 MiB) and AES-256-GCM, mode 0600", async () => {
    const file = nextFile();
    const key = await openKeyring(file, PASSPHRASE);
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(KEYRING_KDF).toEqual({ N: 131072, r: 8, p: 1 });
    expect(hooks.scryptCalls).toEqual([{ N: 131072, r: 8, p: 1, maxmem: 268435456 }]);
    const record = await json(file);
    expect(Object.keys(record)).toEqual([
      "version",
      "kdf",
      "N",
      "r",
      "p",
      "salt",
      "cipher",
      "nonce",
      "wrappedKey",
      "tag",
    ]);
    expect(record).toMatchObject({ version: 2, kdf: "scrypt", N: 131072, r: 8, p: 1, cipher: "aes-256-gcm" });
    expect(record.salt).toMatch(/^[0-9a-f]{32}$/);
    expect(record.nonce).toMatch(/^[0-9a-f]{24}$/);
    expect(record.wrappedKey).toMatch(/^[0-9a-f]{64}$/);
    expect(record.wrappedKey).not.toBe(key);
    expect(record.tag).toMatch(/^[0-9a-f]{32}$/);
    const text = await readFile(file, "utf8");
    expect(text).not.toContain(key);
    expect(text).not.toContain(PASSPHRASE);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    // unlocking again gives the same key and leaves the file as it was
    expect(await openKeyring(file, PASSPHRASE)).toBe(key);
    expect(await readFile(file, "utf8")).toBe(text);
  });

  it("refuse another passphrase: wrong_passphrase, and the file is left as it was", async () => {
    const file = nextFile();
    await openKeyring(file, PASSPHRASE);
    const before = await readFile(file, "utf8");
    expect(await failure(openKeyring(file, "another passphrase"))).toEqual({
      code: "wrong_passphrase",
      message: "the passphrase does not unlock this agent's keys",
    });
    expect(await readFile(file, "utf8")).toBe(before);
  });

  it("refuse a wrapped key whose bytes were changed: wrong_passphrase", async () => {
    const file = nextFile();
    await openKeyring(file, PASSPHRASE);
    const record = await json(file);
    const wrapped = record.wrappedKey as string;
    record.wrappedKey = `${wrapped[0] === "0" ? "1" : "0"}${wrapped.slice(1)}`;
    await writeFile(file, JSON.stringify(record));
    expect((await failure(openKeyring(file, PASSPHRASE))).code).toBe("wrong_passphrase");
  });
});

describe("the kdf option (test fixtures only)", () => {
  it("writes N = 2^15 when asked, and an unlock without the option raises the keyring to N = 2^17, same key", async () => {
    const file = nextFile();
    const key = await openKeyring(file, PASSPHRASE, { kdf: { N: 2 ** 15, r: 8, p: 1 } });
    expect(await json(file)).toMatchObject({ version: 2, N: 32768, r: 8, p: 1 });
    const text = await readFile(file, "utf8");
    expect(await openKeyring(file, PASSPHRASE, { kdf: { N: 2 ** 15, r: 8, p: 1 } })).toBe(key);
    expect(await readFile(file, "utf8")).toBe(text);
    expect(await openKeyring(file, PASSPHRASE)).toBe(key);
    expect(await json(file)).toMatchObject({ version: 2, N: 131072, r: 8, p: 1 });
    // and never lowers a keyring again
    const raised = await readFile(file, "utf8");
    expect(await openKeyring(file, PASSPHRASE, { kdf: { N: 2 ** 15, r: 8, p: 1 } })).toBe(key);
    expect(await readFile(file, "utf8")).toBe(raised);
  });

  it("refuses parameters outside the bounds: TypeError, before reading the file", async () => {
    const file = nextFile();
    await expect(openKeyring(file, PASSPHRASE, { kdf: { N: 2 ** 14, r: 8, p: 1 } })).rejects.toThrow(
      new TypeError("keyring kdf: N must be a power of two within [2^15, 2^20], not 16384"),
    );
    await expect(openKeyring(file, PASSPHRASE, { kdf: { N: 3 * 2 ** 15, r: 8, p: 1 } })).rejects.toThrow(
      new TypeError("keyring kdf: N must be a power of two within [2^15, 2^20], not 98304"),
    );
    await expect(openKeyring(file, PASSPHRASE, { kdf: { N: 2 ** 17, r: 8, p: 0 } })).rejects.toThrow(
      new TypeError("keyring kdf: p must be an integer within [1, 4], not 0"),
    );
    expect(hooks.scryptCalls).toEqual([]);
    expect((await readdir(dir)).includes(file.slice(dir.length + 1))).toBe(false);
  });
});

describe("a keyring written with older parameters", () => {
  it("unlocks (format 1, N = 2^15) to the same key and is re-encrypted with N = 2^17 at that unlock", async () => {
    const file = nextFile();
    const legacyKey = await writeLegacyKeyring(file, PASSPHRASE);
    const legacy = await json(file);
    expect(await openKeyring(file, PASSPHRASE)).toBe(legacyKey);
    // the old derivation, then the new wrap
    expect(hooks.scryptCalls).toEqual([
      { N: 32768, r: 8, p: 1, maxmem: 67108864 },
      { N: 131072, r: 8, p: 1, maxmem: 268435456 },
    ]);
    const upgraded = await json(file);
    expect(upgraded).toMatchObject({ version: 2, N: 131072, r: 8, p: 1 });
    expect(upgraded.salt).not.toBe(legacy.salt);
    expect(JSON.stringify(upgraded)).not.toContain(legacyKey);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await readdir(dir)).filter((f) => f.startsWith(file.slice(dir.length + 1)))).toEqual([
      file.slice(dir.length + 1),
    ]);
    // the next unlock runs scrypt once, with the new parameters, and rewrites nothing
    hooks.scryptCalls.length = 0;
    const text = await readFile(file, "utf8");
    expect(await openKeyring(file, PASSPHRASE)).toBe(legacyKey);
    expect(hooks.scryptCalls).toEqual([{ N: 131072, r: 8, p: 1, maxmem: 268435456 }]);
    expect(await readFile(file, "utf8")).toBe(text);
  });

  it("is re-encrypted from format 1 even with N = 2^17 already", async () => {
    const file = nextFile();
    const legacyKey = await writeLegacyKeyring(file, PASSPHRASE, { N: 2 ** 17, r: 8, p: 1 });
    expect(await openKeyring(file, PASSPHRASE)).toBe(legacyKey);
    expect(await json(file)).toMatchObject({ version: 2, N: 131072 });
  });

  it("is left as it was when the passphrase is wrong: wrong_passphrase", async () => {
    const file = nextFile();
    await writeLegacyKeyring(file, PASSPHRASE);
    const before = await readFile(file, "utf8");
    expect((await failure(openKeyring(file, "another passphrase"))).code).toBe("wrong_passphrase");
    expect(hooks.scryptCalls).toEqual([{ N: 32768, r: 8, p: 1, maxmem: 67108864 }]);
    expect(await readFile(file, "utf8")).toBe(before);
  });

  it("keeps its key when the re-encryption is interrupted before the rename, and is re-encrypted at the next unlock", async () => {
    const file = nextFile();
    const legacyKey = await writeLegacyKeyring(file, PASSPHRASE);
    const before = await readFile(file, "utf8");
    hooks.crashBeforeRename = true;
    await expect(openKeyring(file, PASSPHRASE)).rejects.toThrow(
      "simulated crash between writing the new keyring and renaming it",
    );
    hooks.crashBeforeRename = false;
    // the old file is intact, and the new one (never renamed) wraps the same key
    expect(await readFile(file, "utf8")).toBe(before);
    const written = `${file}.crashed.tmp`;
    expect(await json(written)).toMatchObject({ version: 2, N: 131072 });
    expect(await openKeyring(written, PASSPHRASE)).toBe(legacyKey);
    expect(await openKeyring(file, PASSPHRASE)).toBe(legacyKey);
    expect(await json(file)).toMatchObject({ version: 2, N: 131072 });
  });
});

describe("parameters read from disk are bounded before scrypt runs", () => {
  // one valid keyring of each format, edited per case
  const templates = new Map<1 | 2, string>();
  async function refusal(edit: (record: Record<string, unknown>) => void, format: 1 | 2 = 2) {
    if (!templates.has(format)) {
      const template = nextFile();
      if (format === 1) await writeLegacyKeyring(template, PASSPHRASE);
      else await openKeyring(template, PASSPHRASE);
      templates.set(format, await readFile(template, "utf8"));
    }
    const file = nextFile();
    const record = JSON.parse(templates.get(format) as string) as Record<string, unknown>;
    edit(record);
    await writeFile(file, JSON.stringify(record));
    hooks.scryptCalls.length = 0;
    const result = await failure(openKeyring(file, PASSPHRASE));
    expect(hooks.scryptCalls).toEqual([]);
    return { ...result, message: result.message.replace(`keyring ${file}: `, "") };
  }

  it.each([
    ["N = 2^40", { N: 2 ** 40 }, "N", "N must be a power of two within [2^15, 2^20], not 1099511627776"],
    ["N = 2^21", { N: 2 ** 21 }, "N", "N must be a power of two within [2^15, 2^20], not 2097152"],
    ["N = 2^14", { N: 2 ** 14 }, "N", "N must be a power of two within [2^15, 2^20], not 16384"],
    ["N = 1", { N: 1 }, "N", "N must be a power of two within [2^15, 2^20], not 1"],
    [
      "N not a power of two",
      { N: 3 * 2 ** 15 },
      "N",
      "N must be a power of two within [2^15, 2^20], not 98304",
    ],
    ["N a string", { N: "131072" }, "N", 'N must be a power of two within [2^15, 2^20], not "131072"'],
    ["r = 1e9", { r: 1e9 }, "r", "r must be an integer within [8, 16], not 1000000000"],
    ["r = 7", { r: 7 }, "r", "r must be an integer within [8, 16], not 7"],
    ["r = 8.5", { r: 8.5 }, "r", "r must be an integer within [8, 16], not 8.5"],
    ["p = 0", { p: 0 }, "p", "p must be an integer within [1, 4], not 0"],
    ["p = 5", { p: 5 }, "p", "p must be an integer within [1, 4], not 5"],
    [
      "N = 2^20 with r = 16 (2 GiB)",
      { N: 2 ** 20, r: 16 },
      "r",
      "N = 1048576 with r = 16 needs more than 1 GiB (128 · N · r bytes)",
    ],
    ["a 15-byte salt", { salt: "ab".repeat(15) }, "salt", "salt must be 16 bytes as 32 hex digits"],
    ["a 17-byte salt", { salt: "ab".repeat(17) }, "salt", "salt must be 16 bytes as 32 hex digits"],
    ["a salt that is not hex", { salt: "zz".repeat(16) }, "salt", "salt must be 16 bytes as 32 hex digits"],
    ["an 11-byte nonce", { nonce: "ab".repeat(11) }, "nonce", "nonce must be 12 bytes as 24 hex digits"],
    [
      "a 31-byte wrapped key",
      { wrappedKey: "ab".repeat(31) },
      "wrappedKey",
      "wrappedKey must be 32 bytes as 64 hex digits",
    ],
    ["a 12-byte tag", { tag: "ab".repeat(12) }, "tag", "tag must be 16 bytes as 32 hex digits"],
    [
      "another cipher",
      { cipher: "aes-128-gcm" },
      "cipher",
      'cipher must be "aes-256-gcm", not "aes-128-gcm"',
    ],
    ["another kdf", { kdf: "argon2id" }, "kdf", 'kdf must be "scrypt", not "argon2id"'],
    ["an unknown version", { version: 3 }, "version", "has an unknown version 3"],
    ["an unknown field", { maxmem: 1 }, "maxmem", 'has an unknown field "maxmem"'],
  ])("refuses %s: config_invalid", async (_name, change, field, message) => {
    expect(await refusal((record) => Object.assign(record, change))).toEqual({
      code: "config_invalid",
      field,
      message,
    });
  });

  it("refuses the same bounds in format 1 (N = 2^40, a 15-byte salt, a short check): config_invalid", async () => {
    expect(await refusal((record) => Object.assign(record, { N: 2 ** 40 }), 1)).toMatchObject({
      code: "config_invalid",
      field: "N",
    });
    expect(await refusal((record) => Object.assign(record, { salt: "ab".repeat(15) }), 1)).toMatchObject({
      code: "config_invalid",
      field: "salt",
    });
    expect(await refusal((record) => Object.assign(record, { check: "ab".repeat(31) }), 1)).toEqual({
      code: "config_invalid",
      field: "check",
      message: "check must be 32 bytes as 64 hex digits",
    });
  });

  it("refuses a file that is not a JSON object: config_invalid", async () => {
    for (const text of ["not json", "[1, 2]", "null", '"keyring"']) {
      const file = nextFile();
      await writeFile(file, text);
      expect((await failure(openKeyring(file, PASSPHRASE))).code).toBe("config_invalid");
    }
    expect(hooks.scryptCalls).toEqual([]);
  });

  it("accepts the edges: N = 2^15 with r = 16 and p = 4 (format 1), re-encrypted with the current parameters", async () => {
    const file = nextFile();
    const legacyKey = await writeLegacyKeyring(file, PASSPHRASE, { N: 2 ** 15, r: 16, p: 4 });
    expect(await openKeyring(file, PASSPHRASE)).toBe(legacyKey);
    expect(hooks.scryptCalls[0]).toEqual({ N: 32768, r: 16, p: 4, maxmem: 134217728 });
    expect(await json(file)).toMatchObject({ version: 2, N: 131072, r: 8, p: 1 });
  });
});
