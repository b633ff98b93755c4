/**
 * `npm run demo [-- --json]`: the whole K-th Party flow on a real local chain.
 * Starts `hardhat node` on 127.0.0.1, deploys, forms a two-member consortium, issues K-th
 * Party tokens (a batch to three participants, one to a coordinator), runs federated rounds
 * through the gateway (local training, uploads, FedAvg) with held-out accuracy per round — one
 * participant gets in through OpenID4VP 1.0 —
 * then revokes a participant's token and shows her refused. Everything it starts is stopped
 * at the end, on error and on Ctrl-C.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createKPartyAgent, type IssuedCredential } from "../agent/index.ts";
import { createChainClient, createProvider, type Deployment } from "../src/chain/index.ts";
import { answerOid4vpRequest } from "../src/cli/oid4vp.ts";
import { decodeJwt } from "../src/credential/index.ts";
import {
  bootstrapConsortium,
  type ConsortiumMember,
  createParticipant,
  type Participant,
  startHardhatNode,
} from "../src/devnet/index.ts";
import { KPartyError } from "../src/errors/index.ts";
import {
  buildGateway,
  createGatewayClient,
  openGatewayDatabase,
  type TokenResponse,
} from "../src/gateway/index.ts";
import { accuracy, FileModelStore, slice, syntheticDataset, trainLocal } from "../src/models/index.ts";

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

const MODEL = "synthetic-logreg";
const FEATURES = 100;
const ROUNDS = 4;

const PASSPHRASE = "demo passphrase (never use in production)";
const DOMAIN = "gateway.kparty.local";
const HOLDER_NAMES = ["alice", "bob", "carol", "coordinator"];

type GatewayClient = ReturnType<typeof createGatewayClient>;
type Provider = ReturnType<typeof createProvider>;
type Grant = TokenResponse & { expiresAt: string };
type Shard = ReturnType<typeof syntheticDataset>;
type RoundRow = { round: number; accuracy: number; version: number; updates: number; samples: number };

/** Step 1: starts `hardhat node` on 127.0.0.1 and a provider for it, both stopped at cleanup. */
async function startChain(): Promise<{ provider: Provider; chainId: number }> {
  step(1, "Starting a local EVM chain (hardhat node on 127.0.0.1)…");
  const node = await startHardhatNode();
  cleanups.push(() => node.stop());
  const provider = createProvider(node.url, node.chainId);
  cleanups.push(async () => provider.destroy());
  detail(`JSON-RPC at ${node.url}, chain id ${node.chainId}`);
  return { provider, chainId: node.chainId };
}

/** Step 2: two organisations create their did:ethr and deploy the contracts as founders (quorum 2). */
async function formConsortium(provider: Provider, workDir: string) {
  step(2, "Two organisations form a consortium. Each one's Veramo agent creates a did:ethr;");
  detail("the contracts are deployed with both as founding members (quorum 2).");
  const funder = await provider.getSigner(0);
  const { deployment, members } = await bootstrapConsortium({
    provider,
    funder,
    dataDir: join(workDir, "members"),
    passphrase: PASSPHRASE,
    members: ["Org A Hospital", "Org B Lab"],
    quorum: 2,
  });
  for (const m of members) cleanups.push(() => m.handle.close());
  const [orgA, orgB] = members as [ConsortiumMember, ConsortiumMember];
  for (const [name, address] of Object.entries(deployment.contracts)) detail(`${name.padEnd(20)} ${address}`);
  detail(`${orgA.name}: ${orgA.did}`);
  detail(`${orgB.name}: ${orgB.did}`);
  return { deployment, orgA, orgB };
}

/** Step 3: three participants and a coordinator create their own did:ethr. */
async function createHolders(provider: Provider, deployment: Deployment, workDir: string) {
  step(3, "Three training agents (participants) and a coordinator create their own did:ethr.");
  const holders: Participant[] = [];
  for (const name of HOLDER_NAMES) {
    const p = await createParticipant({
      provider,
      deployment,
      dataDir: join(workDir, name),
      passphrase: PASSPHRASE,
    });
    cleanups.push(() => p.handle.close());
    holders.push(p);
    detail(`${name.padEnd(11)} ${p.did}`);
  }
  return holders as [Participant, Participant, Participant, Participant];
}
/** Step 4: starts the gateway on 127.0.0.1 over a file model store and SQLite; returns its base URL. */
async function startGateway(provider: Provider, deployment: Deployment, workDir: string): Promise<string> {
  step(4, "The gateway starts: it verifies presentations against the chain and guards the model store.");
  const models = new FileModelStore(join(workDir, "models"));
  const verifierAgent = await createKPartyAgent({ role: "verifier", chain: { provider, deployment } });
  const chain = createChainClient({ provider, deployment });
  const db = openGatewayDatabase(join(workDir, "gateway", "gateway.sqlite"));
  cleanups.push(async () => db.close());
  // its access-token keys are stored in gateway.sqlite, encrypted under the passphrase
  const app = await buildGateway({
    agent: verifierAgent.agent,
    chain,
    models,
    db,
    domain: DOMAIN,
    tokenKeySecret: PASSPHRASE,
  });
  cleanups.push(() => app.close());
  const base = await app.listen({ host: "127.0.0.1", port: 0 });
  detail(`listening on ${base} (domain ${DOMAIN})`);
  return base;
}

/** Step 5: Org A issues the three participants' tokens in one anchored batch, Org B the coordinator's. */
async function issueTokens(
  orgA: ConsortiumMember,
  orgB: ConsortiumMember,
  participants: Participant[],
  coordinator: Participant,
) {
  step(5, `${orgA.name} issues K-th Party tokens to the three participants in one batch:`);
  detail("one transaction anchors the Merkle root of their ids; each token comes with its inclusion proof.");
  const batch = await orgA.handle.agent.kpartyIssueCredentials({
    issuer: orgA.did,
    credentials: participants.map((p) => ({
      subject: p.did,
      role: "participant" as const,
      models: [MODEL],
      actions: ["model:read" as const, "model:contribute" as const],
      quota: { requestsPerMinute: 600 },
    })),
  });
  detail(`root ${batch[0]?.anchor.root} anchored in block ${batch[0]?.anchor.blockNumber}`);
  const coordinatorCredential = await orgB.handle.agent.kpartyIssueCredential({
    issuer: orgB.did,
    subject: coordinator.did,
    role: "coordinator",
    models: [MODEL],
    actions: ["model:read", "round:aggregate"],
  });
  detail(
    `${orgB.name} issues a coordinator token (anchored in block ${coordinatorCredential.anchor.blockNumber})`,
  );
  return { batch, coordinatorCredential };
}

/** Each holder's own gateway client: its own DPoP key, to which its access token is bound. */
function clientsByHolder(base: string): (holder: Participant) => GatewayClient {
  const clients = new Map<string, GatewayClient>();
  return (holder: Participant) => {
    const known = clients.get(holder.did);
    if (known) return known;
    const client = createGatewayClient(base);
    clients.set(holder.did, client);
    return client;
  };
}

/** Challenge, presentation of the holder's token, access token (with its expiry as an ISO date). */
async function present(
  gw: GatewayClient,
  holder: Participant,
  credential: IssuedCredential,
  scope?: string,
): Promise<Grant> {
  const { challenge } = await gw.challenge();
  const vp = await holder.handle.agent.kpartyCreatePresentation({
    holder: holder.did,
    credentials: [credential.jwt],
    challenge,
    domain: DOMAIN,
    ...(credential.anchor.root ? { anchorProof: credential.anchor.proof } : {}),
  });
  // expires_in counts from the grant, no earlier than the whole second the request was sent
  const sentAt = Math.floor(Date.now() / 1000);
  const token = await gw.token(vp, scope);
  return { ...token, expiresAt: new Date((sentAt + token.expires_in) * 1000).toISOString() };
}

/**
 * OpenID4VP 1.0: Carol's operator opens a request at the gateway, Carol's wallet (her agent)
 * answers it, and the operator collects the access token from the transaction.
 */
async function presentOid4vp(
  base: string,
  gw: GatewayClient,
  holder: Participant,
  credential: IssuedCredential,
  scope: string,
) {
  const opened = (await (
    await fetch(`${base}/oid4vp/requests`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ scope, models: [MODEL] }),
    })
  ).json()) as { transaction_id: string; client_id: string; authorization_request: string };
  await answerOid4vpRequest({
    request: opened.authorization_request,
    credentialJwt: credential.jwt,
    present: ({ nonce, clientId }) =>
      holder.handle.agent.kpartyCreatePresentation({
        holder: holder.did,
        credentials: [credential.jwt],
        challenge: nonce,
        domain: clientId,
        ...(credential.anchor.root ? { anchorProof: credential.anchor.proof } : {}),
      }),
  });
  const sentAt = Math.floor(Date.now() / 1000);
  // collected with Carol's own client, so the token is bound to her DPoP key
  const collected = (await gw.oid4vpTransaction(opened.transaction_id)) as {
    status: string;
  } & TokenResponse;
  if (collected.status !== "granted") throw new Error(`the OID4VP transaction is ${collected.status}`);
  const expiresAt = new Date((sentAt + collected.expires_in) * 1000).toISOString();
  return { ...collected, expiresAt, clientId: opened.client_id };
}

/** Step 6: everyone gets an access token, Carol through OpenID4VP, the others by presentation. */
async function getAccessTokens(
  base: string,
  clientOf: (holder: Participant) => GatewayClient,
  holders: [Participant, Participant, Participant, Participant],
  issued: { batch: IssuedCredential[]; coordinatorCredential: IssuedCredential },
) {
  const [alice, bob, carol, coordinator] = holders;
  const { batch, coordinatorCredential } = issued;
  step(6, "Each one asks for a challenge, signs a presentation of its token, and gets an access token;");
  detail("Carol's wallet answers an OpenID4VP 1.0 request instead (DCQL, direct_post, same verifier).");
  const viaOid4vp = await presentOid4vp(
    base,
    clientOf(carol),
    carol,
    batch[2] as IssuedCredential,
    "model:read model:contribute",
  );
  const tokens: Grant[] = await Promise.all([
    ...[alice, bob].map((p, i) => present(clientOf(p), p, batch[i] as IssuedCredential)),
    viaOid4vp,
    present(clientOf(coordinator), coordinator, coordinatorCredential),
  ]);
  for (const [i, t] of tokens.entries())
    detail(
      `${(HOLDER_NAMES[i] as string).padEnd(11)} scope "${t.scope}", ${t.token_type} token (bound to its own key), expires in ${t.expires_in} s (never after the credential)${i === 2 ? ", via OID4VP" : ""}`,
    );
  detail(`OID4VP client_id ${viaOid4vp.clientId.slice(0, 48)}…`);
  return { tokens, viaOid4vp };
}

/** Step 7: the coordinator registers the model; returns the participants' private shards and the held-out set. */
async function registerModel(coordinatorGw: GatewayClient, coordinatorToken: string) {
  step(7, `The coordinator registers the shared model ${MODEL} (logistic regression, ${FEATURES} features).`);
  await coordinatorGw.register(
    { id: MODEL, description: "federated logistic regression on synthetic data", shape: [FEATURES + 1] },
    coordinatorToken,
  );
  const train = syntheticDataset({ seed: 1, samples: 900, features: FEATURES, flip: 0.02 });
  const heldOut = syntheticDataset({ seed: 2, samples: 1000, features: FEATURES, flip: 0.02 });
  const shards = [slice(train, 0, 450), slice(train, 450, 750), slice(train, 750, 900)];
  detail(
    `private shards: ${shards.map((s) => s.samples).join(", ")} samples; held-out set: ${heldOut.samples}`,
  );
  return { shards, heldOut };
}

/** Step 8: federated rounds (local training, uploads, FedAvg), printing held-out accuracy per round. */
async function runRounds(
  participants: { gw: GatewayClient; token: string; shard: Shard }[],
  coordinator: { gw: GatewayClient; token: string },
  heldOut: Shard,
): Promise<RoundRow[]> {
  step(
    8,
    `${ROUNDS} federated rounds: participants train locally and upload; the coordinator aggregates (FedAvg).`,
  );
  const initial = await coordinator.gw.weights(MODEL, coordinator.token);
  const rounds: RoundRow[] = [];
  say(`    round  version  updates  samples  held-out accuracy`);
  say(
    `    ${"0".padStart(5)}  ${String(initial.version).padStart(7)}  ${"-".padStart(7)}  ${"-".padStart(7)}  ${accuracy(initial.weights, heldOut).toFixed(3).padStart(17)}`,
  );
  for (let round = 1; round <= ROUNDS; round++) {
    await Promise.all(
      participants.map(async ({ gw, token, shard }) => {
        const { weights } = await gw.weights(MODEL, token);
        const local = trainLocal(weights, shard, { epochs: 1, learningRate: 0.5 });
        await gw.submitUpdate(MODEL, { round, sampleCount: shard.samples, weights: local }, token);
      }),
    );
    const closed = await coordinator.gw.closeRound(MODEL, round, coordinator.token);
    const { weights } = await coordinator.gw.weights(MODEL, coordinator.token);
    const acc = Math.round(accuracy(weights, heldOut) * 1000) / 1000;
    rounds.push({
      round,
      accuracy: acc,
      version: closed.version,
      updates: closed.aggregated,
      samples: closed.samples,
    });
    say(
      `    ${String(round).padStart(5)}  ${String(closed.version).padStart(7)}  ${String(closed.aggregated).padStart(7)}  ${String(closed.samples).padStart(7)}  ${acc.toFixed(3).padStart(17)}`,
    );
  }
  return rounds;
}

/** The HTTP status and error code of a gateway call: 200 and null when it succeeds. */
async function refusal(fn: () => Promise<unknown>) {
  try {
    await fn();
    return { status: 200, code: null as string | null };
  } catch (error) {
    if (!(error instanceof KPartyError)) throw error;
    return { status: error.details.status as number, code: error.code as string | null };
  }
}

/** Steps 10 and 11: Org A revokes Alice's token; her live access token and a new presentation must be refused. */
async function revokeAndCheckRefused(
  orgA: ConsortiumMember,
  alice: Participant,
  gw: GatewayClient,
  grant: Grant,
  credential: IssuedCredential,
) {
  step(10, `${orgA.name} revokes Alice's token on chain (final).`);
  const revocation = await orgA.handle.agent.kpartyRevokeCredential({
    credentialId: credential.credentialId,
  });
  const receiptAt = Date.now();
  detail(`revoked in block ${revocation.blockNumber}`);

  step(11, "Alice tries again: her live access token and a fresh presentation are both refused.");
  // The gateway learns of the revocation from the registry's events (polled every 100 ms).
  let live = await refusal(() => gw.weights(MODEL, grant.access_token));
  while (live.code === null && Date.now() - receiptAt < 5_000) {
    await new Promise((r) => setTimeout(r, 5));
    live = await refusal(() => gw.weights(MODEL, grant.access_token));
  }
  const visibleMs = Date.now() - receiptAt;
  detail(
    `weights with the old token: ${live.status} ${live.code} (refused ${visibleMs} ms after the receipt)`,
  );
  const fresh = await refusal(() => present(gw, alice, credential));
  detail(`new presentation: ${fresh.status} ${fresh.code}`);
  if (live.code !== "revoked" || fresh.code !== "revoked")
    throw new Error("the revoked credential was not refused");
  return { live, fresh, visibleMs };
}

/** Runs steps 1 to 11 in order and returns the JSON summary printed with `--json`. */
async function main() {
  const started = Date.now();
  const workDir = await mkdtemp(join(tmpdir(), "kparty-demo-"));
  cleanups.push(() => rm(workDir, { recursive: true, force: true }));

  const { provider } = await startChain();
  const { deployment, orgA, orgB } = await formConsortium(provider, workDir);
  const holders = await createHolders(provider, deployment, workDir);
  const [alice, bob, carol, coordinator] = holders;
  const base = await startGateway(provider, deployment, workDir);
  const issued = await issueTokens(orgA, orgB, [alice, bob, carol], coordinator);
  const { batch } = issued;
  const clientOf = clientsByHolder(base);
  const { tokens, viaOid4vp } = await getAccessTokens(base, clientOf, holders, issued);
  const [aliceGrant, , , coordinatorGrant] = tokens as [Grant, Grant, Grant, Grant];
  const aliceGw = clientOf(alice);
  const coordinatorSide = { gw: clientOf(coordinator), token: coordinatorGrant.access_token };
  const { shards, heldOut } = await registerModel(coordinatorSide.gw, coordinatorSide.token);
  const participants = [alice, bob, carol].map((p, k) => ({
    gw: clientOf(p),
    token: tokens[k]?.access_token as string,
    shard: shards[k] as Shard,
  }));
  const rounds = await runRounds(participants, coordinatorSide, heldOut);

  step(9, "Alice downloads the global model with her access token.");
  const before = await aliceGw.weights(MODEL, aliceGrant.access_token);
  detail(`200: ${before.weights.length * 4} bytes, version ${before.version}`);
  const aliceCredential = batch[0] as IssuedCredential;
  const credentialExp = decodeJwt(aliceCredential.jwt).payload.exp as number;
  const token = {
    type: aliceGrant.token_type,
    expiresAt: aliceGrant.expiresAt,
    credentialExpiresAt: new Date(credentialExp * 1000).toISOString(),
  };
  const { live, fresh, visibleMs } = await revokeAndCheckRefused(
    orgA,
    alice,
    aliceGw,
    aliceGrant,
    aliceCredential,
  );

  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  say(`\nDone in ${seconds} s. Everything started by the demo is being stopped.`);
  return {
    chainId: deployment.chainId,
    contracts: deployment.contracts,
    issuer: orgA.did,
    holder: alice.did,
    credentialId: aliceCredential.credentialId,
    token,
    oid4vp: { granted: true, holder: viaOid4vp.holder, scope: viaOid4vp.scope, clientId: viaOid4vp.clientId },
    before: { granted: true, status: 200, weightsBytes: before.weights.length * 4, version: before.version },
    after: { granted: false, code: live.code, status: live.status, presentation: fresh },
    revocationVisibleMs: visibleMs,
    rounds,
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
