/**
 * An issuer agent in its own process, for fault tests: issues batches until it is killed or
 * its parent goes away, reporting each completed batch over IPC. Configuration as JSON in
 * KPARTY_ISSUER_CONFIG.
 */
import { createKPartyAgent } from "../agent/index.ts";
import { createProvider, type Deployment } from "../src/chain/index.ts";

const config = JSON.parse(process.env.KPARTY_ISSUER_CONFIG ?? "{}") as {
  rpcUrl: string;
  deployment: Deployment;
  dataDir: string;
  /** The agent database on PostgreSQL (default: the data dir's agent.sqlite). */
  database?: string;
  passphrase: string;
  issuer: string;
  subject: string;
  batchSize: number;
};
const provider = createProvider(config.rpcUrl, config.deployment.chainId);
const { agent, close } = await createKPartyAgent({
  role: "issuer",
  dataDir: config.dataDir,
  ...(config.database ? { database: config.database } : {}),
  passphrase: config.passphrase,
  chain: { provider, deployment: config.deployment },
});
// a parent that dies (or lets go of this process) stops it after the batch under way
let stopping = false;
process.once("disconnect", () => {
  stopping = true;
});
process.send?.({ type: "ready" });
while (!stopping) {
  const batch = await agent.kpartyIssueCredentials({
    issuer: config.issuer,
    credentials: Array.from({ length: config.batchSize }, () => ({
      subject: config.subject,
      role: "participant" as const,
      models: ["mnist-logreg"],
      actions: ["model:read" as const],
    })),
  });
  if (!stopping)
    process.send?.({ type: "batch", root: batch[0]?.anchor.root, indexes: batch.map((c) => c.statusIndex) });
}
await close();
process.exit(0);
