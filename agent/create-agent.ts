import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import {
  createAgent,
  type ICredentialPlugin,
  type ICredentialStatusVerifier,
  type IDataStore,
  type IDataStoreORM,
  type IDIDManager,
  type IKeyManager,
  type IResolver,
  type TAgent,
} from "@veramo/core";
import { CredentialProviderJWT } from "@veramo/credential-jwt";
import { CredentialPlugin } from "@veramo/credential-w3c";
import { DataStore, DataStoreORM, DIDStore, KeyStore, PrivateKeyStore } from "@veramo/data-store";
import { DIDManager } from "@veramo/did-manager";
import { EthrDIDProvider } from "@veramo/did-provider-ethr";
import { DIDResolverPlugin } from "@veramo/did-resolver";
import { KeyManager } from "@veramo/key-manager";
import { KeyManagementSystem, SecretBox } from "@veramo/kms-local";
import { Resolver } from "did-resolver";
import type { Provider } from "ethers";
import { getResolver as getEthrResolver } from "ethr-did-resolver";
import type { DataSource } from "typeorm";
import { createChainClient, type Deployment } from "../src/chain/index.ts";
import { ethrNetworkName } from "../src/credential/index.ts";
import { IssuedCredentialStore } from "./issued-store.ts";
import { openKeyring, type ScryptParams } from "./keyring.ts";
import { type IKPartyHolder, KPartyHolder } from "./plugins/kparty-holder.ts";
import { type IKPartyIssuer, KPartyIssuer } from "./plugins/kparty-issuer.ts";
import { KPartyStatusVerifier } from "./plugins/kparty-status.ts";
import { isPostgresUrl, openAgentDatabase } from "./store.ts";

export type AgentRole = "issuer" | "holder" | "verifier";

export interface AgentConfig {
  role: AgentRole;
  /** Where the agent keeps its files (issuer and holder): `keyring.json`, `agent.sqlite`. */
  dataDir?: string;
  /** Unlocks the private keys at rest (issuer and holder). */
  passphrase?: string;
  /**
   * The agent database (issuer and holder) on PostgreSQL, a `postgres://…` URL: Veramo's data
   * store (keys, DIDs, credentials; private keys encrypted as in the file) and the issued
   * credentials, shared by every agent of the member on it. Default: `agent.sqlite` in
   * `dataDir`. The keyring (the key that encrypts the private keys) stays in `dataDir`.
   */
  database?: string;
  /**
   * Test fixtures only: the keyring's scrypt parameters (default `KEYRING_KDF`, N = 2^17), as
   * `openKeyring`'s `kdf` option. The CLI never sets it.
   */
  keyringKdf?: ScryptParams;
  chain: {
    /** A provider for the chain of `deployment` (see `createProvider`). */
    provider: Provider;
    deployment: Deployment;
  };
  /** Clock for issuance (default: the system clock). */
  now?: () => Date;
}

/** Every agent resolves DIDs, creates/verifies W3C credentials and checks kparty status on chain. */
type VerifierPlugins = IResolver & ICredentialPlugin & ICredentialStatusVerifier;
/** Holders and issuers also keep keys, DIDs and data. */
type KeyedPlugins = VerifierPlugins & IKeyManager & IDIDManager & IDataStore & IDataStoreORM;

export type VerifierAgent = TAgent<VerifierPlugins>;
export type HolderAgent = TAgent<KeyedPlugins & IKPartyHolder>;
export type IssuerAgent = TAgent<KeyedPlugins & IKPartyIssuer>;

export interface AgentHandle<A> {
  agent: A;
  /** The did:ethr method name for this chain, e.g. `0x7a69` → `did:ethr:0x7a69:…`. */
  didProvider: string;
  /** Flushes and releases the agent's database. */
  close(): Promise<void>;
}

export { ethrNetworkName };

function ethrNetwork(config: AgentConfig) {
  const { deployment, provider } = config.chain;
  return {
    name: ethrNetworkName(deployment.chainId),
    chainId: deployment.chainId,
    provider,
    registry: deployment.contracts.EthereumDIDRegistry,
  };
}

/** ethr-did-resolver's CJS typings see ethers' CJS `Provider`; at run time it is the same object. */
type ResolverNetworks = Extract<Parameters<typeof getEthrResolver>[0], { networks?: unknown }>["networks"];
type ResolverProvider = NonNullable<NonNullable<ResolverNetworks>[number]["provider"]>;

function resolverPlugin(config: AgentConfig): DIDResolverPlugin {
  const network = { ...ethrNetwork(config), provider: config.chain.provider as unknown as ResolverProvider };
  return new DIDResolverPlugin({ resolver: new Resolver(getEthrResolver({ networks: [network] })) });
}

function validate(config: AgentConfig): void {
  if (!config || !["issuer", "holder", "verifier"].includes(config.role)) {
    throw new TypeError("role must be issuer, holder or verifier");
  }
  if (!config.chain?.provider || !config.chain.deployment?.contracts) {
    throw new TypeError("chain.provider and chain.deployment are required");
  }
  if (config.role !== "verifier" && (!config.dataDir || !config.passphrase)) {
    throw new TypeError(`an ${config.role} agent needs dataDir and passphrase`);
  }
  if (config.database !== undefined && !isPostgresUrl(config.database)) {
    throw new TypeError("database must be a postgres:// URL");
  }
}

/**
 * Builds the Veramo agent for one kparty role. Verifier: DID resolution against the
 * deployment's ERC-1056 registry and W3C credential verification, no keys. Holder and
 * issuer add a key manager whose private keys are encrypted at rest (`SecretBox` under a
 * random key that the keyring wraps with a key scrypt derives from the passphrase, see
 * `openKeyring`), did:ethr identifiers on the configured chain and a store that persists
 * across restarts (embedded, or PostgreSQL with `database`); the issuer adds the kparty issuer plugin, the holder the
 * kparty holder plugin.
 *
 * @example
 * ```ts
 * const { agent, close } = await createKPartyAgent({ role: "issuer", dataDir: ".kparty/org-a",
 *   passphrase: process.env.KPARTY_PASSPHRASE!, chain: { provider, deployment } });
 * const did = await agent.didManagerCreate({ provider: "did:ethr:0x7a69" });
 * ```
 */
export async function createKPartyAgent(
  config: AgentConfig & { role: "issuer" },
): Promise<AgentHandle<IssuerAgent>>;
export async function createKPartyAgent(
  config: AgentConfig & { role: "holder" },
): Promise<AgentHandle<HolderAgent>>;
export async function createKPartyAgent(
  config: AgentConfig & { role: "verifier" },
): Promise<AgentHandle<VerifierAgent>>;
export async function createKPartyAgent(
  config: AgentConfig,
): Promise<AgentHandle<IssuerAgent | HolderAgent | VerifierAgent>> {
  validate(config);
  const didProvider = `did:ethr:${ethrNetworkName(config.chain.deployment.chainId)}`;
  const credentials = new CredentialPlugin([new CredentialProviderJWT()]);
  const status = new KPartyStatusVerifier({
    chain: createChainClient({ provider: config.chain.provider, deployment: config.chain.deployment }),
  });
  if (config.role === "verifier") {
    const agent = createAgent<VerifierPlugins>({
      plugins: [resolverPlugin(config), credentials, status],
    });
    return { agent, didProvider, close: async () => {} };
  }
  const dataDir = config.dataDir as string;
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const secretKey = await openKeyring(
    join(dataDir, "keyring.json"),
    config.passphrase as string,
    config.keyringKdf ? { kdf: config.keyringKdf } : {},
  );
  const db: DataSource = await openAgentDatabase(config.database ?? join(dataDir, "agent.sqlite"));
  try {
    const plugins = [
      new KeyManager({
        store: new KeyStore(db),
        kms: { local: new KeyManagementSystem(new PrivateKeyStore(db, new SecretBox(secretKey))) },
      }),
      new DIDManager({
        store: new DIDStore(db),
        defaultProvider: didProvider,
        providers: {
          [didProvider]: new EthrDIDProvider({ defaultKms: "local", networks: [ethrNetwork(config)] }),
        },
      }),
      resolverPlugin(config),
      credentials,
      status,
      new DataStore(db),
      new DataStoreORM(db),
    ];
    if (config.role === "issuer") {
      const store = await IssuedCredentialStore.open(db);
      const issuer = new KPartyIssuer({
        deployment: config.chain.deployment,
        provider: config.chain.provider,
        store,
        ...(config.now ? { now: config.now } : {}),
      });
      const agent = createAgent<KeyedPlugins & IKPartyIssuer>({
        plugins: [...plugins, issuer],
      });
      return { agent, didProvider, close: () => db.destroy() };
    }
    const agent = createAgent<KeyedPlugins & IKPartyHolder>({
      plugins: [...plugins, new KPartyHolder()],
    });
    return { agent, didProvider, close: () => db.destroy() };
  } catch (error) {
    await db.destroy();
    throw error;
  }
}
