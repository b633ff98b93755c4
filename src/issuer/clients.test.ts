import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KPartyError } from "../errors/index.ts";
import { IssuerClientStore } from "./clients.ts";

let dir: string;
let file: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "kparty-clients-"));
  file = join(dir, "issuer-clients.json");
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const codeOf = async (p: Promise<unknown> | (() => unknown)) => {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (error) {
    return error instanceof KPartyError ? error.code : String(error);
  }
  return "resolved";
};

describe("IssuerClientStore", () => {
  it("authenticates the key it handed out, and nothing else", async () => {
    const store = new IssuerClientStore(file);
    const { client, apiKey } = await store.add("portal", new Date("2026-12-06T20:00:00Z"));
    expect(apiKey).toMatch(/^kpi_[0-9a-f]{12}\.[A-Za-z0-9_-]{43}$/);
    expect(store.authenticate(`Bearer ${apiKey}`)).toEqual(client);
    const wrongSecret = `${apiKey.slice(0, -1)}${apiKey.endsWith("A") ? "B" : "A"}`;
    for (const header of [
      undefined,
      "",
      apiKey,
      `Basic ${apiKey}`,
      `Bearer ${wrongSecret}`,
      `Bearer ${apiKey} x`,
    ]) {
      expect(store.authenticate(header)).toBeNull();
    }
  });

  it("keeps only a hash of the secret, in a file of mode 0600", async () => {
    const store = new IssuerClientStore(file);
    const { apiKey } = await store.add("portal");
    const text = await readFile(file, "utf8");
    expect(text).not.toContain(apiKey.split(".")[1]);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it("stops a removed key at once, also in another process's store", async () => {
    const serving = new IssuerClientStore(file);
    const { apiKey } = await serving.add("portal");
    const cli = new IssuerClientStore(file);
    expect(cli.list().map((c) => c.name)).toEqual(["portal"]);
    await cli.remove("portal");
    expect(serving.authenticate(`Bearer ${apiKey}`)).toBeNull();
    expect(await codeOf(cli.remove("portal"))).toBe("not_found");
  });

  it("refuses a duplicate or invalid name, and a file that is not a list of clients", async () => {
    const store = new IssuerClientStore(file);
    await store.add("portal");
    expect(await codeOf(store.add("portal"))).toBe("conflict");
    expect(await codeOf(store.add("a/b"))).toBe("invalid_argument");
    expect(await codeOf(store.add(""))).toBe("invalid_argument");
    await writeFile(file, JSON.stringify({ clients: [{ id: "x", name: "y" }] }));
    expect(await codeOf(() => new IssuerClientStore(file))).toBe("config_invalid");
    await writeFile(file, "{");
    expect(await codeOf(() => new IssuerClientStore(file))).toBe("config_invalid");
  });

  it("denies every key when the file turns unreadable under a running service", async () => {
    const store = new IssuerClientStore(file);
    const { apiKey } = await store.add("portal");
    await writeFile(file, "not json");
    expect(store.authenticate(`Bearer ${apiKey}`)).toBeNull();
  });
});
