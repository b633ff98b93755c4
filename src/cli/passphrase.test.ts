import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { isKPartyError } from "../errors/index.ts";
import { readPassphrase } from "./passphrase.ts";

/** A fake terminal: stdin that types `keys` once raw mode is on. */
function terminal(keys: string[]) {
  const input = new PassThrough() as PassThrough & {
    isTTY: boolean;
    setRawMode(on: boolean): void;
    raw: boolean[];
  };
  input.isTTY = true;
  input.raw = [];
  input.setRawMode = (on: boolean) => {
    input.raw.push(on);
    if (on) setImmediate(() => input.write(keys.shift() ?? ""));
  };
  const output = new PassThrough();
  let shown = "";
  output.on("data", (d: Buffer) => (shown += d.toString()));
  return { input: input as unknown as NodeJS.ReadStream, output, shown: () => shown, raw: input.raw };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return "no error";
  } catch (error) {
    return isKPartyError(error) ? `${error.code}: ${error.shortMessage}` : String(error);
  }
}

describe("readPassphrase", () => {
  it("takes KPARTY_PASSPHRASE without asking", async () => {
    expect(
      await readPassphrase({ env: { KPARTY_PASSPHRASE: "long enough" }, label: "d", confirm: true }),
    ).toBe("long enough");
  });

  it("refuses a short one and a missing one off a terminal", async () => {
    expect(
      await codeOf(readPassphrase({ env: { KPARTY_PASSPHRASE: "short" }, label: "d", confirm: false })),
    ).toBe("passphrase_required: KPARTY_PASSPHRASE must have at least 8 characters");
    const input = new PassThrough() as unknown as NodeJS.ReadStream;
    expect(await codeOf(readPassphrase({ env: {}, input, label: "/data", confirm: false }))).toBe(
      "passphrase_required: no passphrase for /data",
    );
  });

  it("prompts without echo, handles backspace, and restores the terminal", async () => {
    const t = terminal(["secret-pZ\u007f-phrase\r"]);
    const value = await readPassphrase({
      env: {},
      input: t.input,
      output: t.output,
      label: "/data",
      confirm: false,
    });
    expect(value).toBe("secret-p-phrase");
    expect(t.shown()).toBe("Passphrase for /data: \n");
    expect(t.raw).toEqual([true, false]);
  });

  it("asks twice for new keys and refuses two different answers; Ctrl-C stops", async () => {
    const same = terminal(["first-pass\r", "first-pass\n"]);
    expect(
      await readPassphrase({ env: {}, input: same.input, output: same.output, label: "d", confirm: true }),
    ).toBe("first-pass");
    const differ = terminal(["first-pass\r", "other-pass\r"]);
    expect(
      await codeOf(
        readPassphrase({ env: {}, input: differ.input, output: differ.output, label: "d", confirm: true }),
      ),
    ).toBe("passphrase_required: the two passphrases differ");
    const interrupted = terminal(["abc\u0003"]);
    expect(
      await codeOf(
        readPassphrase({
          env: {},
          input: interrupted.input,
          output: interrupted.output,
          label: "d",
          confirm: false,
        }),
      ),
    ).toBe("passphrase_required: interrupted");
  });
});
