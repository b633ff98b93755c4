import { mkdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { KPartyError } from "../errors/index.ts";
import { writeFileAtomic } from "../util/atomic-file.ts";

/** An access token kept for the model commands (the data dir's `session.json`, mode 0600). */
export interface Session {
  gateway: string;
  accessToken: string;
  /** The `token_type` the gateway answered: "DPoP" (bound to the session's key) or "Bearer". */
  tokenType: string;
  /** The JWK thumbprint of the session's DPoP key (`session-key.json`), for a DPoP token. */
  dpopJkt?: string;
  /**
   * When the token ends (ISO 8601): the gateway's `expires_in`, capped at the credential's and
   * the presentation's expiry, counted from the whole second the request was sent — never
   * later than the gateway's own `exp` on the same clock.
   */
  expiresAt: string;
  /** The presented credential's `exp` (ISO 8601): no token of it lives longer. */
  credentialExpiresAt: string;
  scope: string;
  holder: string;
  credentialId: string;
}

export function sessionFile(dataDir: string): string {
  return join(dataDir, "session.json");
}

/**
 * The saved session; `token_invalid` when there is none or it has expired, `credential_expired`
 * when it ended because the credential behind it did.
 */
export async function loadSession(dataDir: string, now = Date.now()): Promise<Session> {
  let session: Session;
  try {
    session = JSON.parse(await readFile(sessionFile(dataDir), "utf8")) as Session;
  } catch (cause) {
    throw new KPartyError("token_invalid", `no access token in ${dataDir}`, { cause });
  }
  if (typeof session.accessToken === "string" && Date.parse(session.credentialExpiresAt) <= now) {
    throw new KPartyError(
      "credential_expired",
      `the credential behind the access token in ${dataDir} expired at ${session.credentialExpiresAt}`,
    );
  }
  if (typeof session.accessToken !== "string" || !(Date.parse(session.expiresAt) > now)) {
    throw new KPartyError("token_invalid", `the access token in ${dataDir} has expired`);
  }
  return session;
}

/**
 * Saves a session (mode 0600, its folder 0700) after `saveKey`: a session is never saved
 * without the key its token is bound to. Returns the file.
 */
export async function saveSession(
  dataDir: string,
  session: Session,
  saveKey: () => Promise<void>,
): Promise<string> {
  const file = sessionFile(dataDir);
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  await saveKey();
  await writeFileAtomic(file, JSON.stringify(session), 0o600);
  return file;
}
