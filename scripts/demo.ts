/**
 * `npm run demo [-- --json]`: the whole K-th Party flow on a real local chain.
 * Starts `hardhat node` on 127.0.0.1, deploys, forms a two-member consortium, issues a
 * K-th Party token to a participant, lets the participant fetch a shared model through the
 * gateway, revokes the token and shows the participant being refused. Everything it
 * starts is stopped at the end, on error and on Ctrl-C.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createKPartyAgent } from "../agent/index.ts";
import { createChainClient, createProvider } from "../src/chain/index.ts";
import { bootstrapConsortium, createParticipant, startHardhatNode } from "../src/devnet/index.ts";
import { buildGateway, openGatewayDatabase } from "../src/gateway/index.ts";
import { FileModelStore } from "../src/models/index.ts";

const json = process.argv.includes("--json");
const out = json ? process.stderr : process.stdout;
const say = (text: string) => out.write(`${text}\n`);
const step = (n: number, text: string) => say(`\n[${n}] ${text}`);
const detail = (text: string) => say(`    ${text}`);

const cleanups: (() => Promise<unknown>)[] = [];
let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch {
        // keep stopping the rest
      }
    }
  })();
  return cleaning;
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    say(`\n${signal}: stopping the chain and the gateway…`);
    void cleanup().then(() => process.exit(130));
  });
}

async function main() {
  const started = Date.now();
  const passphrase = "demo passphrase (never use in production)";
  const workDir = await mkdtemp(join(tmpdir(), "kparty-demo-"));
  cleanups.push(() => rm(workDir, { recursive: true, force: true }));

  step(1, "Starting a local EVM chain (hardhat node on 127.0.0.1)…");
  const node = await startHardhatNode();
  cleanups.push(() => node.stop());
  const provider = createProvider(node.url, node.chainId);
  cleanups.push(async () => provider.destroy());
  detail(`JSON-RPC at ${node.url}, chain id ${node.chainId}`);

  step(2, "Two organisations form a consortium. Each one's Veramo agent creates a did:ethr;");
  detail("the contracts are deployed with both as founding members (quorum 2).");
  const funder = await provider.getSigner(0);
  const { deployment, members } = await bootstrapConsortium({
    provider,
    funder,
    dataDir: join(workDir, "members"),
    passphrase,
    members: ["Org A Hospital", "Org B Lab"],
    quorum: 2,
  });
  for (const m of members) cleanups.push(() => m.handle.close());
  const [orgA, orgB] = members as [(typeof members)[0], (typeof members)[0]];
  for (const [name, address] of Object.entries(deployment.contracts)) detail(`${name.padEnd(20)} ${address}`);
  detail(`${orgA.name}: ${orgA.did}`);
  detail(`${orgB.name}: ${orgB.did}`);

  step(3, "A participant (a training agent) creates its own did:ethr with its holder agent.");
  const participant = await createParticipant({
    provider,
    deployment,
    dataDir: join(workDir, "participant"),
    passphrase,
  });
  cleanups.push(() => participant.handle.close());
  detail(participant.did);

  step(4, "The gateway starts: it verifies presentations against the chain and guards the model store.");
  const models = new FileModelStore(join(workDir, "models"));
  const weights = new Float32Array(785 * 10).map((_, i) => Math.sin(i) / 100);
  await models.register({
    id: "mnist-logreg",
    description: "MNIST logistic regression",
    shape: [785, 10],
    weights,
  });
  const verifierAgent = await createKPartyAgent({ role: "verifier", chain: { provider, deployment } });
  const chain = createChainClient({ provider, deployment });
  const db = openGatewayDatabase(join(workDir, "gateway", "gateway.sqlite"));
  cleanups.push(async () => db.close());
  const domain = "gateway.kparty.local";
  const app = await buildGateway({ agent: verifierAgent.agent, chain, models, db, domain });
  cleanups.push(() => app.close());
  const base = await app.listen({ host: "127.0.0.1", port: 0 });
  detail(`listening on ${base} (domain ${domain}); model mnist-logreg v1 registered`);

  step(5, `${orgA.name} issues a K-th Party token to the participant and anchors it on chain.`);
  const issued = await orgA.handle.agent.kpartyIssueCredential({
    issuer: orgA.did,
    subject: participant.did,
    role: "participant",
    models: ["mnist-logreg"],
    actions: ["model:read", "model:contribute"],
    quota: { requestsPerMinute: 600 },
  });
  detail(`credential id ${issued.credentialId}`);
  detail(`anchored in block ${issued.anchor.blockNumber}, status index ${issued.statusIndex}`);

  const post = (path: string, body: unknown) =>
    fetch(`${base}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  async function present(): Promise<{ status: number; body: Record<string, unknown> }> {
    const challenge = (await (await post("/auth/challenge", {})).json()) as {
      challenge: string;
      domain: string;
    };
    const vp = await participant.handle.agent.kpartyCreatePresentation({
      holder: participant.did,
      credentials: [issued.jwt],
      challenge: challenge.challenge,
      domain: challenge.domain,
    });
    const response = await post("/auth/token", { presentation: vp, scope: "model:read" });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  step(
    6,
    "The participant asks for a challenge, signs a presentation of its token, and gets an access token.",
  );
  const granted = await present();
  if (granted.status !== 200)
    throw new Error(`expected a token, got ${granted.status} ${JSON.stringify(granted.body)}`);
  const token = granted.body.access_token as string;
  detail(`200 OK: scope "${granted.body.scope}", expires in ${granted.body.expires_in} s`);

  step(7, "With the access token, the participant downloads the global model's weights.");
  const download = await fetch(`${base}/models/mnist-logreg/weights`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const bytes = new Uint8Array(await download.arrayBuffer());
  if (download.status !== 200) throw new Error(`weights download failed with ${download.status}`);
  detail(
    `${download.status}: ${bytes.length} bytes, version ${download.headers.get("x-kparty-model-version")}`,
  );

  step(8, `${orgA.name} revokes the token on chain (final).`);
  const revocation = await orgA.handle.agent.kpartyRevokeCredential({ credentialId: issued.credentialId });
  detail(`revoked in block ${revocation.blockNumber}`);

  step(
    9,
    "The same participant tries again: the live access token and a fresh presentation are both refused.",
  );
  const refusedDownload = await fetch(`${base}/models/mnist-logreg/weights`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const refusedBody = (await refusedDownload.json()) as { error: { code: string; message: string } };
  detail(
    `weights with the old token: ${refusedDownload.status} ${refusedBody.error.code} (${refusedBody.error.message})`,
  );
  const refused = await present();
  const refusedCode = (refused.body.error as { code: string }).code;
  detail(`new presentation: ${refused.status} ${refusedCode}`);
  if (refusedDownload.status !== 403 || refusedBody.error.code !== "revoked" || refusedCode !== "revoked") {
    throw new Error("the revoked credential was not refused");
  }

  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  say(`\nDone in ${seconds} s. Everything started by the demo is being stopped.`);
  return {
    chainId: deployment.chainId,
    contracts: deployment.contracts,
    issuer: orgA.did,
    holder: participant.did,
    credentialId: issued.credentialId,
    before: { granted: true, status: granted.status, weightsBytes: bytes.length },
    after: {
      granted: false,
      code: refusedBody.error.code,
      status: refusedDownload.status,
      presentation: { status: refused.status, code: refusedCode },
    },
    seconds: Number(seconds),
  };
}

try {
  const result = await main();
  await cleanup();
  if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
} catch (error) {
  process.stderr.write(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  await cleanup();
  process.exit(1);
}
