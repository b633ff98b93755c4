import { describe, expect, it } from "vitest";
import { KPartyError } from "../errors/index.ts";
import { secretsOfUrl } from "../util/redact.ts";
import { createOperatorLog } from "./operator-log.ts";

const RPC_URL = "http://alice:s3cr3t-pass@127.0.0.1:8545/v3/abcdef0123456789secret";

function capture(quietMs?: number) {
  const lines: string[] = [];
  const clock = { t: 1_000_000 };
  const log = createOperatorLog({
    stream: { write: (line: string) => lines.push(line) },
    secrets: secretsOfUrl(RPC_URL),
    now: () => clock.t,
    ...(quietMs !== undefined ? { quietMs } : {}),
  });
  return { lines, clock, log };
}

const nodeError = () => {
  const ethers = Object.assign(
    new Error(
      `server response 500 (info={ "requestUrl": "${RPC_URL}", "responseBody": "no route /v3/abcdef0123456789secret" }, code=SERVER_ERROR)`,
    ),
    { code: "SERVER_ERROR" },
  );
  return new KPartyError("registry_unavailable", "read credential state: chain unavailable", {
    cause: ethers,
  });
};

describe("the operator log", () => {
  it("writes the route, the code and the causes, with the RPC URL's secrets redacted", () => {
    const { lines, log } = capture();
    log.failure("POST /credentials/verify", nodeError());
    expect(lines).toEqual([
      'kparty gateway: POST /credentials/verify: registry_unavailable: read credential state: chain unavailable <- server response 500 (info={ "requestUrl": "http://***@127.0.0.1:8545/v3/***", "responseBody": "no route /v3/***" }, code=SERVER_ERROR)\n',
    ]);
  });

  it("writes one line per route and code per quiet window, then says how many it left out", () => {
    const { lines, clock, log } = capture(10_000);
    log.failure("GET /healthz", nodeError());
    log.failure("GET /healthz", nodeError());
    log.failure("GET /healthz", nodeError());
    log.failure("GET /models", nodeError()); // another route: its own line
    clock.t += 10_000;
    log.failure("GET /healthz", nodeError());
    expect(lines.map((l) => l.split(": registry_unavailable")[0])).toEqual([
      "kparty gateway: GET /healthz",
      "kparty gateway: GET /models",
      "kparty gateway: GET /healthz",
    ]);
    expect(lines[2]).toMatch(/ \(2 more since the last line\)\n$/);
  });

  it("adds the stack of an unexpected error, redacted too", () => {
    const { lines, log } = capture();
    const bug = new TypeError(`cannot read x of ${RPC_URL}`);
    log.failure("GET /models/:id", bug);
    const [line = ""] = lines;
    expect(line.split("\n")[0]).toBe(
      "kparty gateway: GET /models/:id: internal: cannot read x of http://***@127.0.0.1:8545/v3/***",
    );
    expect(line).toContain("TypeError: cannot read x of http://***@127.0.0.1:8545/v3/***\n    at ");
    expect(line).not.toContain("s3cr3t-pass");
  });

  it("redacts notes as well", () => {
    const { lines, log } = capture();
    log.note(`audit log sync failed (EIO) while the node was ${RPC_URL}`);
    expect(lines).toEqual([
      "kparty gateway: audit log sync failed (EIO) while the node was http://***@127.0.0.1:8545/v3/***\n",
    ]);
  });
});
