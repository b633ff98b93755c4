export { contractsBuilt, ensureContractsBuilt } from "./build-contracts.ts";
export {
  bootstrapConsortium,
  type ConsortiumMember,
  createOutsider,
  createParticipant,
  type Participant,
} from "./consortium.ts";
export { freePort, type LocalChain, startHardhatNode } from "./hardhat-node.ts";
