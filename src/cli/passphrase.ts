import { KPartyError } from "../errors/index.ts";

/**
 * The passphrase that unlocks a data dir's keys: `KPARTY_PASSPHRASE`, or typed at a prompt
 * (not echoed) when stdin is a terminal; asked twice when the keys are about to be created.
 * Throws `passphrase_required` when neither is possible. The passphrase is never printed.
 */
export async function readPassphrase(options: {
  env?: NodeJS.ProcessEnv;
  input?: NodeJS.ReadStream;
  output?: NodeJS.WritableStream;
  label: string;
  confirm: boolean;
}): Promise<string> {
  const fromEnv = (options.env ?? process.env).KPARTY_PASSPHRASE;
  if (fromEnv) return checked(fromEnv, "KPARTY_PASSPHRASE");
  const input = options.input ?? process.stdin;
  const output = options.output ?? process.stderr;
  if (!input.isTTY) {
    throw new KPartyError("passphrase_required", `no passphrase for ${options.label}`);
  }
  const first = await prompt(input, output, `Passphrase for ${options.label}: `);
  checked(first, "the passphrase");
  if (options.confirm && (await prompt(input, output, "Repeat the passphrase: ")) !== first) {
    throw new KPartyError("passphrase_required", "the two passphrases differ");
  }
  return first;
}

/** The keyring's rule (at least 8 characters), as a CLI error rather than a TypeError. */
function checked(passphrase: string, what: string): string {
  if (passphrase.length < MIN_LENGTH) {
    throw new KPartyError("passphrase_required", `${what} must have at least ${MIN_LENGTH} characters`);
  }
  return passphrase;
}

const MIN_LENGTH = 8;

function prompt(input: NodeJS.ReadStream, output: NodeJS.WritableStream, question: string): Promise<string> {
  output.write(question);
  return new Promise((resolve, reject) => {
    let typed = "";
    input.setRawMode(true);
    input.resume();
    const finish = (error?: Error) => {
      input.off("data", onData);
      input.setRawMode(false);
      input.pause();
      output.write("\n");
      if (error) reject(error);
      else resolve(typed);
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString("utf8")) {
        if (ch === "\r" || ch === "\n") return finish();
        if (ch === "\u0003") return finish(new KPartyError("passphrase_required", "interrupted"));
        if (ch === "\u007f" || ch === "\b") typed = typed.slice(0, -1);
        else if (ch >= " ") typed += ch;
      }
    };
    input.on("data", onData);
  });
}
