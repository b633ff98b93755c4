import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IssuedCredential } from "../agent/index.ts";
import { createProvider } from "../src/chain/index.ts";
import { CLIENT_MESSAGES } from "../src/gateway/errors.ts";
import { type FaultyRpc, type RpcFault, startFaultyRpc } from "./fixtures/faulty-rpc.ts";
import { settlePolls, tokenAt, waitForSync } from "./fixtures/http.ts";
import { issue } from "./fixtures/issue.ts";
import {
  createWorld,
  DOMAIN,
  type KPartyWorld,
  MODEL_ID,
  startGateway,
  type TestGateway,
} from "./fixtures/kparty.ts";

/**
 * A gateway whose JSON-RPC URL carries secrets in its userinfo and its path, like a hosted
 * provider's, in front of a node that refuses connections, answers JSON-RPC errors or HTTP 500
 * echoing that URL, or never answers. Every endpoint is asked; no response names the node.
 */

const SECRETS = { user: "alice", password: "s3cr3t-pass", path: "/v3/abcdef0123456789secret" };
const REGISTRY_DOWN = {
  code: "registry_unavailable",
  message: CLIENT_MESSAGES.registry_unavailable,
};

let world: KPartyWorld;
let rpc: FaultyRpc;
let gw: TestGateway;
let cred: IssuedCredential;
let token: string;
const clock = { offsetMs: 0 };
const logLines: string[] = [];

beforeAll(async () => {
  world = await createWorld();
  rpc = await startFaultyRpc(world.chain.url, SECRETS);
  gw = await startGateway({
    chain: world.chain,
    deployment: world.deployment,
    models: world.models,
    dir: join(world.dir, "secret-url-gateway"),
    // bounded by configuration: a node that never answers costs 400 ms per call
    provider: createProvider(rpc.url, 31337, { timeoutMs: 400 }),
    clock,
    operatorLog: { write: (line: string) => logLines.push(line) },
  });
  cred = await issue(world.orgA, world.alice);
  const granted = await tokenAt(gw.base, world.alice, cred.jwt);
  expect(granted.status).toBe(200); // the gateway works through the secret-bearing URL
  token = granted.body.access_token as string;
  await waitForSync(gw.base, cred.anchor.blockNumber);
});
afterAll(async () => {
  await gw?.close();
  await rpc?.close();
  await world?.close();
});

interface Answer {
  what: string;
  status: number;
  text: string;
  headers: string;
}

async function ask(what: string, path: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(`${gw.base}${path}`, init);
  const headers = [...res.headers.entries()].map(([k, v]) => `${k}: ${v}`).join("\n");
  return { what, status: res.status, text: await res.text(), headers };
}

const post = (body: unknown): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});

/** Every public endpoint, and a protected one with a live token. */
async function askEverything(): Promise<Answer[]> {
  const answers = [
    await ask("healthz", "/healthz"),
    await ask("well-known", "/.well-known/kparty"),
    await ask("challenge", "/auth/challenge", post({})),
  ];
  const { challenge } = JSON.parse(answers[2]?.text ?? "{}") as { challenge: string };
  const vp = await world.alice.handle.agent.kpartyCreatePresentation({
    holder: world.alice.did,
    credentials: [cred.jwt],
    challenge,
    domain: DOMAIN,
  });
  answers.push(
    await ask("token", "/auth/token", post({ presentation: vp })),
    await ask("credentials/verify", "/credentials/verify", post({ verifiableCredential: cred.jwt })),
    await ask("presentations/verify", "/presentations/verify", post({ verifiablePresentation: vp })),
    await ask("models", "/models", { headers: { authorization: `Bearer ${token}` } }),
    await ask("model", `/models/${MODEL_ID}`, { headers: { authorization: `Bearer ${token}` } }),
  );
  return answers;
}

/** What no client may ever see of the node. */
function forbidden(): string[] {
  return [
    SECRETS.password,
    "abcdef0123456789secret",
    `${SECRETS.user}:`,
    `127.0.0.1:${rpc.port}`,
    `:${rpc.port}`,
    "ECONNREFUSED",
    "requestUrl",
    "responseBody",
    "request timeout",
    "coalesce",
    "no upstream",
    "at async",
  ];
}

describe.each<[RpcFault, string]>([
  ["refuse", `connect ECONNREFUSED 127.0.0.1:`],
  ["rpc-error", "(the node said: no upstream for /v3/*** (http://***@127.0.0.1:"],
  ["http-500", "server response 500 Internal Server Error"],
  ["hang", "request timeout"],
])("the node fails (%s)", (fault, cause) => {
  it("every endpoint answers with its exact status and code, and no body or header names the node", async () => {
    await rpc.set(fault);
    await settlePolls();
    // past every freshness bound: each request that needs the chain has to read it
    clock.offsetMs += 20_000;
    const linesBefore = logLines.length;
    const answers = await askEverything();

    const outcome = answers.map((a) => {
      const body = JSON.parse(a.text) as { error?: { code: string; message: string }; status?: string };
      return [a.what, a.status, body.error ? { code: body.error.code, message: body.error.message } : null];
    });
    expect(outcome).toEqual([
      ["healthz", 503, REGISTRY_DOWN],
      ["well-known", 200, null],
      ["challenge", 200, null],
      ["token", 503, REGISTRY_DOWN],
      ["credentials/verify", 503, REGISTRY_DOWN],
      ["presentations/verify", 503, REGISTRY_DOWN],
      ["models", 503, REGISTRY_DOWN],
      ["model", 503, REGISTRY_DOWN],
    ]);
    expect(JSON.parse(answers[0]?.text ?? "{}")).toEqual({
      status: "unavailable",
      chainId: 31337,
      blockNumber: null,
      syncedBlock: expect.any(Number),
      error: REGISTRY_DOWN,
    });
    // a refusal tells the client when to retry (a health probe needs no such hint)
    for (const a of answers.filter((x) => x.status === 503 && x.what !== "healthz"))
      expect(a.headers).toContain("retry-after: 5");
    const leaks = answers.flatMap((a) =>
      forbidden()
        .filter((f) => a.text.includes(f) || a.headers.includes(f))
        .map((f) => `${a.what}: ${f}`),
    );
    expect(leaks).toEqual([]);

    // the operator learns why, without the URL's secrets: one line per route
    const lines = logLines.slice(linesBefore).join("");
    const routes = [...lines.matchAll(/^kparty gateway: (\S+ \S+): (\S+):/gm)].map((m) => `${m[1]} ${m[2]}`);
    expect(routes.sort()).toEqual(
      [
        "GET /healthz",
        "POST /auth/token",
        "POST /credentials/verify",
        "POST /presentations/verify",
        "GET /models",
        "GET /models/:id",
      ]
        .map((r) => `${r} registry_unavailable`)
        .sort(),
    );
    expect(lines).toContain(cause);
    expect(lines).not.toContain(SECRETS.password);
    expect(lines).not.toContain("abcdef0123456789secret");
    expect(lines).not.toContain(`${SECRETS.user}:`);
  });
});

describe("the node answers again", () => {
  it("the gateway serves without a restart", async () => {
    await rpc.set("none");
    const health = await ask("healthz", "/healthz");
    expect([health.status, (JSON.parse(health.text) as { status: string }).status]).toEqual([200, "ok"]);
    const models = await ask("models", "/models", { headers: { authorization: `Bearer ${token}` } });
    expect(models.status).toBe(200);
  });
});
