import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { InterfaceAbi } from "ethers";
import ethrDidRegistry from "ethr-did-registry";

export interface ContractArtifact {
  contractName: string;
  abi: InterfaceAbi;
  bytecode: string;
}

const artifactsRoot = fileURLToPath(new URL("../../artifacts/contracts/", import.meta.url));
const cache = new Map<string, ContractArtifact>();

/**
 * Loads the Hardhat artifact of one of kparty's contracts (built by `npm run build:contracts`).
 * @throws Error naming the command to run when the artifacts have not been built.
 */
export function loadArtifact(
  name: "ConsortiumRegistry" | "CredentialRegistry" | "AuditAnchors",
): ContractArtifact {
  const cached = cache.get(name);
  if (cached) return cached;
  const file = `${artifactsRoot}${name}.sol/${name}.json`;
  let artifact: ContractArtifact;
  try {
    artifact = JSON.parse(readFileSync(file, "utf8")) as ContractArtifact;
  } catch (cause) {
    throw new Error(`contract artifact ${name} not found at ${file}; run \`npm run build:contracts\``, {
      cause,
    });
  }
  cache.set(name, artifact);
  return artifact;
}

/** The ERC-1056 EthereumDIDRegistry as compiled by the `ethr-did-registry` package. */
export function didRegistryArtifact(): ContractArtifact {
  const { abi, bytecode } = ethrDidRegistry.EthereumDIDRegistry as { abi: InterfaceAbi; bytecode: string };
  return { contractName: "EthereumDIDRegistry", abi, bytecode };
}
