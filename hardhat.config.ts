import { createRequire } from "node:module";
import { defineConfig } from "hardhat/config";

const require = createRequire(import.meta.url);

// Compile offline with the compiler shipped in the `solc` npm package (pinned exactly in
// package.json); Hardhat would otherwise download solc from the internet.
const solcVersion: string = require("solc/package.json").version;

export default defineConfig({
  solidity: {
    version: solcVersion,
    path: require.resolve("solc/soljson.js"),
    settings: {
      optimizer: { enabled: true, runs: 10_000 },
      evmVersion: "cancun",
    },
  },
  // Invariant campaigns (contracts/*.invariants.t.sol): 128 random call sequences of 64 calls
  // each, every invariant checked after every call.
  test: { solidity: { invariant: { runs: 128, depth: 64, failOnRevert: false } } },
  paths: {
    sources: "./contracts",
    tests: { solidity: "./contracts" },
  },
});
