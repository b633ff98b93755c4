import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IssuedRecord } from "../../agent/index.ts";
import { KPartyError } from "../errors/index.ts";
import { bundleOfRecord, credentialIdArg, readBundle } from "./bundle.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "kparty-bundle-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** What a function throws, as code and message. */
function refusal(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (error) {
    if (error instanceof KPartyError) return { code: error.code, message: error.shortMessage };
    throw error;
  }
  throw new Error("nothing thrown");
}

const record: IssuedRecord = {
  credentialId: `0x${"ab".repeat(32)}`,
  issuer: "did:ethr:0x7a69:0x00000000000000000000000000000000000000a1",
  issuerAccount: "0x00000000000000000000000000000000000000a1",
  subject: "did:ethr:0x7a69:0x00000000000000000000000000000000000000b2",
  statusIndex: 7,
  jwt: "a.b.c",
  issuedAt: "2026-12-06T12:00:00.000Z",
  anchoredBlock: null,
  anchorTx: null,
  anchorRoot: null,
  anchorProof: [],
};

describe("credential bundles", () => {
  it("a credential id argument is 0x + 64 hex (lower-cased), else the id in a bundle file", async () => {
    expect(credentialIdArg(`0x${"AB".repeat(32)}`)).toBe(`0x${"ab".repeat(32)}`);
    expect(refusal(() => credentialIdArg("0x1234"))).toEqual({
      code: "invalid_argument",
      message: "not a credential id (0x + 64 hex): 0x1234",
    });
    const file = join(dir, "broken.json");
    await writeFile(file, "{");
    expect(refusal(() => credentialIdArg(file))).toEqual({
      code: "invalid_argument",
      message: `credential file ${file}: not valid JSON`,
    });
    await writeFile(file, JSON.stringify({ type: "something-else" }));
    expect(refusal(() => readBundle(file))).toEqual({
      code: "invalid_argument",
      message: `credential file ${file} is not a kparty credential bundle`,
    });
  });

  it("a record becomes a bundle only once anchored (not_anchored before), its issuer account checksummed", () => {
    expect(refusal(() => bundleOfRecord(record))).toEqual({
      code: "not_anchored",
      message: `${record.credentialId} is signed but not anchored yet`,
    });
    const tx = `0x${"cd".repeat(32)}`;
    expect(bundleOfRecord({ ...record, anchoredBlock: 12, anchorTx: tx })).toEqual({
      type: "kparty-credential",
      credentialId: record.credentialId,
      issuer: record.issuer,
      issuerAccount: "0x00000000000000000000000000000000000000A1",
      subject: record.subject,
      statusIndex: 7,
      jwt: "a.b.c",
      anchor: { blockNumber: 12, transactionHash: tx, root: null, proof: [] },
    });
  });
});
