import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { KPartyError } from "../errors/index.ts";
import { writeFileAtomic } from "../util/atomic-file.ts";

/** One client allowed to call a member's issuer service; only a hash of its key is kept. */
export interface IssuerClient {
  id: string;
  name: string;
  createdAt: string;
  /** SHA-256 of the key's secret part, hex. */
  secretHash: string;
}

/** What `add` returns: the client, and its API key, shown once and never stored. */
export interface NewClient {
  client: Omit<IssuerClient, "secretHash">;
  apiKey: string;
}

const KEY = /^kpi_([0-9a-f]{12})\.([A-Za-z0-9_-]{43})$/;
const NAME = /^[\w .@-]{1,64}$/;

const digest = (secret: string) => createHash("sha256").update(secret).digest("hex");

/**
 * The API keys of an issuer service's clients, in one JSON file of the member's data dir
 * (mode 0600). A key is `kpi_<id>.<secret>` (256 random bits); the file keeps only the
 * secret's SHA-256, so reading it grants nothing. Every change is written atomically.
 *
 * @example
 * ```ts
 * const clients = new IssuerClientStore(join(dataDir, "issuer-clients.json"));
 * const { apiKey } = await clients.add("training-portal"); // give it to the client once
 * clients.authenticate(`Bearer ${apiKey}`); // → the client, or null
 * ```
 */
export class IssuerClientStore {
  readonly #file: string;
  #clients: IssuerClient[] = [];
  /** The file's text when it was last parsed (null: no file). */
  #text: string | null | undefined;

  constructor(file: string) {
    this.#file = file;
    this.#refresh();
  }

  /**
   * Re-reads the file, and parses it when another process (`kparty issuer clients add|remove`)
   * changed it. The file is small and read whole: timestamps are too coarse to tell two quick
   * changes apart.
   */
  #refresh(): void {
    let text: string | null;
    try {
      text = readFileSync(this.#file, "utf8");
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== "ENOENT") {
        throw new KPartyError("config_invalid", `issuer clients file ${this.#file} cannot be read`, {
          cause,
        });
      }
      text = null;
    }
    if (text === this.#text) return;
    this.#clients = text === null ? [] : IssuerClientStore.#parse(this.#file, text);
    this.#text = text;
  }

  static #parse(file: string, text: string): IssuerClient[] {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (cause) {
      throw new KPartyError("config_invalid", `issuer clients file ${file} is not valid JSON`, { cause });
    }
    const clients = (parsed as { clients?: unknown })?.clients;
    const valid = (c: unknown): c is IssuerClient => {
      const r = c as Record<string, unknown>;
      return (
        typeof r?.id === "string" &&
        /^[0-9a-f]{12}$/.test(r.id) &&
        typeof r.name === "string" &&
        typeof r.createdAt === "string" &&
        typeof r.secretHash === "string" &&
        /^[0-9a-f]{64}$/.test(r.secretHash)
      );
    };
    if (!Array.isArray(clients) || !clients.every(valid)) {
      throw new KPartyError("config_invalid", `issuer clients file ${file} is not a list of clients`);
    }
    return clients;
  }

  async #save(clients: IssuerClient[]): Promise<void> {
    const text = `${JSON.stringify({ clients }, null, 2)}\n`;
    await writeFileAtomic(this.#file, text, 0o600);
    this.#clients = clients;
    this.#text = text;
  }

  /** Adds a client named `name` and returns its API key, which is not kept anywhere. */
  async add(name: string, now = new Date()): Promise<NewClient> {
    this.#refresh();
    if (typeof name !== "string" || !NAME.test(name)) {
      throw new KPartyError("invalid_argument", "a client name is 1-64 letters, digits, spaces or . _ @ -");
    }
    if (this.#clients.some((c) => c.name === name)) {
      throw new KPartyError("conflict", `a client named ${name} exists already`, {
        details: { hint: "remove it first, or choose another name" },
      });
    }
    const id = randomBytes(6).toString("hex");
    const secret = randomBytes(32).toString("base64url");
    const client = { id, name, createdAt: now.toISOString(), secretHash: digest(secret) };
    await this.#save([...this.#clients, client]);
    return { client: { id, name, createdAt: client.createdAt }, apiKey: `kpi_${id}.${secret}` };
  }

  /** Removes the client with this id or name; `not_found` when there is none. */
  async remove(idOrName: string): Promise<Omit<IssuerClient, "secretHash">> {
    this.#refresh();
    const client = this.#clients.find((c) => c.id === idOrName || c.name === idOrName);
    if (!client) throw new KPartyError("not_found", `no issuer client ${idOrName}`);
    await this.#save(this.#clients.filter((c) => c !== client));
    return { id: client.id, name: client.name, createdAt: client.createdAt };
  }

  list(): Omit<IssuerClient, "secretHash">[] {
    this.#refresh();
    return this.#clients.map(({ id, name, createdAt }) => ({ id, name, createdAt }));
  }

  /** The client an `Authorization: Bearer kpi_…` header names, when its secret matches; else null. */
  authenticate(authorization: string | undefined): Omit<IssuerClient, "secretHash"> | null {
    const match = /^Bearer (\S+)$/.exec(authorization ?? "");
    const parts = match ? KEY.exec(match[1] as string) : null;
    if (!parts) return null;
    const [, id, secret] = parts as unknown as [string, string, string];
    // a key removed by another process stops working at once; a file that cannot be read denies
    try {
      this.#refresh();
    } catch {
      return null;
    }
    const client = this.#clients.find((c) => c.id === id);
    if (!client) return null;
    const ok = timingSafeEqual(Buffer.from(digest(secret), "hex"), Buffer.from(client.secretHash, "hex"));
    return ok ? { id: client.id, name: client.name, createdAt: client.createdAt } : null;
  }
}
