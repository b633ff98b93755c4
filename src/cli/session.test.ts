import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorCodeOf } from "../../test/fixtures/errors.ts";
import { loadSession, type Session, sessionFile } from "./session.ts";

let dir: string;
const session: Session = {
  gateway: "http://127.0.0.1:8080",
  accessToken: "a.b.c",
  tokenType: "Bearer",
  expiresAt: "2026-12-06T12:05:00.000Z",
  credentialExpiresAt: "2026-12-06T12:10:00.000Z",
  scope: "model:read",
  holder: "did:ethr:0x7a69:0xabc",
  credentialId: `0x${"11".repeat(32)}`,
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "kparty-session-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("the saved session", () => {
  it("is used until its expiry; then token_invalid, or credential_expired once the credential has ended", async () => {
    await writeFile(sessionFile(dir), JSON.stringify(session));
    expect(await loadSession(dir, Date.parse("2026-12-06T12:04:59.999Z"))).toEqual(session);
    expect(await errorCodeOf(loadSession(dir, Date.parse(session.expiresAt)))).toBe("token_invalid");
    expect(await errorCodeOf(loadSession(dir, Date.parse(session.credentialExpiresAt)))).toBe(
      "credential_expired",
    );
  });

  it("a token capped at its credential ends as credential_expired", async () => {
    const capped = { ...session, expiresAt: session.credentialExpiresAt };
    await writeFile(sessionFile(dir), JSON.stringify(capped));
    expect(await errorCodeOf(loadSession(dir, Date.parse(capped.expiresAt)))).toBe("credential_expired");
  });
});
