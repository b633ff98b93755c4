import { Writable } from "node:stream";
import { CommanderError } from "commander";
import { describe, expect, it } from "vitest";
import {
  CHAIN_ERROR_CODES,
  CLI_ERROR_CODES,
  KPartyError,
  type KPartyErrorCode,
  SERVICE_ERROR_CODES,
} from "../errors/index.ts";
import { EXIT, exitCodeOf, Output, reportOf, table } from "./output.ts";

function sink(isTTY = false) {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  }) as Writable & { isTTY?: boolean };
  stream.isTTY = isTTY;
  return { stream, text: () => chunks.join("") };
}

describe("CLI output", () => {
  it("every error code has an exit code; only internal is 1", () => {
    const codes: KPartyErrorCode[] = [...SERVICE_ERROR_CODES, ...CHAIN_ERROR_CODES, ...CLI_ERROR_CODES];
    const one = codes.filter((c) => exitCodeOf(c) === EXIT.internal);
    expect(one).toEqual(["internal"]);
    expect(exitCodeOf("revoked")).toBe(8);
    expect(exitCodeOf("registry_unavailable")).toBe(6);
    expect(exitCodeOf("wrong_passphrase")).toBe(4);
    expect(exitCodeOf("conflict")).toBe(10);
    expect(exitCodeOf("data_dir_in_use")).toBe(3);
  });

  it("reports errors in one line with code and hint; details.hint wins; commander errors are usage", () => {
    expect(reportOf(new KPartyError("revoked", "the credential has been revoked\nsecond line"))).toEqual({
      code: "revoked",
      message: "the credential has been revoked",
      exitCode: 8,
    });
    expect(reportOf(new KPartyError("not_found", "x", { details: { hint: "look elsewhere" } })).hint).toBe(
      "look elsewhere",
    );
    expect(reportOf(new CommanderError(1, "commander.unknownOption", "error: unknown option '--x'"))).toEqual(
      {
        code: "invalid_argument",
        message: "unknown option '--x'",
        hint: "see `kparty <command> --help`",
        exitCode: 2,
      },
    );
    expect(reportOf(new Error("boom"))).toEqual({ code: "internal", message: "boom", exitCode: 1 });
  });

  it("never prints the credentials, path or query of a URL, not even in a --debug stack", () => {
    const url = "https://alice:s3cr3t-pass@node.example/v3/abcdef0123456789secret?key=k3y";
    const error = new KPartyError("registry_unavailable", `read state: chain unavailable at ${url}`, {
      cause: new Error(`server response 500 (info={ "requestUrl": "${url}" })`),
    });
    expect(reportOf(error).message).toBe(
      "read state: chain unavailable at https://***@node.example/v3/***?key=***",
    );
    const out = sink();
    const err = sink();
    new Output({ json: true, debug: true, stdout: out.stream, stderr: err.stream }).error(error);
    expect(err.text()).toContain('caused by: Error: server response 500 (info={ "requestUrl": "https://***@');
    for (const secret of ["s3cr3t-pass", "abcdef0123456789secret", "k3y", "alice"]) {
      expect(out.text() + err.text()).not.toContain(secret);
    }
  });

  it("--json: the result is one JSON line on stdout, errors also as JSON; human text on stderr", () => {
    const out = sink();
    const err = sink();
    const o = new Output({ json: true, debug: false, stdout: out.stream, stderr: err.stream });
    o.info("working");
    o.result({ a: 1 }, "human");
    expect(o.error(new KPartyError("not_found", "gone"))).toBe(5);
    expect(out.text()).toBe('{"a":1}\n{"error":{"code":"not_found","message":"gone","exitCode":5}}\n');
    expect(err.text()).toBe("working\nkparty: not_found: gone\n");
  });

  it("--debug adds the stack and causes; without it there is none", () => {
    const err = sink();
    const o = new Output({ json: false, debug: true, stdout: sink().stream, stderr: err.stream });
    o.error(new KPartyError("internal", "outer", { cause: new Error("inner") }));
    expect(err.text()).toMatch(
      /^kparty: internal: outer\nKPartyError: outer\n {4}at .*caused by: Error: inner\n {4}at /s,
    );
  });

  it("progress is drawn on a terminal only", () => {
    const plain = sink(false);
    const p1 = new Output({ json: false, debug: false, stderr: plain.stream }).progress("issuing", 4);
    p1.tick(2);
    p1.done();
    expect(plain.text()).toBe("");
    const tty = sink(true);
    const p2 = new Output({ json: false, debug: false, stderr: tty.stream }).progress("issuing", 4);
    p2.tick(2);
    p2.tick(2);
    p2.tick(4);
    expect(tty.text()).toBe("\rissuing 0/4 (0%)\rissuing 2/4 (50%)\rissuing 4/4 (100%)");
  });

  it("table aligns columns", () => {
    expect(
      table([
        ["a", "bb", "c"],
        ["ccc", "d", "e"],
      ]),
    ).toEqual(["a    bb  c", "ccc  d   e"]);
  });
});
