import { join } from "node:path";
import { computeAddress, type Provider, parseEther, type Signer } from "ethers";
import type { AgentHandle, ScryptParams } from "../../agent/index.ts";
import { createKPartyAgent, type HolderAgent, type IssuerAgent } from "../../agent/index.ts";
import { type Deployment, deployKParty } from "../chain/index.ts";

export interface ConsortiumMember {
  name: string;
  did: string;
  account: string;
  handle: AgentHandle<IssuerAgent>;
}

export interface Participant {
  did: string;
  handle: AgentHandle<HolderAgent>;
}

const UNDEPLOYED: Deployment = {
  chainId: 0,
  contracts: {
    EthereumDIDRegistry: "0x0000000000000000000000000000000000000000",
    ConsortiumRegistry: "0x0000000000000000000000000000000000000000",
    CredentialRegistry: "0x0000000000000000000000000000000000000000",
  },
  deployedAtBlock: 0,
};

/**
 * Bootstraps a consortium on a development chain: each member's issuer agent (under
 * `dataDir/<slug>`) creates its did:ethr, the funder pays each member's account some ETH
 * for gas, the contracts are deployed with the members as founders, and the agents are
 * reopened with the deployment (their keys and DIDs persist across the restart).
 *
 * @example
 * ```ts
 * const { deployment, members } = await bootstrapConsortium({ provider, funder, dataDir, passphrase,
 *   members: ["Org A", "Org B"], quorum: 2 });
 * ```
 */
export async function bootstrapConsortium(params: {
  provider: Provider;
  funder: Signer;
  dataDir: string;
  passphrase: string;
  /** Test fixtures only: the agents' keyring scrypt parameters (see `AgentConfig.keyringKdf`). */
  keyringKdf?: ScryptParams;
  members: string[];
  quorum?: number;
  fundEth?: string;
}): Promise<{ deployment: Deployment; members: ConsortiumMember[] }> {
  const { provider, funder, dataDir, passphrase } = params;
  const kdf = params.keyringKdf ? { keyringKdf: params.keyringKdf } : {};
  const chainId = Number((await provider.getNetwork()).chainId);
  const founders: { name: string; did: string; account: string; dir: string }[] = [];
  for (const name of params.members) {
    const dir = join(dataDir, name.toLowerCase().replace(/[^a-z0-9]+/g, "-"));
    const handle = await createKPartyAgent({
      role: "issuer",
      dataDir: dir,
      passphrase,
      ...kdf,
      chain: { provider, deployment: { ...UNDEPLOYED, chainId } },
    });
    try {
      const id = await handle.agent.didManagerCreate({ provider: handle.didProvider, alias: name });
      const key = id.keys[0];
      if (!key) throw new Error(`no key for ${id.did}`);
      founders.push({ name, did: id.did, account: computeAddress(`0x${key.publicKeyHex}`), dir });
    } finally {
      await handle.close();
    }
  }
  for (const f of founders) {
    const tx = await funder.sendTransaction({ to: f.account, value: parseEther(params.fundEth ?? "10") });
    await tx.wait(1);
  }
  const deployment = await deployKParty({
    deployer: funder,
    founders: founders.map(({ account, did, name }) => ({ account, did, name })),
    quorum: params.quorum ?? founders.length,
  });
  const members: ConsortiumMember[] = [];
  for (const f of founders) {
    const handle = await createKPartyAgent({
      role: "issuer",
      dataDir: f.dir,
      passphrase,
      ...kdf,
      chain: { provider, deployment },
    });
    members.push({ name: f.name, did: f.did, account: f.account, handle });
  }
  return { deployment, members };
}

/**
 * Creates an issuer agent with a did:ethr that is *not* a consortium member (funded, so
 * only membership stands in its way) — a rogue issuer for negative tests and the demo.
 */
export async function createOutsider(params: {
  provider: Provider;
  funder: Signer;
  deployment: Deployment;
  dataDir: string;
  passphrase: string;
  /** Test fixtures only: the agent's keyring scrypt parameters (see `AgentConfig.keyringKdf`). */
  keyringKdf?: ScryptParams;
}): Promise<ConsortiumMember> {
  const { provider, deployment, dataDir, passphrase } = params;
  const handle = await createKPartyAgent({
    role: "issuer",
    dataDir,
    passphrase,
    ...(params.keyringKdf ? { keyringKdf: params.keyringKdf } : {}),
    chain: { provider, deployment },
  });
  const id = await handle.agent.didManagerCreate({ provider: handle.didProvider, alias: "outsider" });
  const account = computeAddress(`0x${id.keys[0]?.publicKeyHex}`);
  await (await params.funder.sendTransaction({ to: account, value: parseEther("1") })).wait(1);
  return { name: "outsider", did: id.did, account, handle };
}

/** A participant (holder agent) with a fresh did:ethr. */
export async function createParticipant(params: {
  provider: Provider;
  deployment: Deployment;
  dataDir: string;
  passphrase: string;
  /** Test fixtures only: the agent's keyring scrypt parameters (see `AgentConfig.keyringKdf`). */
  keyringKdf?: ScryptParams;
}): Promise<Participant> {
  const handle = await createKPartyAgent({
    role: "holder",
    dataDir: params.dataDir,
    passphrase: params.passphrase,
    ...(params.keyringKdf ? { keyringKdf: params.keyringKdf } : {}),
    chain: { provider: params.provider, deployment: params.deployment },
  });
  const id = await handle.agent.didManagerCreate({ provider: handle.didProvider, alias: "participant" });
  return { did: id.did, handle };
}
