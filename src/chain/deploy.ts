import { ContractFactory, type Signer } from "ethers";
import { didRegistryArtifact, loadArtifact } from "./artifacts.ts";
import { type Deployment, kpartyInterfaces } from "./contracts.ts";
import { toChainError } from "./errors.ts";

/** A founding member of the consortium. */
export interface FoundingMember {
  account: string;
  did: string;
  name: string;
}

export interface DeployParams {
  /** Pays for and sends the deployment transactions. */
  deployer: Signer;
  founders: FoundingMember[];
  /** Approvals a governance proposal needs (1 ≤ quorum ≤ founders). */
  quorum: number;
  /** Reuse an ERC-1056 registry already on the chain instead of deploying one. */
  didRegistry?: string;
  /** Seconds a governance proposal stays open (default 7 days). */
  proposalLifetimeSeconds?: number;
}

const DEFAULT_PROPOSAL_LIFETIME = 7 * 24 * 3600;

/**
 * Deploys ERC-1056 (unless given) and ConsortiumRegistry with its founders; the consortium
 * creates its CredentialRegistry in the same transaction. AuditAnchors (the gateways' audit
 * heads, see contracts/AuditAnchors.sol) is deployed beside them.
 *
 * @example
 * ```ts
 * const deployment = await deployKParty({ deployer, founders: [{ account, did, name: "Org A" }], quorum: 1 });
 * ```
 */
export async function deployKParty(params: DeployParams): Promise<Deployment> {
  const { deployer, founders, quorum } = params;
  if (!deployer.provider) throw new TypeError("deployer must be connected to a provider");
  if (founders.length === 0) throw new TypeError("at least one founding member is required");
  if (!Number.isInteger(quorum) || quorum < 1 || quorum > founders.length) {
    throw new TypeError(`quorum must be between 1 and ${founders.length}, got ${quorum}`);
  }
  try {
    const network = await deployer.provider.getNetwork();
    let didRegistry = params.didRegistry;
    if (!didRegistry) {
      const erc1056 = didRegistryArtifact();
      const contract = await new ContractFactory(erc1056.abi, erc1056.bytecode, deployer).deploy();
      await contract.waitForDeployment();
      didRegistry = await contract.getAddress();
    }
    const consortiumArtifact = loadArtifact("ConsortiumRegistry");
    const consortium = await new ContractFactory(
      consortiumArtifact.abi,
      consortiumArtifact.bytecode,
      deployer,
    ).deploy(founders, quorum, params.proposalLifetimeSeconds ?? DEFAULT_PROPOSAL_LIFETIME);
    const receipt = await consortium.deploymentTransaction()?.wait(1);
    const credentialRegistry: string = await consortium.getFunction("credentialRegistry").staticCall();
    const anchorsArtifact = loadArtifact("AuditAnchors");
    const auditAnchors = await new ContractFactory(
      anchorsArtifact.abi,
      anchorsArtifact.bytecode,
      deployer,
    ).deploy();
    await auditAnchors.waitForDeployment();
    return {
      chainId: Number(network.chainId),
      contracts: {
        EthereumDIDRegistry: didRegistry,
        ConsortiumRegistry: await consortium.getAddress(),
        CredentialRegistry: credentialRegistry,
        AuditAnchors: await auditAnchors.getAddress(),
      },
      deployedAtBlock: receipt?.blockNumber ?? (await deployer.provider.getBlockNumber()),
    };
  } catch (error) {
    const i = kpartyInterfaces();
    throw toChainError(error, "deploy", i.consortium, i.credentials);
  }
}
