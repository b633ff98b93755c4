import { createRequire } from "node:module";
import { defineConfig } from "hardhat/config";

const require = createRequire(import.meta.url);

// Compile offline with the compiler shipped in the `solc` npm package (pinned exactly in
// package.json); Hardhat would otherwise download solc from the internet. The published
// package (dist/hardhat.config.js) ships compiled artifacts and only runs `hardhat node`, so
// there `solc`, a devDependency, is absent and not needed.
function offlineSolc(): { version: string; path?: string } {
  try {
    return { version: require("solc/package.json").version, path: require.resolve("solc/soljson.js") };
  } catch {
    return { version: "0.8.28" };
  }
}

export default defineConfig({
  solidity: {
    ...offlineSolc(),
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
